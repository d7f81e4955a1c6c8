"""``callbacks.early_stopping.patience=auto``: the early-stopping patience from the epoch length.

Why: patience counted in epochs means very different amounts of training. On a table of
1,260 training rows an epoch is 20 optimizer steps, and four epochs without a better
validation score (80 steps, while the plateau schedule is still lowering the learning rate)
ended runs early: on the real-scans table (README, Quality), seed 1 stopped at epoch 19 with
test accuracy 0.9815 under patience 4, and went on to epoch 40 and 0.9926 under patience 8.
On 8,000 rows an epoch is 63 steps and four epochs are enough (the built-in data's default).
``auto`` waits about ``STEPS`` optimizer steps, and between ``LOWEST`` and ``HIGHEST`` epochs.
"""

from __future__ import annotations

import logging
import math

from omegaconf import DictConfig, open_dict

log = logging.getLogger("mmrun")

STEPS = 160
LOWEST, HIGHEST = 4, 10


def patience_for(steps_per_epoch: int) -> int:
    """Epochs of patience for an epoch of ``steps_per_epoch`` optimizer steps."""
    return min(HIGHEST, max(LOWEST, math.ceil(STEPS / max(1, steps_per_epoch))))


def resolve_patience(cfg: DictConfig, datamodule) -> None:
    """Replace ``patience: auto`` in ``cfg.callbacks.early_stopping`` by its value for this data."""
    stopping = (cfg.get("callbacks") or {}).get("early_stopping")
    if stopping is None or stopping.get("patience") != "auto":
        return
    steps = len(datamodule.train_dataloader()) // max(1, int(cfg.trainer.get("accumulate_grad_batches") or 1))
    with open_dict(cfg):
        stopping.patience = patience_for(steps)
    log.info("inferred callbacks.early_stopping.patience=%d (about %d optimizer steps at %d per epoch; "
             "%d to %d epochs)", stopping.patience, STEPS, steps, LOWEST, HIGHEST)
