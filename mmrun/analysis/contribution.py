"""How much each modality contributes to the monitored metric: Shapley, leave-one-out, permutation.

The value of a set S of modalities is the metric with S present and every other modality
missing entirely (zero-filled, marked absent in ``present``), oriented so that higher is
better (the metric to maximise, minus the metric to minimise): ``u(S) = +-metric(S)``.

* exact Shapley values over all 2^M subsets (Shapley, "A value for n-person games", 1953; as
  feature attributions: Lundberg and Lee, NeurIPS 2017, arXiv:1705.07874):
  ``phi_i = sum over S without i of |S|! (M - |S| - 1)! / M! x (u(S + i) - u(S))``; they sum to
  ``u(all) - u(none)`` (full - empty, for a metric to maximise). M <= ``MAX_MODALITIES``.
  The set function is enumerated directly with the ``present`` mask rather than with captum's
  sampling estimators: at most 64 subsets, each one batched evaluation, exact.
* leave-one-out: ``u(all) - u(all without i)``;
* permutation (perceptual) score (Gat et al., NeurIPS 2021, arXiv:2110.14375): ``u(all)`` minus
  the value with modality i's rows (and its ``present`` column) shuffled across the split,
  mean and std over ``repeats`` shuffles.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from mmrun.analysis.corruptions import generator, shuffled
from mmrun.analysis.evaluation import Evaluator, Replaced
from mmrun.analysis.robustness import mean_std, score_subset
from mmrun.errors import AnalysisError

MAX_MODALITIES = 6
MEASURES = ("shapley", "leave_one_out", "permutation")


def shapley_values(players: list[str], value: dict[frozenset, float]) -> dict[str, float]:
    """Exact Shapley values of ``players`` under ``value`` (every subset as a frozenset)."""
    m = len(players)
    result = {}
    for player in players:
        others = [p for p in players if p != player]
        total = 0.0
        for size in range(m):
            weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
            for subset in itertools.combinations(others, size):
                coalition = frozenset(subset)
                total += weight * (value[coalition | {player}] - value[coalition])
        result[player] = total
    return result


def subset_values(evaluator: Evaluator, memo: dict[tuple[str, ...], float]) -> dict[frozenset, float]:
    """The metric with each subset of the modalities present (the rest missing entirely)."""
    names = evaluator.modalities
    if len(names) > MAX_MODALITIES:
        raise AnalysisError(
            f"exact Shapley values need 2^M subsets; this model reads {len(names)} modalities (at most "
            f"{MAX_MODALITIES}): use +analysis=robustness (single and leave-one-out rows work for any count) "
            f"or train on at most {MAX_MODALITIES} (dataset.modalities=[...])")
    values = {}
    for size in range(len(names) + 1):
        for present in itertools.combinations(names, size):
            missing = tuple(n for n in names if n not in present)
            values[frozenset(present)] = score_subset(evaluator, missing, memo)
    return values


def permutation_drops(evaluator: Evaluator, name: str, repeats: int, seed: int) -> list[float]:
    """Metric drop (oriented) with ``name``'s rows shuffled across the split, per repeat."""
    sign = 1 if evaluator.mode == "max" else -1
    column = evaluator.tensors["present"][:, evaluator.columns[name]]
    drops = []
    for repeat in range(repeats):
        g = generator(seed, name, "shuffle", repeat, device=column.device)
        x, present = shuffled(evaluator.tensors[name], column, g)
        drops.append(sign * (evaluator.clean - evaluator.score({name: Replaced(x, present)})))
    return drops


def contribution(evaluator: Evaluator, repeats: int, seed: int, memo: dict[tuple[str, ...], float]) -> dict[str, Any]:
    """contribution.json's measures, and the csv rows (``rows``)."""
    sign = 1 if evaluator.mode == "max" else -1
    names = evaluator.modalities
    metric = subset_values(evaluator, memo)
    oriented = {subset: sign * value for subset, value in metric.items()}
    shapley = shapley_values(names, oriented)
    scale = sum(abs(v) for v in shapley.values())
    everything = frozenset(names)
    modalities, rows = {}, []
    for name in names:
        drops = permutation_drops(evaluator, name, repeats, seed)
        mean, std = mean_std(drops)
        leave_one_out = oriented[everything] - oriented[everything - {name}]
        modalities[name] = {"shapley": shapley[name], "shapley_share": shapley[name] / scale if scale else 0.0,
                            "leave_one_out": leave_one_out, "permutation": mean, "permutation_std": std}
        rows += [{"modality": name, "measure": "shapley", "repeat": 0, "value": shapley[name]},
                 {"modality": name, "measure": "leave_one_out", "repeat": 0, "value": leave_one_out}]
        rows += [{"modality": name, "measure": "permutation", "repeat": r, "value": d} for r, d in enumerate(drops)]
    largest = max(names, key=lambda n: modalities[n]["shapley_share"])
    return {
        "full": metric[everything],
        "empty": metric[frozenset()],
        "modalities": modalities,
        "summary": {"largest_shapley_share": modalities[largest]["shapley_share"], "largest_shapley_modality": largest},
        "rows": rows,
    }
