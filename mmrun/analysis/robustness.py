"""Robustness to missing and noisy modalities: metric-vs-level curves and their summaries.

For each modality the task reads, the monitored metric of the split when the modality is
(a) missing for a fraction p of the samples and (b) corrupted at noise level p
(``mmrun.analysis.corruptions``), at each level of ``levels`` and for ``repeats`` seeds; and
with every subset of the modalities missing entirely (2^M - 1 subsets; above
``MAX_SUBSET_MODALITIES`` only each single modality and each all-but-one). The protocol
follows MultiBench (Liang et al., NeurIPS 2021 Datasets & Benchmarks, arXiv:2107.07502) with
two departures: each curve is normalised by the run's own clean metric (not by tables of
published results), and the noise scale follows the data's spread.

Summaries (``trapezoid``: trapezoidal area over the levels, of span ``L = last - first``):

* relative robustness ``RR = area(curve) / (clean x L)`` for a metric to maximise, and
  ``(clean x L) / area(curve)`` for one to minimise (mse, mae): 1 = the metric holds at every
  level, lower = less robust, in both directions;
* effective robustness against a baseline run scored on the same rows with the same seeds:
  ``ER = s / L x area((f(p) - f(0)) - (g(p) - g(0)))``, the area between the two curves once
  each starts from its own clean metric (s = +1 to maximise, -1 to minimise; > 0: the model
  loses less than the baseline), after Taori et al.'s effective robustness (NeurIPS 2020,
  arXiv:2007.00644) and MultiBench's.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field
from typing import Any

from mmrun.analysis.corruptions import generator, missing_rows, noisy
from mmrun.analysis.evaluation import Evaluator, Missing, Replaced

CORRUPTIONS = ("missing", "noise")
MAX_SUBSET_MODALITIES = 6


def trapezoid(levels: list[float], values: list[float]) -> float:
    return sum((b - a) * (u + v) / 2 for a, b, u, v in zip(levels, levels[1:], values, values[1:]))


def relative_robustness(levels: list[float], means: list[float], clean: float, mode: str) -> float:
    """Area under the curve over the clean metric's rectangle (inverted to minimise; see the module)."""
    span = levels[-1] - levels[0]
    area = trapezoid(levels, means)
    ratio = (clean * span, area) if mode == "min" else (area, clean * span)
    return ratio[0] / ratio[1] if ratio[1] else float("nan")


def effective_robustness(levels: list[float], model: list[float], baseline: list[float], mode: str) -> float:
    """Area between the two curves, each shifted to start at 0, per unit of level (see the module)."""
    gap = [(f - model[0]) - (g - baseline[0]) for f, g in zip(model, baseline)]
    return (1 if mode == "max" else -1) * trapezoid(levels, gap) / (levels[-1] - levels[0])


def missing_subsets(modalities: list[str]) -> list[tuple[str, ...]]:
    """Sets of modalities made missing: every non-empty subset, or (above the limit) each single
    modality and each all-but-one."""
    if len(modalities) <= MAX_SUBSET_MODALITIES:
        return [s for size in range(1, len(modalities) + 1) for s in itertools.combinations(modalities, size)]
    singles = [(m,) for m in modalities]
    return singles + [tuple(n for n in modalities if n != m) for m in modalities]


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


@dataclass
class Curves:
    """The metric per (modality, corruption, level index) and repeat; the subsets' metrics."""

    levels: list[float]
    repeats: int
    values: dict[tuple[str, str], list[list[float]]] = field(default_factory=dict)
    subsets: dict[tuple[str, ...], float] = field(default_factory=dict)

    def means(self, modality: str, corruption: str) -> list[float]:
        return [mean_std(row)[0] for row in self.values[(modality, corruption)]]


def entirely_missing(evaluator: Evaluator, names: tuple[str, ...]) -> dict[str, Missing]:
    rows = Missing(evaluator.tensors["present"].new_ones(evaluator.size))
    return {name: rows for name in names}


def score_subset(evaluator: Evaluator, names: tuple[str, ...], memo: dict[tuple[str, ...], float]) -> float:
    """The metric with ``names`` missing entirely (the clean metric for none), scored once per set."""
    key = tuple(sorted(names))
    if key not in memo:
        memo[key] = evaluator.score(entirely_missing(evaluator, key)) if key else evaluator.clean
    return memo[key]


def condition(evaluator: Evaluator, name: str, corruption: str, p: float, repeat: int, seed: int) -> dict:
    """The change of one curve point: ``name`` missing for a fraction ``p`` of rows, or noisy at ``p``."""
    g = generator(seed, name, corruption, p, repeat, device=evaluator.tensors["present"].device)
    if corruption == "missing":
        return {name: Missing(missing_rows(evaluator.size, p, g))}
    present = evaluator.tensors["present"][:, evaluator.columns[name]]
    return {name: Replaced(noisy(evaluator.specs[name], evaluator.tensors[name], present, p, g), present)}


def robustness_curves(evaluator: Evaluator, levels: list[float], repeats: int, seed: int,
                      memo: dict[tuple[str, ...], float]) -> Curves:
    """Score every curve point and missing subset (level 0 is the clean split itself)."""
    curves = Curves(list(levels), repeats)
    for name, corruption in itertools.product(evaluator.modalities, CORRUPTIONS):
        rows = []
        for p in levels:
            if p == 0:
                rows.append([evaluator.clean] * repeats)
            elif corruption == "missing" and p == 1:  # every row: no randomness left
                rows.append([score_subset(evaluator, (name,), memo)] * repeats)
            else:
                rows.append([evaluator.score(condition(evaluator, name, corruption, p, r, seed)) for r in range(repeats)])
        curves.values[(name, corruption)] = rows
    for names in missing_subsets(evaluator.modalities):
        curves.subsets[names] = score_subset(evaluator, names, memo)
    return curves


def summarise(curves: Curves, clean: float, mode: str, baseline: Curves | None = None) -> dict[str, Any]:
    """The ``modalities``, ``subsets``, ``summary`` and ``effective_robustness`` of robustness.json."""
    modalities: dict[str, Any] = {}
    for (name, corruption), rows in curves.values.items():
        means = curves.means(name, corruption)
        modalities.setdefault(name, {})[corruption] = {
            "relative_robustness": relative_robustness(curves.levels, means, clean, mode),
            "curve": [[p, *mean_std(row)] for p, row in zip(curves.levels, rows)],
        }
    summary = {}
    for corruption in CORRUPTIONS:
        scores = {name: modalities[name][corruption]["relative_robustness"] for name in modalities}
        worst = min(scores, key=scores.get)
        summary[corruption] = {"mean": statistics.fmean(scores.values()), "worst": scores[worst],
                               "worst_modality": worst}
    effective = None
    if baseline is not None:
        effective = {name: {c: effective_robustness(curves.levels, curves.means(name, c), baseline.means(name, c), mode)
                            for c in CORRUPTIONS} for name in modalities}
    return {
        "modalities": modalities,
        "subsets": [{"missing": list(names), "mean": value, "std": 0.0} for names, value in curves.subsets.items()],
        "summary": summary,
        "effective_robustness": effective,
    }


def csv_rows(curves: Curves) -> list[dict[str, Any]]:
    """robustness.csv: one row per (modality, corruption, p, repeat); subsets with p = 1, repeat 0."""
    rows = [{"modality": name, "corruption": corruption, "p": p, "repeat": repeat, "metric": value}
            for (name, corruption), per_level in curves.values.items()
            for p, values in zip(curves.levels, per_level) for repeat, value in enumerate(values)]
    rows += [{"modality": "+".join(names), "corruption": "subset", "p": 1.0, "repeat": 0, "metric": value}
             for names, value in curves.subsets.items()]
    return rows
