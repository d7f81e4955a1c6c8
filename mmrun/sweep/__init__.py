"""Sweep comparison: which configuration is best, by how much, and is the gap real.

``runs`` reads run folders (metrics.json, metrics.csv, saved overrides), ``stats`` holds the
seed statistics and paired tests, ``table`` groups runs into ranked configurations, ``plots``
draws the figures, ``report`` writes them all, ``jobs`` records failed sweep jobs and skips
completed ones on a rerun, and ``callback`` writes the report at the end of every multirun.
"""
