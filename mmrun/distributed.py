"""Make Lightning's DDP worker launch work for every job of a Hydra sweep.

Lightning starts DDP workers by re-running ``sys.argv`` with the run folder appended. Under
``-m`` that command line is the whole sweep (and the folder it appends is the unresolved
``hydra.run.dir`` pattern), so every worker would start a sweep of its own; and after the
first job, the launching process keeps the process group and the ``LOCAL_RANK``/``MASTER_*``
variables, so the next job would neither launch workers nor connect to new ones. Each job
therefore runs inside ``job_scope``: it exports its own overrides and folder for the workers,
and afterwards tears down the process group and restores the environment.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Iterator

JOB_ENV = "MMRUN_DDP_JOB"
# Variables Lightning's launcher sets in the launching process.
_LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
# What Lightning appends to a worker's command line.
_LAUNCHER_ARGS = ("hydra.run.dir=", "hydra.job.name=", "hydra.output_subdir=")


@contextmanager
def job_scope(overrides: list[str], run_dir: str) -> Iterator[None]:
    """Run one training job: export it for DDP workers, clean up distributed state after."""
    saved = {key: os.environ.get(key) for key in (*_LAUNCHER_ENV, JOB_ENV)}
    os.environ[JOB_ENV] = json.dumps({"overrides": list(overrides), "run_dir": run_dir})
    try:
        yield
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def ddp_child_args(args: list[str]) -> list[str]:
    """The arguments a DDP worker runs with: its job's overrides when launched from a sweep."""
    exported = os.environ.get(JOB_ENV)
    if exported is None or "LOCAL_RANK" not in os.environ or not {"-m", "--multirun"} & set(args):
        return args
    job = json.loads(exported)
    launcher = [a for a in args if a.startswith(_LAUNCHER_ARGS) and not a.startswith("hydra.run.dir=")]
    return [*job["overrides"], f'hydra.run.dir="{job["run_dir"]}"', *launcher]
