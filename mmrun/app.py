"""Run an mmrun command through Hydra without touching ``sys.argv``.

Lightning relaunches DDP worker processes from ``sys.argv``, so the CLI hands its (possibly
normalised) arguments to Hydra directly instead of rewriting ``sys.argv``. User mistakes
raised inside a command are printed as one line (no traceback) and end the process with a
non-zero exit code; ``HYDRA_FULL_ERROR=1`` re-raises them for the full traceback. In a
sweep (``-m``) a job that raises is recorded as failed and the sweep goes on (mmrun.sweep.jobs).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig

from mmrun.config_check import check_config
from mmrun.errors import ConfigError, MmrunError
from mmrun.logfiles import to_log_files

log = logging.getLogger("mmrun")


def full_errors() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def as_user_error(error: BaseException) -> MmrunError | None:
    """The ``MmrunError`` behind an exception caused by user input, or None for a bug."""
    if isinstance(error, MmrunError):  # before the imports: a config error is answered without Lightning
        return error
    from hydra.errors import InstantiationException
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    if isinstance(error, InstantiationException):
        cause = error.__cause__
        if isinstance(cause, MmrunError):
            return cause
        first = str(error).strip().splitlines()
        detail = str(cause) if cause is not None else (first[-1] if first else "")
        target = first[0] if first else "a component"
        return ConfigError(f"{target.rstrip(':')}: {detail}; check that key's options in conf/")
    if isinstance(error, MisconfigurationException):
        return ConfigError(f"trainer: {str(error).strip().splitlines()[0]}")
    return None


def report_user_error(error: MmrunError) -> None:
    print(f"mmrun: error: {error}", file=sys.stderr)


def discard_unused_output(run_dir: Path, job_name: str) -> None:
    """Remove a command's output folder when it holds nothing but Hydra's record and the log."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {".hydra", f"{job_name}.log"}:
        shutil.rmtree(run_dir, ignore_errors=True)


def guarded(run: Callable[[DictConfig], Any], command: str) -> Callable[[DictConfig], Any]:
    """Wrap a command so user mistakes end the run with one line instead of a traceback."""

    def task_function(cfg: DictConfig) -> Any:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from mmrun.interruption import RunInterrupted

        multirun = HydraConfig.get().mode == RunMode.MULTIRUN
        if multirun:  # a rerun into the same sweep folder reuses finished jobs, resumes stopped ones
            from mmrun.sweep.jobs import completed_result, resumable_checkpoint

            done, value = completed_result()
            if done:
                return value
            checkpoint = resumable_checkpoint()
            if checkpoint is not None and "resume" in cfg:
                cfg.resume = checkpoint
        try:
            check_config(cfg, command)
            return run(cfg)
        except RunInterrupted as stop:
            if full_errors():
                raise
            stop.hand_on()  # a scheduler's own handler (submitit requeues the job) after the save
            if multirun:
                from mmrun.sweep.jobs import stop_sweep

                stop_sweep(stop)
            print(f"mmrun: {stop}; metrics.json says status: interrupted", file=sys.stderr)
            sys.exit(stop.exit_code)
        except Exception as error:
            user_error = as_user_error(error)
            if full_errors():
                raise
            if multirun:  # one failed job never aborts the sweep; the report lists it
                from mmrun.sweep.jobs import record_failure

                record_failure(error, str(user_error or f"{type(error).__name__}: {error}").splitlines()[0])
                return None
            if user_error is None:
                raise
            to_log_files(logging.ERROR, str(user_error))  # the console gets it once, on stderr
            report_user_error(user_error)
            # A command that failed before writing anything (a bad value, a missing file) leaves no folder behind.
            discard_unused_output(Path(HydraConfig.get().runtime.output_dir), HydraConfig.get().job.name)
            sys.exit(user_error.exit_code)

    task_function.__module__ = run.__module__
    task_function.__qualname__ = run.__qualname__
    return task_function


def run_hydra(run: Callable[[DictConfig], Any], config_dir: str, config_name: str, args: list[str]) -> None:
    """Parse Hydra's command line from ``args`` and run ``run`` under Hydra."""
    from hydra import version
    from hydra._internal.utils import _run_hydra, get_args_parser

    from mmrun import resolvers

    resolvers.register()
    version.setbase("1.3")
    parser = get_args_parser()
    parsed = parser.parse_args(args)
    _run_hydra(
        args=parsed,
        args_parser=parser,
        task_function=guarded(run, config_name),
        config_path=config_dir,
        config_name=config_name,
    )
