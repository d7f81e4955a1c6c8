"""``predictions.csv``: one line per scored sample, written by ``mmrun eval`` and ``mmrun predict``.

Columns: ``row`` (the sample's line in the manifest, or its index in the split for built-in
data), ``label`` (``mmrun eval`` only: predict reads no labels) and ``predicted`` (class
names; ``a|b`` sets for multilabel; numbers for regression), then for classification one
``prob_<class>`` column per class (softmax for multiclass, sigmoid for binary and
multilabel). Lines are sorted by ``row``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import torch


def _names(classes: tuple[str, ...], count: int) -> list[str]:
    return list(classes) if len(classes) == count else [str(i) for i in range(count)]


def _as_text(task_type: str, values: torch.Tensor, names: list[str]) -> list[str]:
    """Labels or predictions as cells: numbers (regression), ``a|b`` sets (multilabel), class names."""
    if task_type == "regression":
        return [f"{v:.6g}" for v in values.tolist()]
    if task_type == "multilabel":
        return ["|".join(n for n, flag in zip(names, flags) if flag) for flags in values.bool().tolist()]
    return [names[i] for i in values.long().tolist()]


def _predicted(task_type: str, outputs: torch.Tensor) -> torch.Tensor:
    """The model's answer from its outputs: the values, the labels over 0.5, or the likeliest class."""
    if task_type == "regression":
        return outputs
    if task_type == "multilabel":
        return outputs > 0.5
    return outputs.argmax(1)


def prediction_table(task_type: str, outputs: torch.Tensor, target: torch.Tensor | None,
                     classes: tuple[str, ...]) -> tuple[list[str], list[list]]:
    """Header and rows (without ``row``) for the task's predictions ``outputs`` (task.predict).

    ``target`` (the labels) adds the ``label`` column; None leaves it out.
    """
    if task_type == "binary":
        outputs = torch.stack([1 - outputs, outputs], 1)
    names = _names(classes, outputs.shape[1]) if task_type != "regression" else []
    columns = {"predicted": _as_text(task_type, _predicted(task_type, outputs), names)}
    if target is not None:
        columns = {"label": _as_text(task_type, target, names), **columns}
    probabilities = [[f"{p:.6f}" for p in row] for row in outputs.tolist()] if names else [[]] * len(outputs)
    header = [*columns, *(f"prob_{n}" for n in names)]
    return header, [[*cells, *probs] for *cells, probs in zip(*columns.values(), probabilities)]


def write_predictions(path: Path, task_type: str, outputs: torch.Tensor, target: torch.Tensor | None,
                      row_ids: torch.Tensor, classes: tuple[str, ...]) -> None:
    """Write ``predictions.csv`` atomically (a temporary file renamed into place); ``target`` as above."""
    header, rows = prediction_table(task_type, outputs.float().cpu(), None if target is None else target.cpu(),
                                    classes)
    order = row_ids.argsort(stable=True).tolist()
    ids = row_ids.tolist()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", *header])
        writer.writerows([ids[i], *rows[i]] for i in order)
    os.replace(temporary, path)
