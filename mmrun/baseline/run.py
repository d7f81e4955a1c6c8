"""``run_baseline``: fit the classical candidates on a run's own splits and score them.

Why: a sanity floor. A deep model that does not beat logistic regression or gradient boosting
on simple features of the same data is undertrained or mis-specified, and a weak deep model is
never mistaken for a finding. The baseline sees exactly the run's training, validation and
test rows, is selected on validation by the run's monitored metric, and reports the same
metric names (``val/acc``, ``test/f1_macro``, ...), so the two are directly comparable.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from mmrun.baseline.features import SPLITS, build_blocks, dense_view, linear_view
from mmrun.baseline.models import better, candidates, evaluate, sklearn_target, task_kind

MAX_TRAIN_ROWS = 20000
THREADS = 1


def choose_train_rows(labels: torch.Tensor, kind: str, seed: int, max_rows: int) -> np.ndarray | None:
    """Indices of at most ``max_rows`` training rows (sorted), or None to use them all.

    Stratified by class for multiclass and binary labels when every class has at least two
    rows, uniformly at random otherwise; seeded, so the same rows every time.
    """
    n = len(labels)
    if n <= max_rows:
        return None
    y = labels.cpu().reshape(-1).long().numpy() if kind in ("multiclass", "binary") else None
    counts = np.bincount(y) if y is not None else None
    if counts is not None and counts[counts > 0].min() >= 2:
        from sklearn.model_selection import train_test_split

        chosen, _ = train_test_split(np.arange(n), train_size=max_rows, stratify=y, random_state=seed)
        return np.sort(chosen)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def resolve_monitor(task, monitor: str | None, mode: str | None) -> tuple[str, str]:
    """The metric to select on and its direction: the run's (resolved by ``mmrun train``) when the
    baseline computes it, else the task's own (e.g. for ``monitor=val/loss``)."""
    if monitor in {f"val/{name}" for name in task.metrics().keys()} and mode in ("max", "min"):
        return monitor, mode
    return task.monitor, task.monitor_mode


def run_baseline(splits: dict[str, dict[str, torch.Tensor]], spec, task, seed: int,
                 max_train_rows: int = MAX_TRAIN_ROWS, monitor: str | None = None, monitor_mode: str | None = None,
                 threads: int = THREADS) -> dict[str, Any]:
    """Fit and score the classical baseline on ``splits``; a JSON-ready summary.

    Args:
        splits: ``{"train"|"val"|"test": {modality: tensor, "label": ..., "present": [N, M]}}``
            (a datamodule's ``splits``; tensors may live on any device).
        spec: the ``DataSpec`` (modality kinds, shapes, vocabulary sizes).
        task: the run's task object (``mmrun.tasks``): its metrics, monitor and direction.
        seed: seeds the subsampling, the SVD projections and the boosting.
        max_train_rows: training rows above this are subsampled (``"subsampled": true``).
        monitor, monitor_mode: the run's monitored metric and direction when it overrides the
            task's (``monitor=val/f1_macro``); ignored, with the task's used instead, when the
            baseline does not compute it (``val/loss``).
        threads: BLAS/OpenMP threads while it runs (restored afterwards). One by default:
            the problems are small, and sweep jobs running side by side (or any other load)
            make multithreaded boosting and BLAS spin and run many times slower.

    Returns:
        ``{"best", "monitor", "monitor_mode", "val", "test", "candidates", "train_rows",
        "train_rows_total", "subsampled", "features", "time_s"}``: ``val``/``test`` are the best
        candidate's metrics (keys as the deep model logs them, no loss); ``candidates`` holds
        each candidate's ``params``, ``val``, ``test`` and ``fit_time_s``, or its ``error``.
        ``{"error": ..., "time_s"}`` when no candidate could be fitted.
    """
    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    with threadpool_limits(limits=threads):
        summary = _run(splits, spec, task, seed, max_train_rows, monitor, monitor_mode)
    summary["time_s"] = round(time.perf_counter() - start, 3)
    return summary


def _run(splits, spec, task, seed: int, max_train_rows: int, monitor: str | None,
         monitor_mode: str | None) -> dict[str, Any]:
    kind = task_kind(task)
    monitor, mode = resolve_monitor(task, monitor, monitor_mode)
    labels = {s: splits[s]["label"] for s in SPLITS}
    total = len(labels["train"])
    rows = None
    labelled = splits["train"].get("labelled")
    if labelled is not None:  # dataset.label_fraction: only the rows whose label the run may use
        rows = labelled.cpu().nonzero().flatten().numpy()
    chosen = choose_train_rows(labels["train"].cpu()[rows] if rows is not None else labels["train"], kind, seed,
                               max_train_rows)
    if chosen is not None:
        rows = chosen if rows is None else rows[chosen]
    if rows is not None:
        labels["train"] = labels["train"].cpu()[torch.as_tensor(rows)]
    blocks = build_blocks(splits, spec, rows)
    y_train = sklearn_target(kind, labels["train"])
    views: dict[str, dict[str, Any]] = {"linear": linear_view(blocks, seed)}

    results: dict[str, dict[str, Any]] = {}
    for candidate in candidates(kind, seed, len(y_train)):
        try:
            if candidate.view not in views:
                views[candidate.view] = dense_view(blocks, seed)
            results[candidate.name] = evaluate(candidate, kind, task, views[candidate.view], y_train, labels,
                                               monitor, mode)
        except Exception as error:  # e.g. a single class in the training rows
            results[candidate.name] = {"error": f"{type(error).__name__}: {error}"}

    summary: dict[str, Any] = {"monitor": monitor, "monitor_mode": mode}
    fitted = [name for name, result in results.items() if "error" not in result]
    if not fitted:
        errors = "; ".join(f"{name}: {result['error']}" for name, result in results.items())
        return {"error": f"every candidate failed ({errors})", **summary, "candidates": results}
    best = fitted[0]
    for name in fitted[1:]:
        if better(results[name]["val"].get(monitor), results[best]["val"].get(monitor), mode):
            best = name
    return {
        "best": best,
        **summary,
        "val": dict(results[best]["val"]),
        "test": dict(results[best]["test"]),
        "candidates": results,
        "train_rows": int(len(y_train)),
        "train_rows_total": int(total),
        "subsampled": rows is not None,
        "features": {block.name: block.dim for block in blocks},
    }
