"""Callbacks of mmrun: the best-epoch tracker, the plain epoch log and the weight average."""

from __future__ import annotations

import logging
import math
import time

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import WeightAveraging

from mmrun.errors import ConfigError

log = logging.getLogger("mmrun")


def _scalars(trainer: pl.Trainer, prefix: str) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefix)}


class BestValidationTracker(pl.Callback):
    """Remembers every validation metric at the epoch where the monitored one was best."""

    def __init__(self, monitor: str, mode: str) -> None:
        self.monitor = monitor
        self.mode = mode
        self.best: dict[str, float] = {}
        self.best_epoch: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        current = _scalars(trainer, "val/")
        value = current.get(self.monitor)
        if value is None or math.isnan(value):
            return
        previous = self.best.get(self.monitor)
        better = previous is None or (value > previous if self.mode == "max" else value < previous)
        if better:
            self.best = current
            self.best_epoch = trainer.current_epoch


class EpochLogger(pl.Callback):
    """One log line per epoch with the epoch's metrics (for logs and non-terminal output).

    Also times every training epoch and counts the samples trained on, for ``epoch_time_s``
    and ``train_samples_per_s`` in metrics.json. Lightning runs the epoch's validation before
    ``on_train_epoch_end``, so its time is measured and left out of those figures (the log
    line shows the whole epoch).
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.validation_started = self.started
        self.validation_seconds = 0.0
        self.epoch_times: list[float] = []
        self.samples = 0  # on this rank

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.perf_counter()
        self.validation_seconds = 0.0

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.validation_started = time.perf_counter()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validation_seconds += time.perf_counter() - self.validation_started

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.samples += len(batch["present"])

    def samples_per_second(self, world_size: int) -> float | None:
        seconds = sum(self.epoch_times)
        return round(self.samples * world_size / seconds, 1) if seconds > 0 else None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        elapsed = time.perf_counter() - self.started
        self.epoch_times.append(round(elapsed - self.validation_seconds, 3))
        if not trainer.is_global_zero:
            return
        shown = {
            k: v
            for k, v in sorted(trainer.callback_metrics.items())
            if k.startswith(("train/loss", "val/")) and v.numel() == 1
        }
        text = "  ".join(f"{k} {float(v):.4f}" for k, v in shown.items())
        log.info(
            "epoch %d/%d  %s  (%.1f s)",
            trainer.current_epoch + 1,
            trainer.max_epochs,
            text,
            elapsed,
        )


class FirstStepMarker(pl.Callback):
    """Print a marker line when the first training batch starts (used to time start-up)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.printed = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.printed:
            print(self.marker, flush=True)
            self.printed = True


class WeightEMA(WeightAveraging):
    """Exponential moving average of the weights and BatchNorm statistics, updated every step,
    with a horizon that is bounded in epochs as well as in steps (Polyak and Juditsky, "Acceleration
    of Stochastic Approximation by Averaging", SIAM J. Control Optim. 1992).

    ``averaged = d * averaged + (1 - d) * current`` with ``d = min(decay, 1 - 1 / (max_epochs *
    steps_per_epoch))``: ``decay`` sets the horizon (about ``1 / (1 - decay)`` steps) on large data;
    on a table so small that an epoch is a few steps, ``max_epochs`` keeps the average from
    lagging the model by dozens of epochs. Lightning's ``WeightAveraging`` swaps the average in
    for validation, checkpoints and the end of training.

    Args:
        decay: the per-step decay on large data.
        max_epochs: the longest horizon, in epochs.
    """

    def __init__(self, decay: float = 0.99, max_epochs: float = 1.0) -> None:
        if not 0.0 < decay < 1.0 or max_epochs <= 0:
            raise ConfigError(f"callbacks.weight_averaging: decay={decay} must be in (0, 1) and "
                              f"max_epochs={max_epochs} positive")
        super().__init__(avg_fn=self._average)
        self.decay = decay
        self.max_epochs = max_epochs
        self.step_decay = decay

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        steps = max(1, int(trainer.num_training_batches) // max(1, trainer.accumulate_grad_batches))
        self.step_decay = min(self.decay, 1.0 - 1.0 / max(1.0, self.max_epochs * steps))

    def _average(self, averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        return averaged + (current - averaged) * (1.0 - self.step_decay)
