"""Sweep jobs that fail, already ran, or were stopped.

A job that raises is recorded in its folder as a metrics.json with ``status: failed`` and
the one-line error (a diverged job has already written ``status: diverged``), so the sweep
goes on and the report lists it. Job folders are named after their overrides
(``mmrun.resolvers.job_folder``), so when a sweep is rerun into the same folder
(``hydra.sweep.dir=...``), even with values added, each configuration finds its own folder:
a completed job is not trained again (its recorded result is returned), and a job that was
interrupted, or killed after its first epoch, resumes from its last.ckpt.

A stop signal (``mmrun.interruption``) ends the whole sweep: the report of the jobs finished
so far is written, the jobs not run are listed, and the process exits 128 + the signal.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

from mmrun.errors import TrainingDiverged
from mmrun.logfiles import to_log_files
from mmrun.report import write_json
from mmrun.resume import LAST, read_summary
from mmrun.sweep.runs import SUMMARY, override_key

log = logging.getLogger("mmrun")


def _job():
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    return Path(hydra.runtime.output_dir), list(hydra.overrides.task), hydra.job.num


def completed_result() -> tuple[bool, float | None]:
    """``(True, best monitored value)`` when this job already completed in its folder."""
    run_dir, overrides, num = _job()
    summary = read_summary(run_dir)
    if summary.get("status") != "completed" or summary.get("overrides") != overrides:
        return False, None
    log.info("job %s already completed in %s; reusing its result", num, run_dir)
    return True, (summary.get("best_val") or {}).get(summary.get("monitor"))


def resumable_checkpoint() -> str | None:
    """This job's last.ckpt when an earlier sweep was stopped (or killed) while running it."""
    run_dir, _, num = _job()
    checkpoint = run_dir / LAST
    if read_summary(run_dir).get("status", "interrupted") != "interrupted" or not checkpoint.is_file():
        return None
    log.info("job %s was stopped in %s; resuming it from %s", num, run_dir, checkpoint)
    return str(checkpoint)




def record_failure(error: BaseException, message: str) -> None:
    """Write the failed job's metrics.json and log its traceback to the job's log file."""
    run_dir, overrides, num = _job()
    run_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(error, TrainingDiverged):  # its metrics.json already says where
        log.error("job %s diverged (%s): %s", num, run_dir, message)
        return
    write_json(run_dir / SUMMARY, {
        "schema_version": 1,
        "status": "failed",
        "run_dir": str(run_dir.resolve()),
        "error": message,
        "error_type": type(error).__name__,
        "overrides": overrides,
    })
    to_log_files(logging.ERROR, "".join(traceback.format_exception(type(error), error, error.__traceback__)))
    log.error("job %s failed (%s): %s", num, run_dir, message)


def stop_sweep(stop) -> None:
    """Write the report of the jobs finished so far, list the jobs not run, exit 128 + signal."""
    from hydra.core.hydra_config import HydraConfig

    from mmrun.resolvers import sweep_keys
    from mmrun.sweep.report import write_report

    root = Path(HydraConfig.get().sweep.dir)
    try:
        write_report([root], root)
    except Exception as error:  # e.g. no job finished yet: the folders are still there to compare
        log.warning("no comparison report for %s yet: %s", root, str(error).splitlines()[0])
    not_run = jobs_not_run(root)
    if not_run:
        swept = sweep_keys(root / "multirun.yaml") or set()
        shown = [" ".join(o for o in job if override_key(o) in swept) for job in not_run]
        log.warning("jobs not run (%d): %s", len(not_run), "; ".join(shown))
    log.warning("sweep interrupted by %s; run the same command with hydra.sweep.dir=%s to finish it "
                "(finished jobs are reused, the stopped one resumes)", stop.signal_name, root)
    sys.exit(stop.exit_code)


def jobs_not_run(root: Path) -> list[list[str]]:
    """The overrides of the sweep's jobs that have no completed result in ``root``.

    Known for grid sweeps (Hydra's basic sweeper); other sweepers choose their jobs as they go.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from mmrun.resolvers import sweep_arguments

    saved = OmegaConf.load(root / "multirun.yaml") if (root / "multirun.yaml").is_file() else None
    if saved is None or "BasicSweeper" not in str(OmegaConf.select(saved, "hydra.sweeper._target_", default="")):
        return []
    hydra = GlobalHydra.instance()  # its config loader lists a group's options for glob(*) sweeps
    parser = OverridesParser.create(config_loader=hydra.config_loader() if hydra.is_initialized() else None)
    parsed = parser.parse_overrides(sweep_arguments(root / "multirun.yaml") or [])
    jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    done = {tuple(sorted(read_summary(p.parent).get("overrides") or [])) for p in root.glob(f"*/{SUMMARY}")
            if read_summary(p.parent).get("status") == "completed"}
    return [job for job in jobs if tuple(sorted(job)) not in done]
