"""Figures of a comparison: the ranked bars, the learning curves, the robustness curves and the
search history.

Figures are drawn with matplotlib's object API (``Figure``), never ``pyplot``: no global
state, no display backend, safe inside a Hydra callback or a worker process.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from mmrun.sweep.table import Comparison

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_LABEL = 48
LEGEND_ROWS = 24  # entries per legend column, so that a long legend stays within the figure's height
ROBUSTNESS_AXES = {"missing": "p: fraction of samples without the modality", "noise": "p: noise level (× the data's spread)"}


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def _name(row) -> str:
    """A configuration in a figure: its rank, (shortened) label and any function-class mark
    (``mmrun.sweep.classes``), the same in every figure."""
    return f"{row.rank}. {_short(row.label)}{row.class_mark}"


def palette(n: int) -> list[tuple[float, ...]]:
    """``n`` distinct colours: tab10's up to 10, tab20 then tab20b up to 40, else turbo sampled evenly.

    A configuration keeps its colour (by rank) in comparison.png and learning_curves.png, so the
    colours must not repeat within one report: matplotlib's default cycle repeats after 10.
    """
    from matplotlib import colormaps

    if n <= 10:
        return list(colormaps["tab10"].colors[:n])
    listed = colormaps["tab20"].colors + colormaps["tab20b"].colors
    if n <= len(listed):
        return list(listed[:n])
    turbo = colormaps["turbo"]
    return [turbo(i / (n - 1)) for i in range(n)]


def _legend(figure: Figure, entries: int) -> None:
    """One legend beside the axes (not over the data), in as many columns as its length needs."""
    figure.legend(loc="outside right upper", fontsize=7, ncols=1 + (entries - 1) // LEGEND_ROWS)


def _mark(row) -> str:
    """The paired test against the best as a mark: ``*`` (differs), ``ns``, or "" when not tested (n < 2)."""
    return row.versus_best.mark if row.versus_best else ""


def comparison_png(comparison: Comparison, path: Path) -> Figure:
    """Horizontal bars of the metric's mean per configuration (best on top), std as error bars.

    Each configuration has its own colour, as in learning_curves.png, named in the legend; the
    value beside a bar ends with its paired test against the best (no mark: not tested, fewer
    than 2 shared seeds). The classical baseline's mean, when the runs carry one, is a dashed
    line. Returns the figure, after saving it to ``path``.
    """
    coloured = [(row, colour) for row, colour in zip(comparison.rows, palette(len(comparison.rows))) if row.metric]
    rows = [row for row, _ in coloured]
    figure = _figure(10.0, 1.4 + 0.38 * max(len(rows), 1))
    axes = figure.add_subplot()
    means = [row.metric.mean for row in rows]
    errors = [row.metric.std or 0.0 for row in rows]
    positions = list(range(len(rows)))[::-1]
    bars = axes.barh(positions, means, xerr=errors, color=[colour for _, colour in coloured], capsize=3)
    for bar, row in zip(bars, rows):
        bar.set_label(_name(row))
    axes.set_yticks(positions, [_name(row) for row in rows], fontsize=8)
    for y, row, error in zip(positions, rows, errors):  # labelled past the error bar, not over it
        text = f"{row.metric.mean:.4f} (n={row.metric.n}) {_mark(row)}".rstrip()
        axes.annotate(text, (row.metric.mean + error, y), xytext=(6, 0), textcoords="offset points", va="center",
                      fontsize=7)
    reference = comparison.baseline.metric if comparison.baseline else None
    if reference is not None:  # a line, not a bar: the baseline is not ranked
        axes.axvline(reference.mean, color="black", linestyle="--", linewidth=1,
                     label=f"{comparison.baseline.label}: {reference.mean:.4f}")
    if means:
        low = min([m - e for m, e in zip(means, errors)] + ([reference.mean] if reference else []))
        high = max([m + e for m, e in zip(means, errors)] + ([reference.mean] if reference else []))
        pad = (high - low) * 0.25 or abs(high) * 0.05 or 0.05
        axes.set_xlim(low - pad, high + 2 * pad)
        _legend(figure, len(rows) + (reference is not None))
    direction = "higher" if comparison.mode == "max" else "lower"
    axes.set_xlabel(f"{comparison.metric} (mean ± std over seeds; {direction} is better)")
    classes = "".join(f"\n{shared.mark} {shared.name}: one fusion function class (every modality present); gaps "
                      f"between its rows are noise" for shared in comparison.shared_classes)
    axes.set_title("beside each bar: mean (n = seeds), then the paired test against the best:\n"
                   "* differs (p < 0.05); ns: not significantly; no mark: not tested (< 2 shared seeds)" + classes,
                   fontsize=8)
    figure.savefig(path)
    return figure


def learning_curves_png(comparison: Comparison, path: Path) -> Figure:
    """Validation metric per epoch: one line per configuration (seed mean, a marker per epoch),
    band = min..max over seeds, colours as in comparison.png. Returns the figure, after saving it."""
    from matplotlib.ticker import MaxNLocator

    figure = _figure(10.0, 4.5)
    axes = figure.add_subplot()
    lengths, last = [], 1
    for row, colour in zip(comparison.rows, palette(len(comparison.rows))):
        curves = [run.curve(comparison.metric) for run in row.runs]
        epochs = sorted({e for c in curves for e in c})
        if not epochs:
            continue
        lengths.append(len(epochs))
        last = max(last, epochs[-1] + 1)
        values = [[c[e] for c in curves if e in c] for e in epochs]
        mean = [sum(v) / len(v) for v in values]
        axes.plot([e + 1 for e in epochs], mean, label=_name(row), color=colour, linewidth=1.4, marker="o",
                  markersize=3.5)
        if len(curves) > 1:
            axes.fill_between([e + 1 for e in epochs], [min(v) for v in values], [max(v) for v in values],
                              color=colour, alpha=0.18, linewidth=0)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    axes.set_xlim(0.5, last + 0.5)  # whole epochs, also when there is only one
    axes.set_xlabel("epoch")
    axes.set_ylabel(comparison.metric)
    axes.set_title(f"validation metric per epoch (line: mean over seeds; band: min to max){_curves_note(lengths)}",
                   fontsize=9)
    if lengths:
        _legend(figure, len(lengths))
    figure.savefig(path)
    return figure


def robustness_png(comparison: Comparison, path: Path) -> Figure:
    """The analysis's mean curves: the metric against p with one modality missing (left) or noisy
    (right) at a time, averaged over modalities, then seeds (``mmrun.sweep.analysis``); one line
    per configuration, colours as in comparison.png. Returns the figure, after saving it."""
    from mmrun.sweep.analysis import CONDITIONS

    figure = _figure(11.0, 4.2)
    panels = dict(zip(CONDITIONS, figure.subplots(1, len(CONDITIONS), sharey=True)))
    metrics, drawn = set(), 0
    for row, colour in zip(comparison.rows, palette(len(comparison.rows))):
        if row.analysis is None or not row.analysis.curves:
            continue
        metrics.add(row.analysis.metric)
        drawn += 1
        for condition, points in row.analysis.curves.items():
            panels[condition].plot([p for p, _ in points], [v for _, v in points], color=colour, marker="o",
                                   markersize=3, linewidth=1.4, label=_name(row) if condition == CONDITIONS[0] else None)
    for condition, axes in panels.items():
        axes.set_xlabel(ROBUSTNESS_AXES[condition])
        axes.set_title(f"one modality at a time: {condition}", fontsize=9)
    figure.suptitle("the metric as each modality degrades (mean over modalities, then seeds)", fontsize=9)
    panels[CONDITIONS[0]].set_ylabel(", ".join(sorted(metrics)))
    if drawn:
        _legend(figure, drawn)
    figure.savefig(path)
    return figure


def _curves_note(lengths: list[int]) -> str:
    """A second title line when the curves cannot be lines: no epochs logged, or only one."""
    if not lengths:
        return "\nno per-epoch values: the runs left no metrics.csv with this metric"
    return "\nonly one epoch was logged: one point per configuration" if max(lengths) == 1 else ""


def optimisation_history_png(values: list[float | None], mode: str, metric: str, path: Path) -> None:
    """A search's value per trial (crosses: failed trials) and the best value so far."""
    figure = _figure(7.0, 4.0)
    axes = figure.add_subplot()
    trials = list(range(len(values)))
    done = [(t, v) for t, v in zip(trials, values) if v is not None and not math.isnan(v)]
    failed = [t for t, v in zip(trials, values) if v is None or math.isnan(v)]
    if done:
        axes.scatter([t for t, _ in done], [v for _, v in done], s=18, label="trial")
        best, running = [], None
        for _, v in done:
            running = v if running is None else (max(running, v) if mode == "max" else min(running, v))
            best.append(running)
        axes.step([t for t, _ in done], best, where="post", color="tab:red", label="best so far")
    if failed:
        low = min((v for _, v in done), default=0.0)
        axes.scatter(failed, [low] * len(failed), marker="x", color="black", label="failed")
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("trial (job number)")
    axes.set_ylabel(metric)
    axes.set_title("optimisation history", fontsize=9)
    if done or failed:
        axes.legend(fontsize=7)
    figure.savefig(path)
