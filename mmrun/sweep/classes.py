"""Configurations that differ only in fusions of one function class, marked so that nobody
reads their gaps as a finding.

Fusions such as ``sum`` and ``weighted`` compute the same functions when every modality is
present (``mmrun.fusion_classes``); a sweep over both compares two parametrisations of one
model. Rows are in one shared class when their fusions declare the same class and their other
settings agree (a fusion option that keeps the class, such as late's ``combine``, may differ
too). Each shared class gets a footnote mark, shown after the row's first setting in every
table and figure, and a line under the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmrun.fusion_classes import FusionClass, fusion_class

if TYPE_CHECKING:
    from mmrun.sweep.table import Row

MARKS = ("†", "‡", "§", "¶")
FUSION_KEY = "fusion"
TARGET_KEY = "fusion._target_"


@dataclass
class SharedClass:
    """Rows whose fusions are one function class (``name``), shown with ``mark``."""

    mark: str
    name: str
    rows: list[Row]

    @property
    def line(self) -> str:
        return (f"{self.mark} {'; '.join(row.label for row in self.rows)}: one function class ({self.name}) when "
                f"every modality is present, differently parametrised; gaps between them are noise, not a finding")


def _row_class(row: Row) -> FusionClass | None:
    """The class every run of the row declares (None: no runs, a fusion without one, or mixed)."""
    classes = {fusion_class(run.setting(TARGET_KEY)) for run in row.runs}
    return classes.pop() if len(classes) == 1 else None


def mark_shared_classes(rows: list[Row]) -> list[SharedClass]:
    """Group ``rows`` (in rank order) into shared classes, set each member's ``class_mark``."""
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        declared = _row_class(row)
        if declared is None:
            continue
        neutral = {FUSION_KEY, *(f"{FUSION_KEY}.{key}" for key in declared.keeps)}
        others = tuple((k, v) for k, v in row.settings.items() if k not in neutral)
        groups.setdefault((declared.name, others), []).append(row)
    several = [(name, members) for (name, _), members in groups.items() if len(members) > 1]
    shared = [SharedClass(MARKS[i % len(MARKS)] * (1 + i // len(MARKS)), name, members)  # †, ‡, ..., ††
              for i, (name, members) in enumerate(several)]
    for group in shared:
        for row in group.rows:
            row.class_mark = group.mark
    return shared
