"""A classical baseline computed in every run: a sanity floor for the deep model.

``run_baseline(splits, spec, task, seed)`` featurises each modality simply
(``mmrun.baseline.features``), fits logistic regression / ridge and histogram gradient
boosting (``mmrun.baseline.models``), selects on validation by the run's monitored metric and
scores with the run's own metrics. A deep model that does not beat it is undertrained or
mis-specified. Importing this package imports scikit-learn: import it where it is used.
"""

from mmrun.baseline.run import run_baseline

__all__ = ["run_baseline"]
