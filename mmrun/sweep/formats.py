"""A comparison as text: CSV (full precision), Markdown (rounded) and a rich table for the terminal.

The terminal table holds the essential columns (rank, settings, metric, seeds, test metric,
a short paired test, beats baseline) and fits a 100-column terminal; the CI, parameters,
time, memory and the long test description are in comparison.md and comparison.csv. When the
runs ran the analysis, its columns (``mmrun.sweep.analysis``: relative robustness, largest
Shapley share) follow in comparison.md and .csv, and in a second terminal table of seed means.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from mmrun.sweep.analysis import Measure
from mmrun.sweep.stats import ALPHA
from mmrun.sweep.table import Comparison, Reference, Row

NOT_SIGNIFICANT = "not significant"
NOT_RANKED = "reference (not ranked)"
REPEATS_FIELD = "repeats set aside"
CLASS_FIELD = "shared function class"
PARAMETER_SPREAD = 1.10  # parameter counts further apart than this ratio are pointed out
TERMINAL_KEY = (f"vs best: paired test against the best over shared seeds (*: p < {ALPHA}; ns: not significant; "
                f"n/a: < 2 shared seeds)")
TERMINAL_MORE = "CI, parameters, time and memory: comparison.md and .csv"
ANALYSIS_KEY = ("mean over seeds (± std and 95% CI: comparison.md and .csv); worst: the least robust modality, "
                "with how many seeds agree when they differ")


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


def _versus_best(row: Row, comparison: Comparison, short: bool = False) -> str:
    """The paired test against the best: in full for the files, in a few characters for the
    terminal (``best``, ``p=0.012 *``, ``p=0.31 ns``, ``n/a``)."""
    if row is comparison.best:
        return "best"
    test = row.versus_best
    if test is None:
        return "n/a" if short else "n/a (< 2 shared seeds)"
    if short:
        return f"p={test.p_value:.2g} {test.mark}"
    flag = f" {NOT_SIGNIFICANT}" if not test.significant else ""
    return f"p={test.p_value:.3g} ({test.name}, {test.pairs} pairs){flag}"


def _setting(value: str) -> str:
    """Sampled floats (``optimizer.lr=0.003600091192911611``) shown with 4 significant digits."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if value.lstrip("-").isdigit() else f"{number:.4g}"


def _measure(row: Row, measure: Measure, short: bool = False) -> str:
    """An analysis measure of a row: ``mean ± std (modality)``, or ``mean modality`` in short."""
    found = row.analysis.measures.get(measure.title) if row.analysis else None
    if found is None:
        return ""
    value = _number(found.seeds.mean, 3) if short else _mean_std(found.seeds)
    if found.modality is None:
        return value
    return f"{value} {found.modality}" if short else f"{value} ({found.modality})"


def _beats(row: Row) -> str:
    return {True: "yes", False: "no", None: ""}[row.beats_baseline]


def _seeds(summary) -> str:
    return str(summary.n if summary else 0)


def _blank(_) -> str:
    return ""


def _reference_label(reference: Reference) -> str:
    return reference.label


def _not_ranked(_) -> str:
    return NOT_RANKED


def _not_ranked_short(_) -> str:
    return "not ranked"


@dataclass(frozen=True)
class Column:
    """One column of the Markdown and terminal tables: its title, its cells and where it shows.

    ``reference`` gives the baseline row's cell. Secondary columns (``terminal=False``) go to
    comparison.md and .csv only, so that the terminal table fits 100 columns.
    """

    title: str
    cell: Callable[[Row], str]
    reference: Callable[[Reference], str] = _blank
    numeric: bool = True
    file: bool = True
    terminal: bool = True


def columns(comparison: Comparison, terminal: bool = False) -> list[Column]:
    """The columns of comparison.md (``terminal=False``) or of the terminal table, in order."""
    keys = comparison.group_by
    every = [
        Column("rank", lambda row: str(row.rank), _blank if keys else _reference_label),
        *(Column(key, lambda row, key=key, i=i: _setting(row.settings[key]) + ("" if i else row.class_mark),
                 _blank if i else _reference_label, numeric=False) for i, key in enumerate(keys)),
        Column(f"{comparison.metric} mean ± std", lambda row: _mean_std(row.metric),
               lambda ref: _mean_std(ref.metric)),
        Column("95% CI", lambda row: _interval(row.metric), terminal=False),
        Column("seeds", lambda row: _seeds(row.metric), lambda ref: _seeds(ref.metric)),
        Column(f"{comparison.test_metric} mean ± std", lambda row: _mean_std(row.test_metric),
               lambda ref: _mean_std(ref.test_metric)),
        Column("parameters", lambda row: "" if row.parameters is None else f"{row.parameters:,}", terminal=False),
        Column("train time (s)", lambda row: _number(row.train_time_s, 1), lambda ref: _number(ref.time_s, 1),
               terminal=False),
        Column("peak memory (MB)", lambda row: _number(row.peak_memory_mb, 0), terminal=False),
        Column("vs best (paired)", lambda row: _versus_best(row, comparison), _not_ranked, terminal=False),
        Column("vs best", lambda row: _versus_best(row, comparison, short=True), _not_ranked_short, file=False),
    ]
    if comparison.baseline:
        every.append(Column("beats baseline", _beats))
    every += [Column(m.title, lambda row, m=m: _measure(row, m), terminal=False) for m in comparison.measures]
    return [column for column in every if (column.terminal if terminal else column.file)]


def analysis_columns(comparison: Comparison) -> list[Column]:
    """The columns of the terminal's analysis table: rank, settings, each measure in short."""
    return [
        Column("rank", lambda row: str(row.rank)),
        *(Column(key, lambda row, key=key: _setting(row.settings[key]), numeric=False) for key in comparison.group_by),
        *(Column(m.short, lambda row, m=m: _measure(row, m, short=True)) for m in comparison.measures),
    ]


def cells(row: Row, comparison: Comparison, terminal: bool = False) -> list[str]:
    """One row of the Markdown (or the terminal) table."""
    return [column.cell(row) for column in columns(comparison, terminal)]


def reference_cells(reference: Reference, comparison: Comparison, terminal: bool = False) -> list[str]:
    """The baseline row: its label where the settings go (or in the rank column), no rank, no test."""
    return [column.reference(reference) for column in columns(comparison, terminal)]


def repeats_line(comparison: Comparison) -> str:
    """One line naming the runs set aside as repeats of a seed ("" when there are none)."""
    repeats = comparison.repeats
    if not repeats:
        return ""
    return (f"{len(repeats)} repeated run(s) of the same configuration and seed were set aside (the most recent run "
            f"of each seed counts, once): " + ", ".join(str(run.path) for run in repeats))


def class_lines(comparison: Comparison) -> list[str]:
    """One line per fusion function class that several rows share (``mmrun.sweep.classes``)."""
    return [shared.line for shared in comparison.shared_classes]


def parameters_line(comparison: Comparison) -> str:
    """One line when the configurations' parameter counts differ by more than 10% ("" otherwise)."""
    counts = [row.parameters for row in comparison.rows if row.parameters]
    if not counts or max(counts) <= PARAMETER_SPREAD * min(counts):
        return ""
    return (f"parameter counts differ by more than {PARAMETER_SPREAD - 1:.0%} between configurations ({min(counts):,} "
            f"to {max(counts):,}), so gaps may reflect size; compare fusions at one size with "
            f"fusion.param_budget=N or +sweep=fusions_fair")


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
    repeats = bool(comparison.repeats)  # the column only when there are some: other reports keep their shape
    if repeats:
        fields.append(REPEATS_FIELD)
    classes = {id(row): f"{shared.mark} {shared.name}" for shared in comparison.shared_classes for row in shared.rows}
    if classes:  # likewise only when rows share a fusion function class
        fields.append(CLASS_FIELD)
    reference = comparison.baseline
    if reference:
        fields += ["beats baseline", f"baseline {m} mean", "reference"]
    measures = comparison.measures
    for measure in measures:
        fields += [f"{measure.title} {stat}" for stat in ("mean", "std", "ci95 low", "ci95 high")]
        fields += [f"{measure.title} modality"] if measure.modality else []
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
                _folders(row.runs),
            ]
            if repeats:
                values.append(_folders(row.repeats))
            if classes:
                values.append(classes.get(id(row), ""))
            if reference:
                values += [_beats(row), row.baseline, ""]
            for measure in measures:
                values += _measure_fields(row, measure)
            writer.writerow(["" if v is None else v for v in values])
        if reference:  # not ranked: no rank, no test
            s, ts = reference.metric, reference.test_metric
            values = [
                "", *("" for _ in comparison.group_by),
                s and s.mean, s and s.std, "", "", s.n if s else 0, ts and ts.mean, ts and ts.std,
                "", reference.time_s, "", "", "", "", "", _folders(reference.runs),
                *([""] if repeats else []), *([""] if classes else []), "", "", reference.label,
                *("" for measure in measures for _ in range(4 + bool(measure.modality))),
            ]
            writer.writerow(["" if v is None else v for v in values])


def _analysis_metrics(comparison: Comparison, shape: str) -> str:
    """The metrics the runs' analyses measured, each written as ``shape`` (``"`{}`"``)."""
    metrics = sorted({row.analysis.metric for row in comparison.rows if row.analysis and row.analysis.metric})
    return ", ".join(shape.format(metric) for metric in metrics) or "their metric"


def _measure_fields(row: Row, measure: Measure) -> list[Any]:
    """A measure's CSV fields: mean, std, CI and (for measures about one modality) the modality."""
    found = row.analysis.measures.get(measure.title) if row.analysis else None
    s = found.seeds if found else None
    values: list[Any] = [s and s.mean, s and s.std, s and s.ci_low, s and s.ci_high]
    return values + ([found and found.modality] if measure.modality else [])


def _folders(runs) -> str:
    return ";".join(str(run.path) for run in runs)


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
    if measures := comparison.measures:
        lines[-2] += (
            f" The last {len(measures)} columns come from the analysis each job ran (robustness.json, "
            f"contribution.json; {_analysis_metrics(comparison, '`{}`')}), mean ± std over "
            f"seeds: relative robustness with one modality missing or noisy at a time, the mean over "
            f"modalities and the worst modality (named; `audio 2/3`: the seeds disagree), and the largest share "
            f"of the Shapley value of one modality; `comparison_robustness.png` draws the mean curves."
        )
    shown = columns(comparison)
    lines.append("| " + " | ".join(column.title for column in shown) + " |")
    lines.append("|" + "|".join("---:" if column.numeric else "---" for column in shown) + "|")
    for row in comparison.rows:
        lines.append(_markdown_row(cells(row, comparison)))
    if reference:
        lines.append(_markdown_row(reference_cells(reference, comparison)))
    if shared := class_lines(comparison):
        lines += ["", *(f"{line}." for line in shared)]
    if sizes := parameters_line(comparison):
        lines += ["", f"**Note:** {sizes}."]
    if repeated := repeats_line(comparison):
        lines += ["", f"**Note:** {repeated}."]
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
    """The ranked table for the terminal (essential columns only), the best row in bold green.

    Number columns are as wide as their widest value, so a value keeps one line; titles wrap
    at spaces, and the settings columns take the rest of the width, folding a value too long
    for it onto the next line rather than cutting it.
    """
    reference = reference_cells(comparison.baseline, comparison, terminal=True) if comparison.baseline else None
    return _rich(comparison, columns(comparison, terminal=True), title, _caption(comparison), reference)


def analysis_table(comparison: Comparison) -> Table:
    """The analysis measures for the terminal, one row per configuration in rank order."""
    title = f"relative robustness and modality contribution ({_analysis_metrics(comparison, '{}')})"
    return _rich(comparison, analysis_columns(comparison), title, ANALYSIS_KEY)


def _rich(comparison: Comparison, shown: list[Column], title: str, caption: str,
          reference: list[str] | None = None) -> Table:
    """A terminal table of ``shown`` columns (``rich_table``), with the reference row's cells last."""
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    rows = [[column.cell(row) for column in shown] for row in comparison.rows]
    for i, column in enumerate(shown):
        wrapped = [column.title] + ([reference[i]] if reference else [])
        width = _one_line_width([values[i] for values in rows], wrapped) if column.numeric else None
        table.add_column(column.title, justify="right" if column.numeric else "left", overflow="fold", width=width)
    for row, values in zip(comparison.rows, rows):
        style = "bold green" if row is comparison.best else None
        table.add_row(*map(escape, values), style=style)  # a value such as [image] is not markup
    if reference:
        table.add_section()
        table.add_row(*map(escape, reference), style="italic cyan")
    return table


def _caption(comparison: Comparison) -> str:
    """What the short cells of the terminal table mean, and where the other columns are."""
    reference = f"; the {comparison.baseline.label} row is a {NOT_RANKED}" if comparison.baseline else ""
    return f"{TERMINAL_KEY}{reference}. {TERMINAL_MORE}"


def _one_line_width(values: list[str], wrapped: list[str]) -> int:
    """A column's width that keeps each value on one line and breaks the ``wrapped`` texts only at spaces."""
    return max([len(value) for value in values] + [len(word) for text in wrapped for word in text.split()])


def failed_table(comparison: Comparison) -> Table:
    table = Table(title=f"runs that did not complete ({len(comparison.failed)})", title_justify="left",
                  title_style="bold red")
    table.add_column("folder")
    table.add_column("status")
    table.add_column("detail")
    for run in comparison.failed:
        table.add_row(escape(str(run.path)), run.status, escape(run.error))
    return table
