"""Figures of a comparison: the ranked bars, the learning curves and the search history.

Figures are drawn with matplotlib's object API (``Figure``), never ``pyplot``: no global
state, no display backend, safe inside a Hydra callback or a worker process.
"""

from __future__ import annotations

import math
from pathlib import Path

from mmrun.sweep.table import Comparison

MAX_LABEL = 48


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def comparison_png(comparison: Comparison, path: Path) -> None:
    """Horizontal bars of the metric's mean per configuration (best on top), std as error bars;
    the classical baseline's mean, when the runs carry one, as a dashed line."""
    rows = [row for row in comparison.rows if row.metric]
    figure = _figure(7.5, 1.2 + 0.38 * max(len(rows), 1))
    axes = figure.add_subplot()
    labels = [f"{row.rank}. {_short(row.label)}" for row in rows]
    means = [row.metric.mean for row in rows]
    errors = [row.metric.std or 0.0 for row in rows]
    colours = ["tab:green" if i == 0 else ("tab:blue" if _significant(row) else "tab:gray")
               for i, row in enumerate(rows)]
    positions = list(range(len(rows)))[::-1]
    axes.barh(positions, means, xerr=errors, color=colours, capsize=3)
    axes.set_yticks(positions, labels, fontsize=8)
    for y, row, error in zip(positions, rows, errors):  # labelled past the error bar, not over it
        axes.annotate(f"{row.metric.mean:.4f} (n={row.metric.n})", (row.metric.mean + error, y), xytext=(6, 0),
                      textcoords="offset points", va="center", fontsize=7)
    reference = comparison.baseline.metric if comparison.baseline else None
    if reference is not None:  # a line, not a bar: the baseline is not ranked
        axes.axvline(reference.mean, color="tab:red", linestyle="--", linewidth=1,
                     label=f"{comparison.baseline.label}: {reference.mean:.4f}")
        axes.legend(fontsize=7, loc="lower right")
    if means:
        low = min([m - e for m, e in zip(means, errors)] + ([reference.mean] if reference else []))
        high = max([m + e for m, e in zip(means, errors)] + ([reference.mean] if reference else []))
        pad = (high - low) * 0.25 or abs(high) * 0.05 or 0.05
        axes.set_xlim(low - pad, high + 2 * pad)
    direction = "higher" if comparison.mode == "max" else "lower"
    axes.set_xlabel(f"{comparison.metric} (mean ± std over seeds; {direction} is better)")
    axes.set_title("green: best; grey: not significantly different from best (p ≥ 0.05)", fontsize=8)
    figure.savefig(path)


def _significant(row) -> bool:
    return row.versus_best is None or row.versus_best.significant


def learning_curves_png(comparison: Comparison, path: Path) -> None:
    """Validation metric per epoch: one line per configuration (seed mean), band = min..max."""
    from matplotlib.ticker import MaxNLocator

    figure = _figure(7.5, 4.5)
    axes = figure.add_subplot()
    for row in comparison.rows:
        curves = [run.curve(comparison.metric) for run in row.runs]
        epochs = sorted({e for c in curves for e in c})
        if not epochs:
            continue
        values = [[c[e] for c in curves if e in c] for e in epochs]
        mean = [sum(v) / len(v) for v in values]
        line = axes.plot([e + 1 for e in epochs], mean, label=_short(row.label), linewidth=1.4)[0]
        if len(curves) > 1:
            axes.fill_between([e + 1 for e in epochs], [min(v) for v in values], [max(v) for v in values],
                              color=line.get_color(), alpha=0.18, linewidth=0)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel(comparison.metric)
    axes.set_title("validation metric per epoch (line: mean over seeds; band: min to max)", fontsize=9)
    if axes.lines:
        axes.legend(fontsize=7, loc="best")
    figure.savefig(path)


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
