"""A comparison as text: CSV (full precision), Markdown and a rich table (rounded, same cells)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from mmrun.sweep.stats import ALPHA
from mmrun.sweep.table import Comparison, Reference, Row

NOT_SIGNIFICANT = "not significant"
NOT_RANKED = "reference (not ranked)"


def _number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _mean_std(summary) -> str:
    if summary is None:
        return ""
    return _number(summary.mean) if summary.std is None else f"{summary.mean:.4f} ± {summary.std:.4f}"


def _interval(summary) -> str:
    if summary is None or summary.ci_low is None:
        return ""
    return f"[{summary.ci_low:.4f}, {summary.ci_high:.4f}]"


def _versus_best(row: Row, comparison: Comparison) -> str:
    if row is comparison.best:
        return "best"
    test = row.versus_best
    if test is None:
        return "n/a (< 2 shared seeds)"
    flag = f" {NOT_SIGNIFICANT}" if not test.significant else ""
    return f"p={test.p_value:.3g} ({test.name}, {test.pairs} pairs){flag}"


def _setting(value: str) -> str:
    """Sampled floats (``optimizer.lr=0.003600091192911611``) shown with 4 significant digits."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if value.lstrip("-").isdigit() else f"{number:.4g}"


def _beats(row: Row) -> str:
    return {True: "yes", False: "no", None: ""}[row.beats_baseline]


def headers(comparison: Comparison) -> list[str]:
    """Column titles of the Markdown and rich tables."""
    titles = ["rank", *comparison.group_by, f"{comparison.metric} mean ± std", "95% CI", "seeds",
              f"{comparison.test_metric} mean ± std", "parameters", "train time (s)", "peak memory (MB)",
              "vs best (paired)"]
    return titles + ["beats baseline"] if comparison.baseline else titles


def cells(row: Row, comparison: Comparison) -> list[str]:
    """One row of the Markdown and rich tables."""
    values = [
        str(row.rank),
        *(_setting(row.settings[k]) for k in comparison.group_by),
        _mean_std(row.metric),
        _interval(row.metric),
        str(row.metric.n if row.metric else 0),
        _mean_std(row.test_metric),
        "" if row.parameters is None else f"{row.parameters:,}",
        _number(row.train_time_s, 1),
        _number(row.peak_memory_mb, 0),
        _versus_best(row, comparison),
    ]
    return values + [_beats(row)] if comparison.baseline else values


def reference_cells(reference: Reference, comparison: Comparison) -> list[str]:
    """The baseline row of the Markdown and rich tables: its label where the settings go, no rank."""
    label = [reference.label, *[""] * (len(comparison.group_by) - 1)] if comparison.group_by else []
    return [
        "" if comparison.group_by else reference.label,
        *label,
        _mean_std(reference.metric),
        "",
        str(reference.metric.n if reference.metric else 0),
        _mean_std(reference.test_metric),
        "",
        _number(reference.time_s, 1),
        "",
        NOT_RANKED,
        "",
    ]


def baseline_warning(comparison: Comparison) -> str:
    """One line naming the configurations that do not beat the baseline ("" when all do, or none)."""
    below, reference = comparison.below_baseline, comparison.baseline
    if not below or reference is None:
        return ""
    direction = "higher" if comparison.mode == "max" else "lower"
    return (f"{len(below)} of {len(comparison.rows)} configurations do not beat the {reference.label} on "
            f"{comparison.metric} ({direction} is better; undertrained or mis-specified?): "
            + "; ".join(row.label for row in below))


def single_modality_line(comparison: Comparison) -> str:
    """The best single-modality configuration and which configurations beat it ("" without one)."""
    single = comparison.best_single_modality
    if single is None:
        return ""
    better = [row for row in comparison.rows[: comparison.rows.index(single)] if row.metric]
    return (f"best single modality: {single.label}, {comparison.metric} {_mean_std(single.metric)}; "
            f"{len(better)} configuration(s) rank above it" + (f": {'; '.join(r.label for r in better)}" if better else ""))


def write_csv(comparison: Comparison, path: Path) -> None:
    """One line per configuration with unrounded numbers, for pandas or a spreadsheet."""
    m, t = comparison.metric, comparison.test_metric
    fields = ["rank", *comparison.group_by, f"{m} mean", f"{m} std", f"{m} ci95 low", f"{m} ci95 high", "seeds",
              f"{t} mean", f"{t} std", "parameters", "train_time_s", "peak_memory_mb", "paired test", "pairs",
              "p_value", "significant", "run folders"]
    reference = comparison.baseline
    if reference:
        fields += ["beats baseline", f"baseline {m} mean", "reference"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(fields)
        for row in comparison.rows:
            s, ts, test = row.metric, row.test_metric, row.versus_best
            values: list[Any] = [
                row.rank, *(row.settings[k] for k in comparison.group_by),
                s and s.mean, s and s.std, s and s.ci_low, s and s.ci_high, s.n if s else 0,
                ts and ts.mean, ts and ts.std, row.parameters, row.train_time_s, row.peak_memory_mb,
                test and test.name, test and test.pairs, test and test.p_value,
                "" if test is None else test.significant,
                ";".join(str(r.path) for r in row.runs),
            ]
            if reference:
                values += [_beats(row), row.baseline, ""]
            writer.writerow(["" if v is None else v for v in values])
        if reference:  # not ranked: no rank, no test
            s, ts = reference.metric, reference.test_metric
            values = [
                "", *("" for _ in comparison.group_by),
                s and s.mean, s and s.std, "", "", s.n if s else 0, ts and ts.mean, ts and ts.std,
                "", reference.time_s, "", "", "", "", "", ";".join(str(r.path) for r in reference.runs),
                "", "", reference.label,
            ]
            writer.writerow(["" if v is None else v for v in values])


def _markdown_row(values: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in values) + " |"


def markdown(comparison: Comparison, extra_sections: list[str] = ()) -> str:
    """The report as Markdown: the ranked table, the failed runs, then any extra sections."""
    direction = "higher" if comparison.mode == "max" else "lower"
    lines = [
        "# Comparison",
        "",
        f"Metric: `{comparison.metric}` at each run's best epoch ({direction} is better); "
        f"`{comparison.test_metric}` beside it. Rows group runs by "
        f"{', '.join(f'`{k}`' for k in comparison.group_by) or 'nothing (one group)'}; seeds are the repeats. "
        f"Each row is tested against the best over the seeds both have (paired t-test, Wilcoxon from 6 pairs); "
        f"*{NOT_SIGNIFICANT}* means p ≥ {ALPHA}.",
        "",
    ]
    reference = comparison.baseline
    if reference:
        lines[-2] += (
            f" The *{reference.label}* row is a reference, not ranked: logistic regression or ridge and "
            f"gradient boosting on simple features of each run's own splits, selected on validation "
            f"(`baseline` in each metrics.json), mean ± std over its {reference.metric.n} distinct fit(s); "
            f"its train time is the baseline's own. "
            f"*beats baseline* compares each configuration's mean with the baseline fitted on its runs' data."
        )
    titles = headers(comparison)
    lines.append("| " + " | ".join(titles) + " |")
    lines.append("|" + "|".join("---:" if i and i > len(comparison.group_by) else "---" for i in range(len(titles))) + "|")
    for row in comparison.rows:
        lines.append(_markdown_row(cells(row, comparison)))
    if reference:
        lines.append(_markdown_row(reference_cells(reference, comparison)))
        if warning := baseline_warning(comparison):
            lines += ["", f"**Warning:** {warning}."]
    if single := single_modality_line(comparison):
        lines += ["", single[0].upper() + single[1:] + "."]
    if comparison.failed:
        lines += ["", f"## Runs that did not complete ({len(comparison.failed)})", "",
                  "| folder | overrides | status | detail |", "|---|---|---|---|"]
        for run in comparison.failed:
            overrides = " ".join(f"{k}={v}" for k, v in run.overrides.items())
            lines.append(f"| {run.path} | `{overrides}` | {run.status} | {run.error.replace('|', '/')} |")
    for section in extra_sections:
        lines += ["", section]
    return "\n".join(lines) + "\n"


def rich_table(comparison: Comparison, title: str) -> Table:
    """The ranked table for the terminal, the best row in bold green."""
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(headers(comparison)):
        table.add_column(name, justify="right" if i == 0 or i > len(comparison.group_by) else "left")
    for row in comparison.rows:
        style = "bold green" if row is comparison.best else None
        table.add_row(*map(escape, cells(row, comparison)), style=style)  # a value such as [image] is not markup
    if comparison.baseline:
        table.add_section()
        table.add_row(*map(escape, reference_cells(comparison.baseline, comparison)), style="italic cyan")
    return table


def failed_table(comparison: Comparison) -> Table:
    table = Table(title=f"runs that did not complete ({len(comparison.failed)})", title_justify="left",
                  title_style="bold red")
    table.add_column("folder")
    table.add_column("status")
    table.add_column("detail")
    for run in comparison.failed:
        table.add_row(escape(str(run.path)), run.status, escape(run.error))
    return table
