"""Metrics that need a whole split: full-split ranking metrics for retrieval and recommendation."""
