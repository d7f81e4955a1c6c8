"""OmegaConf resolvers that name a run and its sweep for experiment trackers.

``${mmrun.experiment:}`` is one name per sweep (``sweep <sweep folder>``) and ``mmrun`` for
single runs, so an MLflow experiment or a W&B group holds a whole sweep;
``${mmrun.run_name:}`` is the job's overrides (``fusion=concat,seed=1``), or ``defaults``.
``${mmrun.run_path:checkpoints}`` is a path inside the run folder.
``${mmrun.job_folder:}`` names a sweep job's folder after its swept overrides, so a sweep run
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


def run_path(*parts: str) -> str:
    """A path inside the run folder (``${mmrun.run_path:checkpoints}``); ``<run dir>/...`` when no
    run folder exists yet (``mmrun train --cfg job --resolve`` prints the config before a run)."""
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    output_dir = OmegaConf.select(hydra, "runtime.output_dir", default=None) if hydra is not None else None
    return "/".join([str(output_dir or "<run dir>"), *parts])


FOLDER_LENGTH = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")


def job_folder() -> str:
    """A sweep job's folder name: its swept overrides (``fusion=concat,seed=1``), or ``defaults``.

    The overrides every job shares (``dataset.size=400``) are left out of the name, but a short
    hash of all of them, exactly as given, is appended, so a rerun with another shared value
    gets new folders. Characters a file system or shell may not like are dropped or replaced
    (``encoder/text`` becomes ``encoder.text``).
    """
    from hydra.core.hydra_config import HydraConfig

    from mmrun.sweep.runs import override_key

    hydra = HydraConfig.get()
    overrides = sorted(hydra.overrides.task)
    swept = sweep_keys(Path(hydra.sweep.dir) / "multirun.yaml")
    shown = ",".join(o for o in overrides if swept is None or override_key(o) in swept)
    name = _UNSAFE.sub("_", shown.replace("/", ".").translate(str.maketrans("", "", "[]'\" ")))[:FOLDER_LENGTH]
    exact = ",".join(overrides)
    if name == exact:
        return name or "defaults"
    return f"{name or 'defaults'}-{hashlib.sha1(exact.encode()).hexdigest()[:8]}"


def sweep_arguments(multirun_config: Path) -> list[str] | None:
    """The sweep's overrides as Hydra's basic sweeper expands them: ``hydra.sweeper.params``
    (from a preset such as ``+sweep=fusions``) then the command line's, read from the
    multirun.yaml it saves before the jobs start; None when there is none (other sweepers)."""
    if not multirun_config.is_file():
        return None
    saved = OmegaConf.load(multirun_config)
    params = OmegaConf.select(saved, "hydra.sweeper.params", default=None) or {}
    task = [str(o) for o in OmegaConf.select(saved, "hydra.overrides.task", default=[])]
    return [*(f"{key}={value}" for key, value in params.items()), *task]


def sweep_keys(multirun_config: Path) -> set[str] | None:
    """Keys the sweep gives several values (None when unknown)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    arguments = sweep_arguments(multirun_config)
    if arguments is None:
        return None
    return {o.key_or_group for o in OverridesParser.create().parse_overrides(arguments) if o.is_sweep_override()}


def register() -> None:
    """Make the resolvers available to every config (idempotent)."""
    for name, resolver in (("mmrun.experiment", experiment_name), ("mmrun.run_name", run_name),
                           ("mmrun.job_folder", job_folder), ("mmrun.run_path", run_path)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
