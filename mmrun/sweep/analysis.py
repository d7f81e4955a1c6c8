"""What the analysis of each job (``mmrun.analysis``) adds to a comparison: robustness and contribution.

A job that ran the analysis (``+analysis=robustness``) leaves in its run folder
``robustness.json``: the metric as one modality at a time goes missing (for a fraction p of
the samples) or noisy (at level p), summarised as relative robustness, the area under that
curve over the clean metric's (``mmrun.analysis.robustness``, after MultiBench: Liang et al.,
NeurIPS 2021 Datasets and Benchmarks, arXiv:2107.07502), and ``contribution.json``: each modality's Shapley value over the subsets of modalities (Shapley
1953; Lundberg and Lee, NeurIPS 2017, arXiv:1705.07874). Each configuration of the comparison
gets the seed statistics of five numbers of those files' ``summary`` blocks (``MEASURES``) and
the mean curves (over modalities, then seeds) that ``comparison_robustness.png`` draws. A
damaged file, or one of another schema, is skipped with one warning line: it costs the report
that job's columns, never the report.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrun.sweep.stats import SeedSummary, summarise

if TYPE_CHECKING:
    from mmrun.sweep.runs import Run

log = logging.getLogger("mmrun")

ROBUSTNESS = "robustness.json"
CONTRIBUTION = "contribution.json"
SCHEMA_VERSION = 1
CONDITIONS = ("missing", "noise")


@dataclass(frozen=True)
class Measure:
    """One column: a number in an analysis file (``value``: its path of keys), and the modality
    it is about (``modality``), if any; ``short`` is its title in the terminal's analysis table."""

    title: str
    short: str
    file: str
    value: tuple[str, ...]
    modality: tuple[str, ...] | None = None

    def of(self, files: dict[str, dict]) -> tuple[float | None, str | None]:
        """The run's value and modality; (None, None) when the run lacks the file."""
        data = files.get(self.file)
        if data is None:
            return None, None
        value = _at(data, self.value)
        return (None if value is None else float(value)), (_at(data, self.modality) if self.modality else None)


MEASURES = (
    Measure("robustness missing (mean)", "missing mean", ROBUSTNESS, ("summary", "missing", "mean")),
    Measure("robustness missing (worst)", "missing worst", ROBUSTNESS, ("summary", "missing", "worst"),
            ("summary", "missing", "worst_modality")),
    Measure("robustness noise (mean)", "noise mean", ROBUSTNESS, ("summary", "noise", "mean")),
    Measure("robustness noise (worst)", "noise worst", ROBUSTNESS, ("summary", "noise", "worst"),
            ("summary", "noise", "worst_modality")),
    Measure("largest Shapley share", "largest Shapley share", CONTRIBUTION, ("summary", "largest_shapley_share"),
            ("summary", "largest_shapley_modality")),
)


def _at(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            raise LookupError(".".join(path))
        data = data[key]
    return data


def _number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))


def _text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _curves_ok(data: dict) -> bool:
    """Every modality's curve under every condition is a list of ``[p, mean, std]`` numbers."""
    modalities = data.get("modalities")
    return isinstance(modalities, dict) and all(
        isinstance(points := _at(entry, (condition, "curve")), list)
        and all(isinstance(point, list) and len(point) == 3 and all(map(_number, point)) for point in points)
        for entry in modalities.values() for condition in CONDITIONS)


def _problem(data: Any, file: str) -> str:
    """Why ``data`` cannot be read as ``file`` of schema 1 ("" when it can)."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if data.get("schema_version") != SCHEMA_VERSION:
        return f"schema_version {data.get('schema_version')!r}, this mmrun reads {SCHEMA_VERSION}"
    try:
        for measure in (m for m in MEASURES if m.file == file):
            if not _number(_at(data, measure.value)) or (measure.modality and not _text(_at(data, measure.modality))):
                return f"{'.'.join(measure.value)} is not a number"
        if file == ROBUSTNESS and not (isinstance(data.get("metric"), str) and _curves_ok(data)):
            return "no metric name, or a curve that is not a list of [p, mean, std]"
    except LookupError as missing:
        return f"no {missing}"
    return ""


def read_analysis(folder: Path) -> dict[str, dict]:
    """``{file name: content}`` of the analysis files in a run folder that can be read."""
    files = {}
    for name in (ROBUSTNESS, CONTRIBUTION):
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:  # ValueError: bad JSON or bad UTF-8
            problem = f"unreadable ({error})"
        else:
            problem = _problem(data, name)
        if problem:
            log.warning("comparison: skipping %s: %s", path, problem)
            continue
        files[name] = data
    return files


@dataclass(frozen=True)
class MeasureSummary:
    """A measure over a configuration's seeds, and the modality it names most often
    (``audio``, or ``audio 2/3`` when the seeds disagree)."""

    seeds: SeedSummary
    modality: str | None


@dataclass(frozen=True)
class RowAnalysis:
    """The analysis of one configuration: its measures by title, and per condition the curve of
    the metric (``metric``) against p, averaged over modalities, then over seeds."""

    measures: dict[str, MeasureSummary]
    curves: dict[str, list[tuple[float, float]]]
    metric: str


def _most_common(names: list[str]) -> str | None:
    if not names:
        return None
    name, count = Counter(names).most_common(1)[0]
    return name if count == len(names) else f"{name} {count}/{len(names)}"


def _mean_curve(curves: list[dict[float, float]]) -> list[tuple[float, float]]:
    """The mean over ``curves`` (p -> value) at every p, each p over the curves that have it."""
    levels = sorted({p for curve in curves for p in curve})
    return [(p, sum(values) / len(values)) for p in levels if (values := [c[p] for c in curves if p in c])]


def _run_curve(robustness: dict, condition: str) -> dict[float, float]:
    """One run's curve under ``condition``: the metric at each p, mean over its modalities."""
    curves = [{round(p, 9): mean for p, mean, _ in entry[condition]["curve"] if mean is not None and p is not None}
              for entry in robustness["modalities"].values()]
    return dict(_mean_curve([c for c in curves if c]))


def summarise_analysis(runs: list[Run]) -> RowAnalysis | None:
    """The analysis of a configuration's ``runs``; None when none of them has any."""
    analysed = [run.analysis for run in runs if run.analysis]
    if not analysed:
        return None
    measures = {}
    for measure in MEASURES:
        found = [measure.of(files) for files in analysed if measure.file in files]
        seeds = summarise([value for value, _ in found])
        if seeds is not None:
            measures[measure.title] = MeasureSummary(seeds, _most_common([name for _, name in found if name]))
    robustness = [files[ROBUSTNESS] for files in analysed if ROBUSTNESS in files]
    curves = {condition: _mean_curve([_run_curve(r, condition) for r in robustness]) for condition in CONDITIONS}
    metric = Counter(r["metric"] for r in robustness).most_common(1)[0][0] if robustness else ""
    return RowAnalysis(measures, {c: points for c, points in curves.items() if points}, metric)
