"""The classical candidates, and how their outputs are scored with the task's own metrics.

* Logistic regression (Cox 1958; multinomial for several classes, one classifier per label
  for multilabel) and ridge regression (Hoerl & Kennard 1970) on the sparse/dense linear view,
  over a small grid of regularisation strengths.
* Histogram gradient boosting: gradient-boosted trees (Friedman, Annals of Statistics 2001)
  with LightGBM-style binned features (Ke et al., NeurIPS 2017), on the dense view, early
  stopping on a 10% hold-out of the training rows.

Every grid point is fitted on the training rows and the one with the best validation value
of the task's monitored metric wins; only the winner is scored on the test rows. Outputs are
turned back into logits so that ``task.predict`` recovers them and the numbers come from the
very torchmetrics objects the deep model logs: log-probabilities for multiclass, the logit of
p for binary and multilabel, raw values for regression.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from mmrun.tasks.objectives import BinaryTask, MulticlassTask, MultilabelTask, RegressionTask, Task

LOGISTIC_C = (0.01, 0.1, 1.0, 10.0)
RIDGE_ALPHA = (0.1, 1.0, 10.0, 100.0, 1000.0)
EPS = 1e-12
EARLY_STOPPING_ROWS = 500  # fewer training rows: no hold-out, a fixed number of boosting rounds


KINDS = {MulticlassTask: "multiclass", BinaryTask: "binary", MultilabelTask: "multilabel",
         RegressionTask: "regression"}


def task_kind(task: Task) -> str:
    """multiclass, binary, multilabel or regression, from the task object's class."""
    if type(task) not in KINDS:
        raise TypeError(f"no classical baseline for task {type(task).__name__}")
    return KINDS[type(task)]


def sklearn_target(kind: str, labels: torch.Tensor) -> np.ndarray:
    """Labels as scikit-learn expects them: class ids, a 0/1 label matrix or float values."""
    labels = labels.cpu()
    if kind == "regression":
        return labels.reshape(len(labels), -1)[:, 0].double().numpy()
    if kind == "multilabel":
        return labels.reshape(len(labels), -1).round().long().numpy()
    return labels.reshape(-1).long().numpy()


def to_logits(kind: str, estimator: Any, x, num_outputs: int) -> torch.Tensor:
    """Logits from which ``task.predict`` gives back the estimator's probabilities (or values)."""
    if kind == "regression":
        return torch.as_tensor(np.asarray(estimator.predict(x), dtype=np.float64)).reshape(-1, 1).float()
    proba = np.asarray(estimator.predict_proba(x), dtype=np.float64)
    if kind == "multilabel":
        p = np.clip(proba, EPS, 1 - EPS)
        return torch.as_tensor(np.log(p) - np.log1p(-p)).float()
    full = np.zeros((len(proba), max(num_outputs, 2)))
    full[:, np.asarray(estimator.classes_, dtype=np.int64)] = proba  # a class unseen in training: p = 0
    if kind == "binary":
        p = np.clip(full[:, 1], EPS, 1 - EPS)
        return torch.as_tensor(np.log(p) - np.log1p(-p)).reshape(-1, 1).float()
    return torch.as_tensor(np.log(np.clip(full[:, :num_outputs], EPS, None))).float()


def _plain(value: torch.Tensor) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None  # JSON has no NaN


def score(task: Task, logits: torch.Tensor, target: torch.Tensor, prefix: str) -> dict[str, float | None]:
    """The task's metrics as ``{"<prefix>/<name>": value}`` (None where undefined)."""
    metrics = task.metrics()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. AUROC with a class absent from a small split
        metrics.update(task.predict(logits), task.metric_target(target.cpu()))
        values = metrics.compute()
    return {f"{prefix}/{name}": _plain(value) for name, value in sorted(values.items())}


def better(a: float | None, b: float | None, mode: str) -> bool:
    """Whether ``a`` beats ``b`` in direction ``mode`` (an undefined value never wins)."""
    if a is None:
        return False
    if b is None:
        return True
    return a > b if mode == "max" else a < b


@dataclass
class Candidate:
    """One model family: which feature view it reads, its grid, and how to build one estimator."""

    name: str
    view: str  # "linear" or "dense"
    grid: list[dict[str, Any]]
    make: Callable[[dict[str, Any]], Any]
    describe: Callable[[Any], dict[str, Any]] = field(default=lambda estimator: {})


def candidates(kind: str, seed: int, train_rows: int) -> list[Candidate]:
    """The candidates for a task kind, cheapest first."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.multiclass import OneVsRestClassifier

    early = train_rows >= EARLY_STOPPING_ROWS
    boosting = dict(learning_rate=0.1, max_iter=200 if early else 100, max_leaf_nodes=15,
                    early_stopping=early, n_iter_no_change=10, validation_fraction=0.1, random_state=seed)

    def rounds(estimator) -> dict[str, Any]:
        fitted = getattr(estimator, "estimators_", [estimator])
        return {"learning_rate": boosting["learning_rate"], "early_stopping": early,
                "boosting_rounds": int(max(getattr(e, "n_iter_", 0) for e in fitted))}

    if kind == "regression":
        return [
            Candidate("ridge", "linear", [{"alpha": a} for a in RIDGE_ALPHA], lambda p: Ridge(alpha=p["alpha"])),
            Candidate("hist_gradient_boosting", "dense", [dict(boosting)],
                      lambda p: HistGradientBoostingRegressor(**p), rounds),
        ]

    def logistic(p: dict[str, Any]):
        model = LogisticRegression(C=p["C"], tol=1e-3, max_iter=1000, random_state=seed)
        return OneVsRestClassifier(model) if kind == "multilabel" else model

    def boosted(p: dict[str, Any]):
        model = HistGradientBoostingClassifier(**p)
        return OneVsRestClassifier(model) if kind == "multilabel" else model

    return [
        Candidate("logistic_regression", "linear", [{"C": c} for c in LOGISTIC_C], logistic),
        Candidate("hist_gradient_boosting", "dense", [dict(boosting)], boosted, rounds),
    ]


def evaluate(candidate: Candidate, kind: str, task: Task, x: dict[str, Any], y_train: np.ndarray,
             targets: dict[str, torch.Tensor], monitor: str, mode: str) -> dict[str, Any]:
    """Fit every grid point, keep the best on validation by ``monitor`` (in direction ``mode``),
    score it on validation and test."""
    from sklearn.exceptions import ConvergenceWarning

    best: dict[str, Any] | None = None
    grid, fit_time = [], 0.0
    for params in candidate.grid:
        estimator = candidate.make(params)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)  # e.g. OneVsRest: a label never present
            estimator.fit(x["train"], y_train)
        fit_time += time.perf_counter() - start
        val = score(task, to_logits(kind, estimator, x["val"], task.num_outputs), targets["val"], "val")
        shown = {k: v for k, v in params.items() if k in ("C", "alpha")}
        grid.append({**shown, monitor: val.get(monitor)})
        if best is None or better(val.get(monitor), best["val"].get(monitor), mode):
            best = {"params": shown, "val": val, "estimator": estimator}
    assert best is not None, "every candidate has a non-empty grid"
    estimator = best.pop("estimator")
    best["params"] = {**best["params"], **candidate.describe(estimator)}
    best["test"] = score(task, to_logits(kind, estimator, x["test"], task.num_outputs), targets["test"], "test")
    best["columns"] = int(x["train"].shape[1])
    best["fit_time_s"] = round(fit_time, 3)
    if len(grid) > 1:
        best["grid"] = grid
    return best
