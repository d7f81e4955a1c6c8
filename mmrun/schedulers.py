"""Learning-rate schedules built from torch's own schedulers.

The step-wise schedules take the optimizer and the run's total optimizer steps (known only
once the trainer has seen the data), which is why the configs are instantiated as partials,
and are stepped every optimizer step. ``reduce_on_plateau`` takes a ``mode`` instead (a
config with a ``mode`` key is metric-driven) and is stepped after each validation on the
monitored metric (``MultimodalModule.configure_optimizers``).
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (CosineAnnealingLR, LinearLR, LRScheduler, OneCycleLR, ReduceLROnPlateau,
                                      SequentialLR)


def cosine_with_warmup(optimizer: Optimizer, total_steps: int, warmup_fraction: float = 0.05, min_lr_ratio: float = 0.0) -> LRScheduler:
    """Linear warm-up from ~0 over ``warmup_fraction`` of the steps, then cosine decay
    (Loshchilov and Hutter, "SGDR", ICLR 2017, arXiv:1608.03983)."""
    warmup = max(1, int(warmup_fraction * total_steps))
    decay = max(1, total_steps - warmup)
    base_lr = optimizer.param_groups[0]["lr"]
    return SequentialLR(
        optimizer,
        [
            LinearLR(optimizer, start_factor=1e-3, end_factor=1.0, total_iters=warmup),
            CosineAnnealingLR(optimizer, T_max=decay, eta_min=base_lr * min_lr_ratio),
        ],
        milestones=[warmup],
    )


def one_cycle(optimizer: Optimizer, total_steps: int, max_lr_factor: float = 1.0, pct_start: float = 0.3) -> LRScheduler:
    """One-cycle policy peaking at ``max_lr_factor`` x the optimizer's lr
    (Smith and Topin, "Super-Convergence", 2017, arXiv:1708.07120)."""
    max_lr = [group["lr"] * max_lr_factor for group in optimizer.param_groups]
    return OneCycleLR(optimizer, max_lr=max_lr, total_steps=max(1, total_steps), pct_start=pct_start)


def reduce_on_plateau(optimizer: Optimizer, mode: str = "max", factor: float = 0.5, patience: int = 2,
                      min_lr: float = 1e-6) -> ReduceLROnPlateau:
    """Multiply the learning rate by ``factor`` when the monitored validation metric has not
    improved for ``patience`` epochs (the schedule of Ludwig and Keras' ReduceLROnPlateau).

    It needs no run length, so it suits training that ends by early stopping. ``mode``
    (``max``/``min``) follows ``monitor_mode`` when the config says ``auto``."""
    return ReduceLROnPlateau(optimizer, mode=mode, factor=factor, patience=patience, min_lr=min_lr)
