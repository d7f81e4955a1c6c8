"""``predictions.csv``: one line per evaluated sample, written by ``mmrun eval``.

Columns: ``row`` (the sample's line in the manifest, or its index in the split for built-in
data), ``label`` and ``predicted`` (class names; ``a|b`` sets for multilabel; numbers for
regression), then for classification one ``prob_<class>`` column per class (softmax for
multiclass, sigmoid for binary and multilabel). Lines are sorted by ``row``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import torch


def _names(classes: tuple[str, ...], count: int) -> list[str]:
    return list(classes) if len(classes) == count else [str(i) for i in range(count)]


def prediction_table(task_type: str, outputs: torch.Tensor, target: torch.Tensor,
                     classes: tuple[str, ...]) -> tuple[list[str], list[list]]:
    """Header and rows (without ``row``) for the task's predictions ``outputs`` (task.predict)."""
    if task_type == "regression":
        return ["label", "predicted"], [[f"{t:.6g}", f"{p:.6g}"] for t, p in zip(target.tolist(), outputs.tolist())]
    if task_type == "binary":
        outputs = torch.stack([1 - outputs, outputs], 1)
    names = _names(classes, outputs.shape[1])
    header = ["label", "predicted", *(f"prob_{n}" for n in names)]
    if task_type == "multilabel":
        def as_set(flags) -> str:
            return "|".join(n for n, f in zip(names, flags) if f)
        labels = [as_set(t) for t in target.bool().tolist()]
        predicted = [as_set(p) for p in (outputs > 0.5).tolist()]
    else:
        labels = [names[t] for t in target.long().tolist()]
        predicted = [names[p] for p in outputs.argmax(1).tolist()]
    probabilities = [[f"{p:.6f}" for p in row] for row in outputs.tolist()]
    return header, [[lab, pred, *prob] for lab, pred, prob in zip(labels, predicted, probabilities)]


def write_predictions(path: Path, task_type: str, outputs: torch.Tensor, target: torch.Tensor,
                      row_ids: torch.Tensor, classes: tuple[str, ...]) -> None:
    """Write ``predictions.csv`` atomically (a temporary file renamed into place)."""
    header, rows = prediction_table(task_type, outputs.float().cpu(), target.cpu(), classes)
    order = row_ids.argsort(stable=True).tolist()
    ids = row_ids.tolist()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", *header])
        writer.writerows([ids[i], *rows[i]] for i in order)
    os.replace(temporary, path)
