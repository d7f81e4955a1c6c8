"""OmegaConf resolvers that name a run and its sweep for experiment trackers.

``${mmrun.experiment:}`` is one name per sweep (``sweep <sweep folder>``) and ``mmrun`` for
single runs, so an MLflow experiment or a W&B group holds a whole sweep;
``${mmrun.run_name:}`` is the job's overrides (``fusion=concat,seed=1``), or ``defaults``.
``${mmrun.job_folder:}`` names a sweep job's folder after its overrides too, so a sweep run
again into the same folder finds each configuration's results where they were, however the
job numbers shift (``mmrun.sweep.jobs``).
"""

from __future__ import annotations

import hashlib
import re
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


FOLDER_LENGTH = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")


def job_folder() -> str:
    """The job's overrides as a folder name (``fusion=concat,seed=1``), or ``defaults``.

    Characters a file system or shell may not like are dropped or replaced (``encoder/text``
    becomes ``encoder.text``); when that changed the text or it is long, a short hash of the
    exact overrides keeps different jobs apart.
    """
    overrides = run_name()
    name = _UNSAFE.sub("_", overrides.replace("/", ".").translate(str.maketrans("", "", "[]'\" ")))
    if name != overrides or len(name) > FOLDER_LENGTH:
        name = f"{name[:FOLDER_LENGTH]}-{hashlib.sha1(overrides.encode()).hexdigest()[:8]}"
    return name


def register() -> None:
    """Make the resolvers available to every config (idempotent)."""
    for name, resolver in (("mmrun.experiment", experiment_name), ("mmrun.run_name", run_name),
                           ("mmrun.job_folder", job_folder)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
