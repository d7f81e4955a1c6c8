"""Numeric columns (one ``tabular`` vector) and categorical columns (one ``categorical`` id vector).

Tabular: the numeric columns form ``float [F]``. Each is standardised with the training
split's mean and standard deviation (``standardize``); an empty cell is imputed with the
training mean (0 after standardising), and every column that had empty cells in training
gets a 0/1 *missing* flag appended (``missing_flags``), so the model can tell an imputed
value from a real one. A value that is present but not a number is a bad row (validation).

Categorical: ``int64 [K]``, one id per categorical column, from a vocabulary fitted on the
training split. Ids are global across the K columns so one embedding table of
``vocab_size`` rows serves them all: id 0 means unknown or empty (any column), and column
``k``'s values occupy ``offsets[k] .. offsets[k] + len(values[k]) - 1`` with
``offsets[k] = 1 + sum(len(values[j]) for j < k)``. Values seen fewer than
``min_frequency`` times in training map to 0.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch

from mmrun.errors import ConfigError


@dataclass(frozen=True)
class TabularOptions:
    """``dataset.tabular``: standardise with training statistics; flag imputed cells."""

    standardize: bool = True
    missing_flags: bool = True


@dataclass(frozen=True)
class CategoricalOptions:
    """``dataset.categorical``: values seen fewer times in training become unknown (id 0)."""

    min_frequency: int = 1

    def __post_init__(self) -> None:
        if self.min_frequency < 1:
            raise ConfigError(f"dataset.categorical.min_frequency={self.min_frequency} must be at least 1")


# Cells that mean "no value" in a numeric column: pandas' default ``na_values`` of read_csv, so
# a table exported by pandas, R or a spreadsheet reads the same here (compared lower-cased).
MISSING_MARKERS = frozenset({"", "#n/a", "#n/a n/a", "#na", "-1.#ind", "-1.#qnan", "-nan", "1.#ind", "1.#qnan",
                             "<na>", "n/a", "na", "nan", "null", "none"})


def parse_number(value: Any) -> float | None:
    """A cell as a finite float, ``None`` when empty or a missing marker (``n/a``, ``NA``, ``null``,
    ...); raise ``ValueError`` when not a number."""
    if value is None or (isinstance(value, str) and value.strip().lower() in MISSING_MARKERS):
        return None
    if isinstance(value, bool):
        return float(value)
    number = float(value) if isinstance(value, (int, float)) else float(str(value).strip())
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise ValueError("infinite")
    return number


def fit_numeric(columns: list[str], values: torch.Tensor, standardize: bool, missing_flags: bool) -> dict:
    """Statistics of ``values`` ``[N_train, F]`` (NaN = missing) for ``transform_numeric``."""
    observed = ~values.isnan()
    counts = observed.sum(0).clamp_min(1)
    mean = torch.where(observed, values, 0.0).sum(0) / counts
    variance = torch.where(observed, (values - mean).square(), 0.0).sum(0) / counts
    std = variance.sqrt().clamp_min(1e-6)
    if not standardize:
        std = torch.ones_like(std)
    flagged = [c for c, has_missing in zip(columns, (~observed).any(0).tolist()) if has_missing] if missing_flags else []
    return {"columns": list(columns), "mean": mean.tolist(), "std": std.tolist(), "standardize": standardize,
            "flags": flagged}


def transform_numeric(values: torch.Tensor, state: dict) -> torch.Tensor:
    """``[N, F]`` with NaN for missing -> ``[N, F + flags]`` imputed, standardised, flagged."""
    mean = torch.tensor(state["mean"])
    std = torch.tensor(state["std"])
    missing = values.isnan()
    filled = torch.where(missing, mean, values)
    if state["standardize"]:
        filled = (filled - mean) / std
    flag_index = [state["columns"].index(c) for c in state["flags"]]
    return torch.cat([filled, missing[:, flag_index].float()], 1)


def width(state: dict) -> int:
    return len(state["columns"]) + len(state["flags"])


def category_key(value: Any) -> str | None:
    """How a categorical cell is compared: its text (``3`` and ``"3"`` are the same id)."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def fit_categorical(columns: list[str], cells: list[list[Any]], min_frequency: int) -> dict:
    """Per-column vocabularies from the training cells ``cells[k]`` of column ``k``."""
    values = []
    for column_cells in cells:
        counts = Counter(k for k in map(category_key, column_cells) if k is not None)
        values.append(sorted(v for v, c in counts.items() if c >= min_frequency))
    return {"columns": list(columns), "values": values, "min_frequency": min_frequency}


def categorical_vocab_size(state: dict) -> int:
    return 1 + sum(len(v) for v in state["values"])


def transform_categorical(cells: list[list[Any]], state: dict) -> torch.Tensor:
    """``cells[k][n]`` -> global ids ``int64 [N, K]`` (0 = unknown or empty)."""
    count = len(cells[0]) if cells else 0
    ids = torch.zeros(count, len(state["columns"]), dtype=torch.long)
    offset = 1
    for k, (column_cells, values) in enumerate(zip(cells, state["values"])):
        index = {v: offset + i for i, v in enumerate(values)}
        ids[:, k] = torch.tensor([index.get(category_key(c), 0) for c in column_cells], dtype=torch.long)
        offset += len(values)
    return ids
