"""Which manifest column is which modality: inferred from the values, or set in the config.

Inference (``dataset.columns=null``), for every column except the label, split and group columns
(with ``task=retrieval`` the label column is not read, and is ignored if the table has one):

* most non-empty cells are paths ending in .png .jpg .jpeg .bmp .webp -> an ``image`` modality;
  .wav .flac .ogg -> ``audio``;
* a column named ``id`` or ``*_id`` (also ``user``/``item``) -> ignored when every value is
  distinct (a row identifier), else ``categorical``;
* most cells are numbers -> ``tabular`` (all numeric columns form one vector);
* strings: ``categorical`` when the cells are short (at most three words) and repeat (at
  most half as many distinct values as cells), ignored when they are distinct single words
  (identifiers, file names without a known extension), ``text`` otherwise;
* a column with no non-empty cell is ignored.

Image, audio and text columns each become one modality named after the column; the numeric
columns form one modality named ``tabular`` and the categorical ones one named
``categorical``. ``dataset.columns={image: photo, tabular: [age, price]}`` sets the mapping
explicitly and uses only the columns it names. The group column (``dataset.group_column``,
retrieval only: rows with equal values are one item) is never a modality.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mmrun.data.preprocess import audio, image
from mmrun.data.preprocess.tabular import parse_number
from mmrun.data.table import Table
from mmrun.errors import ConfigError, DataError

KINDS = ("image", "audio", "text", "tabular", "categorical")
GROUPED_KINDS = ("tabular", "categorical")  # several columns form one modality named after the kind
FILE_EXTENSIONS = {"image": image.EXTENSIONS, "audio": audio.EXTENSIONS}
RESERVED_NAMES = ("label", "present")
ID_NAME = re.compile(r"(.*[_ -])?id|user|item", re.IGNORECASE)


@dataclass(frozen=True)
class Modality:
    """One modality of the manifest: its batch key, kind and source column(s)."""

    name: str
    kind: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ColumnPlan:
    """The role of every column: modalities (sorted by name), label (None: not read), split, ignored,
    and group (retrieval: equal values mark one item; None: each row is its own item)."""

    modalities: tuple[Modality, ...]
    label: str | None
    split: str | None
    ignored: tuple[str, ...] = ()
    group: str | None = None

    def to_state(self) -> dict:
        return {
            "modalities": [{"name": m.name, "kind": m.kind, "columns": list(m.columns)} for m in self.modalities],
            "label": self.label,
            "split": self.split,
            "group": self.group,
        }

    @classmethod
    def from_state(cls, state: dict) -> "ColumnPlan":
        modalities = tuple(Modality(m["name"], m["kind"], tuple(m["columns"])) for m in state["modalities"])
        return cls(modalities, state["label"], state["split"], group=state.get("group"))

    def describe(self) -> str:
        parts = [f"{m.kind} {m.columns[0]!r}" if m.kind not in GROUPED_KINDS else f"{m.kind} {list(m.columns)}"
                 for m in self.modalities]
        parts.append(f"label {self.label!r}" if self.label else "labels not read")
        parts.append(f"split {self.split!r}" if self.split else "split by dataset.splits fractions")
        if self.group:
            parts.append(f"group {self.group!r}")
        if self.ignored:
            parts.append(f"ignored {list(self.ignored)}")
        return ", ".join(parts)


def _share(values: list[Any], test) -> float:
    return sum(1 for v in values if test(v)) / len(values)


def _is_number(value: Any) -> bool:
    try:
        parse_number(value)
    except (TypeError, ValueError):
        return False
    return True


def infer_kind(name: str, values: list[Any]) -> str | None:
    """The modality kind of a column from its non-empty cells (``None``: ignore the column)."""
    if not values:
        return None
    strings = [v for v in values if isinstance(v, str)]
    for kind, extensions in FILE_EXTENSIONS.items():
        if strings and _share(values, lambda v: isinstance(v, str) and v.strip().lower().endswith(extensions)) > 0.5:
            return kind
    if any(isinstance(v, (list, dict)) for v in values):
        return None
    distinct = len(set(map(str, values)))
    if ID_NAME.fullmatch(name.strip()):
        return None if distinct == len(values) else "categorical"
    if _share(values, _is_number) > 0.5:
        return "tabular"
    words = [len(str(v).split()) for v in values]
    if max(words) <= 3 and distinct <= len(values) / 2:
        return "categorical"
    if max(words) == 1 and distinct == len(values):
        return None
    return "text"


def _explicit(table: Table, columns: dict, used: set[str]) -> dict[str, list[str]]:
    """``dataset.columns`` as ``{kind: [column, ...]}``, checked against the table."""
    unknown = sorted(set(columns) - set(KINDS))
    if unknown:
        raise ConfigError(f"dataset.columns has unknown kind(s) {unknown}; use {list(KINDS)}, e.g. dataset.columns={{image: photo}}")
    result = {}
    for kind, names in columns.items():
        names = [names] if isinstance(names, str) else list(names or [])
        for column in names:
            if column not in table.columns:
                raise DataError(
                    f"{table.name} has no column {column!r} (dataset.columns.{kind}); its columns are {table.columns}"
                )
            if column in used:
                raise ConfigError(
                    f"column {column!r} is the label, split or group column and cannot also be dataset.columns.{kind}"
                )
        if names:
            result[kind] = names
    return result


def _pick_split(table: Table, split_column: str | None) -> str | None:
    if split_column == "auto":
        return "split" if "split" in table.columns else None
    if split_column and split_column not in table.columns:
        raise DataError(
            f"{table.name} has no split column {split_column!r} (dataset.split_column); its columns are "
            f"{table.columns}. Set dataset.split_column=null to split by dataset.splits fractions"
        )
    return split_column or None


def _pick_group(table: Table, group_column: str | None) -> str | None:
    if group_column and group_column not in table.columns:
        raise DataError(
            f"{table.name} has no group column {group_column!r} (dataset.group_column); its columns are "
            f"{table.columns}. Name the column whose equal values mark one item, or set dataset.group_column=null"
        )
    return group_column or None


def plan_columns(
    table: Table,
    columns: dict | None,
    label_column: str,
    split_column: str | None,
    modalities: list[str] | None,
    group_column: str | None = None,
    read_label: bool = True,
    text_columns: tuple[str, ...] = (),
) -> ColumnPlan:
    """Decide every column's role (see the module docstring).

    ``read_label=False`` (retrieval): the label column is not read and need not exist; the
    group column, when given, must. ``text_columns`` are read as text whatever their values
    look like (a caption column of few distinct captions would otherwise be categorical).
    """
    for column in text_columns:
        if column not in table.columns:
            raise DataError(f"{table.name} has no column {column!r} to caption (task.target); its columns are "
                            f"{table.columns}: set task.target=<the caption column>")
    if read_label and label_column not in table.columns:
        raise DataError(
            f"{table.name} has no label column {label_column!r}; name the target column 'label' or set "
            f"dataset.label_column=<column>. Its columns are {table.columns}"
        )
    split = _pick_split(table, split_column)
    group = _pick_group(table, group_column)
    used = ({label_column} if read_label else set()) | {c for c in (split, group) if c}
    not_inferred = used | ({label_column} & set(table.columns))
    if columns:
        by_kind = _explicit(table, dict(columns), used)
        ignored = [c for c in table.columns if c not in used and not any(c in v for v in by_kind.values())]
    else:
        by_kind, ignored = {}, []
        for column in table.columns:
            if column in not_inferred:
                if column not in used:
                    ignored.append(column)  # the label column of a retrieval table: not read
                continue
            if column in text_columns:
                kind = "text"
            else:
                kind = infer_kind(column, [row[column] for row in table.rows if row[column] is not None])
            if kind is None:
                ignored.append(column)
            else:
                by_kind.setdefault(kind, []).append(column)
    found = []
    for kind, names in by_kind.items():
        if kind in GROUPED_KINDS:
            found.append(Modality(kind, kind, tuple(names)))
        else:
            found += [Modality(name, kind, (name,)) for name in names]
    return ColumnPlan(_select(table, found, modalities), label_column if read_label else None, split, tuple(ignored),
                      group)


def _select(table: Table, found: list[Modality], wanted: list[str] | None) -> tuple[Modality, ...]:
    """Check modality names and keep those in ``dataset.modalities`` (all when null)."""
    names = [m.name for m in found]
    clashes = sorted({n for n in names if names.count(n) > 1 or n in RESERVED_NAMES})
    if clashes:
        raise DataError(
            f"{table.name}: modality name(s) {clashes} clash with another modality or a batch key; rename the column(s)"
        )
    if wanted is not None:
        missing = sorted(set(wanted) - set(names))
        if missing or not wanted:
            raise ConfigError(f"dataset.modalities={list(wanted)} must name some of this manifest's modalities {sorted(names)}")
        found = [m for m in found if m.name in wanted]
    if not found:
        raise DataError(
            f"{table.name}: no column looks like a modality (image or audio paths, text, numbers, categories); "
            f"name them with dataset.columns={{image: <column>, text: <column>, tabular: [<column>, ...]}}"
        )
    return tuple(sorted(found, key=lambda m: m.name))

