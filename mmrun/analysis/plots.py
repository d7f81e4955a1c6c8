"""The analysis figures: ``robustness.png`` (curves per modality) and ``contribution.png`` (bars).

Drawn with matplotlib's object API (``Figure``), never ``pyplot``, as ``mmrun.plots``: safe in
sweeps, worker processes and on headless machines.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

COLUMNS = 4
STYLE = {"missing": ("tab:red", "o"), "noise": ("tab:blue", "s")}


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def robustness_png(report: dict[str, Any], path: Path, baseline: dict[str, Any] | None = None) -> None:
    """One panel per modality: the metric against p for missing and noise (mean +- std over repeats),
    the clean metric as a dotted line; a baseline's curves dashed when given."""
    names = list(report["modalities"])
    columns = min(COLUMNS, len(names))
    rows = math.ceil(len(names) / columns)
    figure = _figure(3.2 * columns + 0.4, 2.8 * rows)
    for index, name in enumerate(names, start=1):
        axes = figure.add_subplot(rows, columns, index)
        for corruption, curve in report["modalities"][name].items():
            colour, marker = STYLE[corruption]
            p, mean, std = zip(*curve["curve"])
            axes.plot(p, mean, color=colour, marker=marker, markersize=3,
                      label=f"{corruption} (RR {curve['relative_robustness']:.2f})")
            axes.fill_between(p, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                              color=colour, alpha=0.15, linewidth=0)
            if baseline is not None:
                bp, bmean, _ = zip(*baseline["modalities"][name][corruption]["curve"])
                axes.plot(bp, bmean, color=colour, linestyle="--", linewidth=1, label=f"{corruption}, baseline")
        axes.axhline(report["clean"], color="black", linestyle=":", linewidth=1, label=f"clean {report['clean']:.3f}")
        axes.set_title(name, fontsize=9)
        axes.set_xlabel("p (fraction missing / noise level)", fontsize=8)
        axes.set_ylabel(report["metric"], fontsize=8)
        axes.tick_params(labelsize=7)
        axes.legend(fontsize=6)
    figure.suptitle(f"robustness of {report['metric']} ({report['mode']}), {report['repeats']} repeats", fontsize=10)
    figure.savefig(path)


def contribution_png(report: dict[str, Any], path: Path) -> None:
    """Per modality, a bar per measure: Shapley, leave-one-out, permutation (std over repeats)."""
    names = list(report["modalities"])
    measures = (("shapley", None, "tab:purple"), ("leave_one_out", None, "tab:orange"),
                ("permutation", "permutation_std", "tab:green"))
    width = 0.8 / len(measures)
    figure = _figure(max(4.0, 1.3 * len(names) + 2.0), 3.4)
    axes = figure.add_subplot()
    for offset, (measure, error, colour) in enumerate(measures):
        values = [report["modalities"][n][measure] for n in names]
        errors = [report["modalities"][n][error] for n in names] if error else None
        positions = [i + (offset - (len(measures) - 1) / 2) * width for i in range(len(names))]
        axes.bar(positions, values, width, yerr=errors, capsize=3, color=colour, label=measure.replace("_", "-"))
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xticks(range(len(names)), names, fontsize=8)
    direction = "" if report["mode"] == "max" else " (sign flipped: lower is better)"
    axes.set_ylabel(f"contribution to {report['metric']}{direction}", fontsize=8)
    axes.set_title(f"full {report['full']:.3f}, empty {report['empty']:.3f}", fontsize=9)
    axes.legend(fontsize=7)
    figure.savefig(path)
