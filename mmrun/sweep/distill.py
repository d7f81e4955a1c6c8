"""The distillation section of a report: per student, scratch vs distilled vs teacher.

Runs trained with ``+distill`` carry a ``distill`` block in metrics.json (``mmrun.distill.run``):
their role (``scratch`` for ``distill.losses=[]``, else ``distilled``), their losses and the
teacher's test metrics on the run's own test split. A *student* is a value of every grouping
key of the comparison but ``distill.losses``, named by the modalities it reads (``[image]``
in ``+sweep=distill``). For each student and set of losses the section gives the scratch, the
distilled and the teacher's test metric (mean ± std over seeds), the paired test of distilled
against scratch over shared seeds, and the fraction of the teacher-student gap recovered,
``(distilled_s - scratch_s) / (teacher_s - scratch_s)`` per seed ``s``, with the 95% confidence
interval of its mean over seeds (Student's t, ``mmrun.sweep.stats``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.markup import escape
from rich.table import Table

from mmrun.sweep.formats import _interval, _mean_std
from mmrun.sweep.stats import PairedTest, SeedSummary, metric_range, paired_test, summarise
from mmrun.sweep.table import Comparison

LOSSES_KEY = "distill.losses"
MODALITIES_KEY = "dataset.modalities"  # the student's modalities are named from the run's own record
SCRATCH = "scratch"


@dataclass
class DistillRow:
    """One student taught with one set of losses, against its scratch runs and its teacher."""

    student: str
    losses: str
    scratch: SeedSummary | None
    distilled: SeedSummary | None
    teacher: SeedSummary | None
    gap: SeedSummary | None
    versus_scratch: PairedTest | None


def distill_rows(comparison: Comparison) -> list[DistillRow]:
    """The section's rows, students in the comparison's rank order; empty without distillation runs."""
    metric = comparison.test_metric
    keys = [key for key in comparison.group_by if key != LOSSES_KEY]
    students: dict[str, dict[str, dict[int, float]]] = {}
    teachers: dict[str, dict[int, float]] = {}
    for row in comparison.rows:
        for run in row.runs:
            block, value = run.summary.get("distill"), run.value(metric)
            if not isinstance(block, dict) or value is None or run.seed is None:
                continue
            student = ", ".join([f"[{','.join(block.get('student_modalities') or [])}]"]
                                + [f"{key}={run.setting(key)}" for key in keys if key != MODALITIES_KEY])
            losses = SCRATCH if block.get("role") == SCRATCH else "+".join(block.get("losses") or {})
            students.setdefault(student, {}).setdefault(losses, {})[run.seed] = value
            taught = (block.get("teacher_test") or {}).get(metric)
            if taught is not None:
                teachers.setdefault(student, {})[run.seed] = float(taught)
    bounds = metric_range(metric)
    rows = []
    for student, by_losses in students.items():
        scratch, teacher = by_losses.get(SCRATCH, {}), teachers.get(student, {})
        for losses, distilled in by_losses.items():
            if losses == SCRATCH:
                continue
            gaps = [(distilled[s] - scratch[s]) / (teacher[s] - scratch[s]) for s in sorted(distilled)
                    if s in scratch and s in teacher and teacher[s] != scratch[s]]
            rows.append(DistillRow(student, losses, summarise(list(scratch.values()), bounds),
                                   summarise(list(distilled.values()), bounds),
                                   summarise(list(teacher.values()), bounds), summarise(gaps),
                                   paired_test(distilled, scratch)))
    return rows


def _versus_scratch(row: DistillRow) -> str:
    test = row.versus_scratch
    return "n/a" if test is None else f"p={test.p_value:.2g} {test.mark}"


HEADER = ("student", "losses", "scratch", "distilled", "teacher", "gap recovered", "95% CI", "vs scratch")


def _cells(row: DistillRow) -> list[str]:
    return [row.student, row.losses, _mean_std(row.scratch), _mean_std(row.distilled), _mean_std(row.teacher),
            _mean_std(row.gap), _interval(row.gap), _versus_scratch(row)]


def markdown(rows: list[DistillRow], metric: str) -> str:
    """The section for comparison.md."""
    lines = [
        "## Distillation",
        "",
        (f"`{metric}` of each student from scratch (`distill.losses=[]`), distilled, and of its teacher on the "
         f"same test rows, mean ± std over seeds. Gap recovered = (distilled - scratch) / (teacher - scratch) per "
         f"seed (1: the teacher's level, 0: no gain, below 0: worse than scratch), its mean ± std and 95% CI over "
         f"seeds; vs scratch: paired t-test over shared seeds (*: p < 0.05, ns: not significant)."),
        "",
        "| " + " | ".join(HEADER) + " |",
        "|---|---|" + "---:|" * (len(HEADER) - 2),
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in _cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def rich_table(rows: list[DistillRow], metric: str) -> Table:
    """The section for the terminal."""
    table = Table(title=f"distillation: {metric}, scratch vs distilled vs teacher (gap recovered: 1 = teacher)",
                  title_justify="left")
    for i, title in enumerate(HEADER):
        table.add_column(title, justify="left" if i < 2 else "right", overflow="fold")
    for row in rows:
        table.add_row(*map(escape, _cells(row)))
    return table
