"""The label column: task inference, the class list fitted on training rows, encoding.

The task comes from the labels unless ``task=...`` forces one: a JSON list or a
``|``-separated cell anywhere -> multilabel; numbers that are not all whole -> regression;
anything else (strings, whole numbers) -> classification, binary with two classes and
multiclass otherwise. Class names are the training rows' labels as text, sorted
numerically when they are all numbers; a validation, test or evaluation label outside that
list is a bad row. ``mmrun predict`` reads no labels (``unlabelled``).

``task=retrieval`` reads no label column either: a row's ``label`` is its *group* code
(``group_codes``), equal for the rows of one item (the values of ``dataset.group_column``, e.g.
five captions of one ``image_id``) and distinct across the whole table; without a group
column every row is its own item. The spec's task is ``retrieval`` with no outputs.
"""

from __future__ import annotations

from typing import Any

import torch

from mmrun.data.preprocess.tabular import category_key, parse_number
from mmrun.errors import DataError

CLASSIFICATION, MULTILABEL, REGRESSION = "classification", "multilabel", "regression"
RETRIEVAL = "retrieval"
CAPTIONING = "captioning"  # read as retrieval's rows are: group codes, no label column (the caption is a text column)
FORCED = {"multiclass": CLASSIFICATION, "binary": CLASSIFICATION, "multilabel": MULTILABEL, "regression": REGRESSION}
TASKS = (*FORCED, RETRIEVAL, CAPTIONING)  # the values dataset.task may force besides auto


def label_set(value: Any) -> list[str]:
    """The labels of a multilabel cell: a list, or text separated by ``|``."""
    items = value if isinstance(value, list) else str(value).split("|")
    return sorted({category_key(item) for item in items if category_key(item)})


def _number(value: Any) -> float | None:
    try:
        return parse_number(value)
    except (TypeError, ValueError):
        return None


def infer_kind(values: list[Any], requested: str) -> str:
    """classification, multilabel or regression for the non-empty label cells ``values``."""
    if requested in FORCED:
        return FORCED[requested]
    if any(isinstance(v, list) or (isinstance(v, str) and "|" in v) for v in values):
        return MULTILABEL
    numbers = [_number(v) for v in values]
    if values and all(n is not None for n in numbers) and not all(n.is_integer() for n in numbers):
        return REGRESSION
    return CLASSIFICATION


def fit_classes(values: list[Any], kind: str) -> list[str]:
    """Sorted class names seen in the training labels (empty for regression)."""
    if kind == REGRESSION:
        return []
    names = {n for v in values for n in (label_set(v) if kind == MULTILABEL else [category_key(v)])}
    numeric = all(_number(n) is not None for n in names)
    return sorted(names, key=lambda n: (_number(n), n) if numeric else (0.0, n))


def require_classes(classes: list[str], kind: str, where: str) -> None:
    """Refuse a classification label column whose training rows hold a single class.

    A classifier (and its metrics) needs two classes or more; ``where`` names the table and column.
    No classes at all means no usable training rows, which the split check reports.
    """
    if kind != REGRESSION and len(classes) == 1:
        raise DataError(
            f"{where} has a single class ({classes[0]!r}) in the training rows, and a classifier needs two or "
            f"more; add training rows of other classes, or set dataset.label_column to the column to predict"
        )


def spec_task(kind: str, classes: list[str]) -> tuple[str, int]:
    """The data spec's task type and number of outputs."""
    if kind == RETRIEVAL:
        return RETRIEVAL, 0
    if kind == REGRESSION:
        return "regression", 1
    if kind == MULTILABEL:
        return "multilabel", len(classes)
    return ("binary", 1) if len(classes) == 2 else ("multiclass", len(classes))


def unlabelled(count: int, kind: str, classes: list[str]) -> torch.Tensor:
    """A zero label tensor of the kind's shape and dtype for ``count`` rows.

    It fills the batch's ``label`` key where the labels are not read (``mmrun predict``), and
    is the tensor ``encode`` fills in.
    """
    if kind == REGRESSION:
        return torch.zeros(count)
    if kind == MULTILABEL:
        return torch.zeros(count, len(classes))
    return torch.zeros(count, dtype=torch.long)


def encode(values: list[Any], kind: str, classes: list[str]) -> tuple[torch.Tensor, dict[int, str]]:
    """Label tensor for every row and ``{row index: reason}`` for the rows that cannot be used."""
    problems: dict[int, str] = {}
    index = {name: i for i, name in enumerate(classes)}
    known = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
    target = unlabelled(len(values), kind, classes)
    for row, value in enumerate(values):
        if value is None:
            problems[row] = "missing label"
        elif kind == REGRESSION:
            number = _number(value)
            if number is None:
                problems[row] = f"label {value!r} is not a number (the task is regression)"
            else:
                target[row] = number
        else:
            names = label_set(value) if kind == MULTILABEL else [category_key(value)]
            unseen = [n for n in names if n not in index]
            if unseen:
                problems[row] = f"label {'|'.join(unseen)!r} never appears in the training rows (known: {known})"
            elif kind == MULTILABEL:
                target[row, [index[n] for n in names]] = 1.0
            else:
                target[row] = index[names[0]]
    return target, problems


def group_codes(values: list[Any] | None, count: int) -> tuple[torch.Tensor, dict[int, str]]:
    """Group codes (int64 ``[count]``) for the group cells ``values``, and ``{row: reason}`` for empty cells.

    Equal cells (compared as text, so ``3`` and ``"3"`` match) get one code, in order of first
    appearance; an empty cell is a problem (its code is -1). ``values=None``: no group column,
    every row its own group.
    """
    if values is None:
        return torch.arange(count), {}
    codes: dict[str, int] = {}
    target = torch.full((count,), -1, dtype=torch.long)
    problems: dict[int, str] = {}
    for row, value in enumerate(values):
        key = category_key(value)
        if key is None:
            problems[row] = "empty group id (every row needs the id of the item it belongs to)"
        else:
            target[row] = codes.setdefault(key, len(codes))
    return target, problems
