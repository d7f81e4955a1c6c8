"""``threads``: how many CPU threads torch uses in one training process, set before any work.

``auto`` shares the cores this process may run on (its CPU affinity: a ``taskset`` or scheduler
allocation, else every core) among the processes that train on them at once: the jobs a launcher
runs in parallel (``hydra/launcher=joblib``: its ``n_jobs``) and the processes Lightning starts
per machine for one job (one per device of ``trainer.devices``). Threads beyond the cores make
every process wait for the others: on a busy 2-core machine an epoch took 37.7 s with torch's
default threads and 1.5 s with one. ``OMP_NUM_THREADS``, when the environment sets it, caps
``auto``; a number (``threads=4``) is taken as it is.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mmrun.config_schema import THREADS
from mmrun.errors import ConfigError

log = logging.getLogger("mmrun")
ENV = "OMP_NUM_THREADS"


def _env_limit(text: str | None) -> int | None:
    """The thread count an ``OMP_NUM_THREADS`` value asks for (its first level), or None."""
    first = (text or "").split(",")[0].strip()
    return int(first) if first.isdigit() and int(first) > 0 else None


# Read once, before ``apply_threads`` exports its own value: a later job of this process still
# sees the user's setting, and a DDP worker (which inherits the export) sees its launcher's.
_ENV_LIMIT = _env_limit(os.environ.get(ENV))


@dataclass(frozen=True)
class Threads:
    """A thread count and why (``1 (2 cores / 2 parallel jobs)``)."""

    count: int
    reason: str

    def __str__(self) -> str:
        return f"{self.count} ({self.reason})"


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS has one."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parallel_jobs(n_jobs: int | None, cores: int) -> int:
    """The jobs a launcher runs at once: joblib's ``n_jobs``, where negative values count back
    from all cores as joblib does (-1 = all, -2 = all but one); None (a launcher without
    ``n_jobs`` runs one job at a time on this machine) = 1."""
    if n_jobs is None:
        return 1
    return max(cores + 1 + n_jobs if n_jobs < 0 else n_jobs, 1)


def processes_per_node(devices: Any, gpus: int | None, cores: int) -> int:
    """The processes Lightning starts on this machine for one job: one per device.

    ``devices`` is ``trainer.devices`` (N, a list of indices, -1 = all, ``auto``); ``gpus`` the
    GPUs of the machine when training on them, None on the CPU, where Lightning reads -1 as one
    process per core and ``auto`` as one process.
    """
    if isinstance(devices, Sequence) and not isinstance(devices, str):
        return max(len(devices), 1)
    if devices in (-1, "auto"):
        return gpus if gpus is not None else (cores if devices == -1 else 1)
    return max(int(devices), 1)


def resolve_threads(setting: Any, cores: int, n_jobs: int | None = None, processes: int = 1,
                    limit: int | None = None) -> Threads:
    """The threads of one training process for ``threads=<setting>`` (``auto`` or a number >= 1).

    ``auto``: ``cores`` divided by the jobs running at once (``n_jobs``: see ``parallel_jobs``)
    and by the ``processes`` each job runs on this machine, at least 1 and at most ``limit``
    (the environment's ``OMP_NUM_THREADS``).
    """
    if not THREADS.accepts(setting):
        raise ConfigError(THREADS.refusal("threads", setting))
    if setting != "auto":
        return Threads(setting, f"set by threads={setting}; {cores} cores")
    jobs = parallel_jobs(n_jobs, cores)
    share = max(cores // (jobs * processes), 1)
    sharers = [f"{count} {what}" for count, what in ((jobs, "parallel jobs"), (processes, "DDP processes"))
               if count > 1]
    reason = " / ".join([f"{cores} cores", *sharers])
    if limit is not None and limit < share:
        return Threads(limit, f"{ENV}={limit}; {reason}")
    return Threads(share, reason)


def _launcher_jobs() -> int | None:
    """``hydra.launcher.n_jobs`` of a sweep whose launcher has one (joblib), else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return HydraConfig.get().launcher.get("n_jobs")


def _job_processes(trainer: Any, cores: int) -> int:
    """``processes_per_node`` for the trainer config; 1 under SLURM, whose tasks (one per
    device) each get their own ``cpus_per_task`` cores."""
    import torch
    from lightning_fabric.plugins.environments import SLURMEnvironment

    if SLURMEnvironment.detect():
        return 1
    accelerator = trainer.get("accelerator", "auto")
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return processes_per_node(trainer.get("devices", 1), torch.cuda.device_count() if on_gpu else None, cores)


def apply_threads(cfg: Any) -> Threads:
    """Resolve ``cfg.threads`` for this process, set torch's thread pools to it and log it."""
    import torch

    cores = available_cores()
    processes = _job_processes(cfg.get("trainer") or {}, cores)
    threads = resolve_threads(cfg.get("threads", "auto"), cores, _launcher_jobs(), processes, _ENV_LIMIT)
    torch.set_num_threads(threads.count)
    with contextlib.suppress(RuntimeError):  # allowed once per process, before any parallel work: a later
        torch.set_num_interop_threads(threads.count)  # job of a sweep keeps the first
    if processes > 1:  # Lightning's DDP launcher sets its own count unless this is set; its workers inherit it
        os.environ[ENV] = str(threads.count)
    log.info("threads: %s", threads)
    return threads
