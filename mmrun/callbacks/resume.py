"""What makes a run resumable: last.ckpt at every epoch end (and on request mid-epoch or at a
stop signal), with the random number generators' states inside.

Lightning restores the weights, the optimizer, the scheduler, the loops' progress and every
callback's state (best checkpoint, early stopping, weight average) from a checkpoint; the
training data order follows the epoch (``TrainingOrder``) and, mid-epoch, the state of
``mmrun.data.loader.TensorBatchLoader``. What
Lightning leaves out is the random state that dropout and augmentation draw from:
``RandomState`` keeps it, so that a resumed CPU run ends with the same metrics as one that
was never stopped.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint

from mmrun import interruption
from mmrun.errors import ConfigError

LAST = "last.ckpt"


class RandomState(pl.Callback):
    """Saves and restores the torch (CPU and CUDA), NumPy and Python random states."""

    def state_dict(self) -> dict[str, Any]:
        name, keys, position, has_gauss, gauss = np.random.get_state()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        saved = state["numpy"]
        np.random.set_state((saved["name"], saved["keys"].numpy().astype(np.uint32), saved["position"],
                             saved["has_gauss"], saved["gauss"]))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class TrainingOrder(pl.Callback):
    """Tells the training loader the epoch at each epoch start, so its shuffled order follows the
    trainer's epoch (Lightning restores a loader's own state only for mid-epoch checkpoints)."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loader = trainer.train_dataloader
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(trainer.current_epoch)


class LastCheckpoint(Checkpoint):
    """``<dirpath>/last.ckpt``: the whole training state after every epoch, so it always holds the
    final epoch, and is what ``mmrun train resume=<run dir>`` continues from.

    Lightning runs checkpoint callbacks after all others, so the saved state includes this
    epoch's early-stopping, best-checkpoint and weight-average updates. Lightning writes the
    file atomically (a temporary file moved into place), so a kill during a save leaves the
    previous last.ckpt intact. At a stop signal (``mmrun.interruption``) it saves after the
    batch under way and ends the run.

    Args:
        dirpath: the run's checkpoints folder.
        every_n_train_steps: also save every this many optimizer steps within an epoch (null: only
            at epoch ends), for epochs long enough that losing one hurts.
        every_n_minutes: also save when this many minutes have passed since the last save.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int | None = None,
                 every_n_minutes: float | None = None) -> None:
        if every_n_train_steps is not None and (not isinstance(every_n_train_steps, int) or every_n_train_steps < 1):
            raise ConfigError(f"callbacks.last_checkpoint.every_n_train_steps={every_n_train_steps} must be a "
                              f"whole number >= 1, or null")
        if every_n_minutes is not None and not (isinstance(every_n_minutes, (int, float)) and every_n_minutes > 0):
            raise ConfigError(f"callbacks.last_checkpoint.every_n_minutes={every_n_minutes} must be a number > 0, "
                              f"or null")
        self.path = Path(dirpath) / LAST
        self.every_n_train_steps = every_n_train_steps
        self.every_n_seconds = every_n_minutes * 60 if every_n_minutes else None
        self.saved_at = time.monotonic()

    def save(self, trainer: pl.Trainer) -> None:
        trainer.save_checkpoint(self.path)
        self.saved_at = time.monotonic()

    def _due(self, trainer: pl.Trainer) -> bool:
        if self.every_n_train_steps and trainer.global_step % self.every_n_train_steps == 0:
            return True
        return self.every_n_seconds is not None and time.monotonic() - self.saved_at >= self.every_n_seconds

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        signum = interruption.pending()
        # Every DDP rank stops at the same batch, even when the signal reached only some of them.
        if trainer.strategy.reduce_boolean_decision(signum is not None, all=False):
            self.save(trainer)
            raise interruption.RunInterrupted(signum or signal.SIGTERM, str(self.path))
        if self._due(trainer) and batch_idx + 1 < trainer.num_training_batches:  # the epoch's end saves anyway
            self.save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer)
