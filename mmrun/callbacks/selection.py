"""Picking the best epoch with a tie-break (``monitor_tie_break``, default ``val/loss``).

Why: a monitored metric that counts (accuracy, F1, mAP on a validation split of a few hundred
rows) moves in steps and saturates: on separable data it reaches 1.0 at the first epoch, on a
270-row split it sits at 269/270 for epochs while the model still improves. With strict
improvement alone, early stopping ends the run ``patience`` epochs after the first top value
and the checkpoint keeps that first, least trained epoch. Here an epoch whose monitored value
*equals* the best one and whose tie-break metric is better counts as an improvement: early
stopping starts waiting again, the best checkpoint is replaced, and the best-validation row
follows it. Lightning's own callbacks compare the one monitored metric only.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint


def metric_direction(name: str) -> str:
    """``min`` for losses and errors (``val/loss``, ``val/mse``, ``val/mean_rank``), else ``max``."""
    return "min" if name.endswith(("loss", "mae", "mse", "rank")) else "max"


class TieBreak:
    """The tie-break metric's value at the best epoch so far, and whether an epoch breaks a tie.

    ``name`` None, or equal to the monitored metric, turns the tie-break off.
    """

    def __init__(self, name: str | None, monitor: str | None) -> None:
        self.name = None if name in (None, monitor) else name
        self.mode = metric_direction(self.name) if self.name else "min"
        self.best: float | None = None

    def _value(self, trainer) -> float | None:
        value = trainer.callback_metrics.get(self.name) if self.name else None
        return None if value is None else float(value)

    def breaks_tie(self, trainer, current: Any, best: Any) -> bool:
        """Whether this epoch's monitored ``current`` equals ``best`` (both finite: a first epoch
        never ties the starting infinity) and its tie-break metric is better."""
        value = self._value(trainer)
        if value is None or current is None or best is None:
            return False
        current, best = float(current), float(best)
        if not math.isfinite(current) or current != best:
            return False
        return self.best is None or (value < self.best if self.mode == "min" else value > self.best)

    def record(self, trainer) -> None:
        """This epoch is the new best: remember its tie-break value."""
        self.best = self._value(trainer)


class WithTieBreak:
    """Mixin for a Lightning callback with a ``monitor``: the ``tie_break`` argument, and the
    tie-break's best value kept in the callback's checkpointed state (a resumed run goes on)."""

    def __init__(self, *args: Any, tie_break: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tie = TieBreak(tie_break, self.monitor)

    @property
    def state_key(self) -> str:
        """Lightning's key for the parent class (``EarlyStopping{...}``), so that a run checkpointed
        by Lightning's own callback resumes with its state."""
        lightning = next(c for c in type(self).__mro__ if c.__module__.startswith("pytorch_lightning"))
        return super().state_key.replace(type(self).__qualname__, lightning.__qualname__, 1)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "tie_break_best": self.tie.best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.tie.best = state_dict.get("tie_break_best")


class TieBreakEarlyStopping(WithTieBreak, EarlyStopping):
    """Lightning's ``EarlyStopping`` where a tie broken by ``tie_break`` is an improvement.

    Ties are exact, so with ``min_delta > 0`` (improvements must exceed it) the tie-break is off:
    an epoch better by less than ``min_delta`` is no improvement, and neither is an equal one.
    """

    def _run_early_stopping_check(self, trainer) -> None:
        current = trainer.callback_metrics.get(self.monitor)
        breaks = (not trainer.fast_dev_run and self.min_delta == 0
                  and self.tie.breaks_tie(trainer, current, self.best_score))
        if trainer.strategy.reduce_boolean_decision(bool(breaks), all=True):  # every process takes one branch
            self.wait_count = 0
            self.tie.record(trainer)
            return
        before = self.best_score
        super()._run_early_stopping_check(trainer)
        if self.best_score is not before:  # Lightning assigns the new best on an improvement
            self.tie.record(trainer)


class TieBreakCheckpoint(WithTieBreak, ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` where, with ``save_top_k=1``, a tie broken by ``tie_break``
    replaces the best checkpoint (with more kept checkpoints the order is the monitor's alone)."""

    def check_monitor_top_k(self, trainer, current: torch.Tensor | None = None) -> bool:
        if super().check_monitor_top_k(trainer, current):
            return True
        if current is None or self.save_top_k != 1 or not self.best_k_models:
            return False
        breaks = self.tie.breaks_tie(trainer, current, self.best_k_models[self.kth_best_model_path])
        return trainer.strategy.reduce_boolean_decision(breaks)

    def _update_best_and_save(self, current: torch.Tensor, trainer, monitor_candidates: dict[str, Any]) -> None:
        self.tie.record(trainer)  # before saving, so that best.ckpt holds its own tie-break value
        super()._update_best_and_save(current, trainer, monitor_candidates)
