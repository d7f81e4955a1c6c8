"""The weight average that is validated, checkpointed and tested."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import WeightAveraging

from mmrun.errors import ConfigError


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
