"""Build a fusion from its config, optionally at a parameter budget.

With ``fusion.param_budget=N`` the fusion's own width knob (``Fusion.budget_knob``: hidden
size, rank, sketch width, ...) is chosen so that fusion + head hold within 5% of N
parameters, so that a sweep compares fusions of one size rather than their default sizes.
Parameter counts of candidate widths are taken on the meta device, which allocates nothing;
the search is a bisection over the knob, whose count grows with it. The width chosen is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from torch import nn

from mmrun.components import build
from mmrun.errors import ConfigError
from mmrun.fusion.base import Fusion

log = logging.getLogger(__name__)

BUDGET_KEY = "param_budget"
TOLERANCE = 0.05  # fusion + head within 5% of the budget
MAX_KNOB = 4096  # the widest knob value tried


def parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_fusion(
    cfg: DictConfig,
    dims: dict[str, int],
    head: Callable[[int], nn.Module] | None = None,
    **runtime: Any,
) -> Fusion:
    """Build the fusion ``cfg`` for ``dims``; with ``cfg.param_budget`` set, first choose its width
    knob so that the fusion plus ``head(out_dim)`` (None: no head) fit the budget.

    Raises:
        ConfigError: the budget is out of the fusion's reach, or no knob value comes within 5%.
    """
    settings = OmegaConf.to_container(cfg, resolve=True)
    budget = settings.pop(BUDGET_KEY, None)
    if budget is None:
        return build(OmegaConf.create(settings), "fusion", dims=dims, **runtime)
    cls = get_class(settings["_target_"])
    knob, counts = cls.budget_knob, {}

    def make(value: int) -> Fusion:
        return build(OmegaConf.create({**settings, knob: value}), "fusion", dims=dims, **runtime)

    def count(value: int) -> int:
        if value not in counts:
            with torch.device("meta"):
                fusion = make(value)
                extra = parameters(head(fusion.out_dim)) if head else 0
            counts[value] = parameters(fusion) + extra
        return counts[value]

    step_key = cls.budget_multiple_of
    step = settings.get(step_key, 1) if step_key else 1
    value = fit(count, budget, step, f"fusion={cls.fusion_name}", knob, step_key)
    log.info(
        "fusion=%s: %s=%d for fusion.param_budget=%s (fusion + head: %s parameters)",
        cls.fusion_name,
        knob,
        value,
        f"{budget:,}",
        f"{count(value):,}",
    )
    return make(value)


def fit(
    count: Callable[[int], int], budget: int, step: int, name: str, knob: str, step_key: str | None
) -> int:
    """The multiple of ``step`` (up to ``MAX_KNOB``) whose ``count`` is closest to ``budget``;
    ``name``, ``knob`` and ``step_key`` (the option ``step`` comes from) are for messages."""
    top = MAX_KNOB // step
    low, high = count(step), count(top * step)
    if not low <= budget <= high:
        raise ConfigError(
            f"fusion.param_budget={budget:,} is out of reach for {name} on this data: fusion + "
            f"head hold {low:,} ({knob}={step}) to {high:,} ({knob}={top * step}) parameters; "
            f"choose a budget in that range"
        )
    first, last = 1, top  # bisect for the first multiple whose count reaches the budget
    while first < last:
        middle = (first + last) // 2
        first, last = (first, middle) if count(middle * step) >= budget else (middle + 1, last)
    candidates = sorted({max(first - 1, 1), first})  # just below and just above the budget
    best = min(candidates, key=lambda k: abs(count(k * step) - budget)) * step
    if abs(count(best) - budget) > TOLERANCE * budget:
        smaller = f" or a smaller fusion.{step_key}" if step_key else ""
        raise ConfigError(
            f"{name} cannot come within {TOLERANCE:.0%} of fusion.param_budget={budget:,}: the "
            f"nearest {knob}={best} gives {count(best):,} parameters; choose a budget near "
            f"that{smaller}"
        )
    return best
