"""Content tables of interaction data: one row of content per item, or per user, read once.

Recommendation data describes two kinds of entity besides the interactions: items (the
catalogue: titles, images, prices, categories) and users (profile features: age, country, a
short bio). Each has a content table with one row per entity: its own table
(``dataset.items``, ``dataset.users``) or each entity's first row of the interactions table.
Its columns are read with the manifest's readers (``mmrun.data.modalities``: images and audio
decoded once through ``mmrun.data.cache``). This module holds what both sides share: the ids
of an entity table, the first rows of the interactions table, the readers, the check of the
rows, and the per-entity tensors with their present flags.
"""

from __future__ import annotations

import torch

from mmrun.data.cache import TensorCache
from mmrun.data.columns import ColumnPlan
from mmrun.data.modalities import Reader, log_cache, make_reader
from mmrun.data.preprocess.tabular import category_key
from mmrun.data.table import Table
from mmrun.data.validation import Problems, report_skipped
from mmrun.errors import DataError


def entity_ids(table: Table, column: str, entity: str, option: str) -> list[str]:
    """The ids of an entity table (``dataset.<option>``), one per row; an empty or repeated id stops the run."""
    first: dict[str, int] = {}
    for row, record in enumerate(table.rows):
        key = category_key(record[column])
        if key is None:
            raise DataError(f"{table.name}:{table.lines[row]} has an empty {column!r} cell; give every {entity} an id "
                            f"(dataset.{option})")
        if key in first:
            raise DataError(f"{table.name}:{table.lines[row]} repeats {entity} id {key!r} of line "
                            f"{table.lines[first[key]]}; give every {entity} one row in the {entity} table")
        first[key] = row
    return list(first)


def first_rows(table: Table, column: str) -> tuple[Table, list[str]]:
    """A view of each entity's first row of ``table`` (entities keyed by ``column``) and their ids."""
    first: dict[str, int] = {}
    for row, record in enumerate(table.rows):
        key = category_key(record[column])
        if key is not None and key not in first:
            first[key] = row
    rows = list(first.values())
    return Table(table.path, table.columns, [table.rows[r] for r in rows], [table.lines[r] for r in rows]), list(first)


def without_columns(table: Table, columns: set[str]) -> Table:
    """A view of ``table`` whose column list leaves ``columns`` out (inference never sees them)."""
    return Table(table.path, [c for c in table.columns if c not in columns], table.rows, table.lines)


def read_content(table: Table, plan: ColumnPlan | None, options: dict, cache: TensorCache) -> dict[str, Reader]:
    """One reader per modality of ``plan``, each having read its column(s) of ``table``."""
    if plan is None:
        return {}
    readers = {m.name: make_reader(m, options[m.kind], cache) for m in plan.modalities}
    for reader in readers.values():
        reader.read(table)
    log_cache(readers, cache)
    return readers


def check_content(table: Table, readers: dict[str, Reader], allow_missing: bool, on_error: str, where: str,
                  listing: str) -> tuple[set[int], dict | None]:
    """Bad content rows: raise with one message (``where`` first), or skip them, listed in ``listing``."""
    problems = Problems(table)
    for reader in readers.values():
        for row, (column, reason) in reader.problems.items():
            if not (allow_missing and reader.missing[row]):
                problems.add(row, column, reason)
    if not problems.rows:
        return set(), None
    if on_error == "raise":
        raise DataError(where + problems.message())
    skipped = problems.skipped()
    report_skipped(skipped, listing)
    return problems.rows, skipped


def gather(readers: dict[str, Reader], states: dict, content_row: torch.Tensor
           ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Per-entity tensors (entity ``i`` has content row ``content_row[i]``; -1: none, zeros) and present flags."""
    count = len(content_row)
    has_row = content_row >= 0
    tensors: dict[str, torch.Tensor] = {}
    present: dict[str, torch.Tensor] = {}
    for name, reader in readers.items():
        data = reader.tensor(states[name])
        data[reader.missing] = 0
        full = torch.zeros(count, *data.shape[1:], dtype=data.dtype)
        full[has_row] = data[content_row[has_row]]
        tensors[name] = full
        present[name] = has_row.clone()
        present[name][has_row] = ~reader.missing[content_row[has_row]]
    return tensors, present


def fit_states(readers: dict[str, Reader], rows: torch.Tensor) -> dict:
    """Each reader's preprocessing fitted on the content ``rows`` it has a value for."""
    return {name: reader.fit(rows[~reader.missing[rows]]) for name, reader in readers.items()}
