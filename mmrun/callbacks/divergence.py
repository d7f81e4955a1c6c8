"""Stop a run whose training loss is no longer a number, instead of calling it completed."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from mmrun.errors import TrainingDiverged


class DivergenceGuard(pl.Callback):
    """Raises ``TrainingDiverged`` after the first training step whose loss is not finite.

    Epochs in the message are 1-based, as in the log; the step is the optimizer step.
    """

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not torch.isfinite(loss.detach()).all():
            value = float(loss.detach().float().mean())
            raise TrainingDiverged(trainer.current_epoch + 1, trainer.global_step, value)
