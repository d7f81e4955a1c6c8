"""OmegaConf resolvers that name a run and its sweep for experiment trackers.

``${mmrun.experiment:}`` is one name per sweep (``sweep <sweep folder>``) and ``mmrun`` for
single runs, so an MLflow experiment or a W&B group holds a whole sweep;
``${mmrun.run_name:}`` is the job's overrides (``fusion=concat,seed=1``), or ``defaults``.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def experiment_name() -> str:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra = HydraConfig.get()
    if hydra.mode == RunMode.MULTIRUN:
        return f"sweep {Path(hydra.sweep.dir).name}"
    return "mmrun"


def run_name() -> str:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().job.override_dirname or "defaults"


def register() -> None:
    """Make the resolvers available to every config (idempotent)."""
    for name, resolver in (("mmrun.experiment", experiment_name), ("mmrun.run_name", run_name)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
