"""Sweep jobs that fail or already ran: record the first, skip the second.

A job that raises is recorded in its folder as a metrics.json with ``status: failed`` and
the one-line error, so the sweep goes on and the report lists it. When a sweep is rerun into
the same folder (``hydra.sweep.dir=...``), a job whose folder holds a completed metrics.json
for the same overrides is not trained again: its recorded result is returned instead.
"""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path

from mmrun.report import write_json
from mmrun.sweep.runs import SUMMARY

log = logging.getLogger("mmrun")


def _job():
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    return Path(hydra.runtime.output_dir), list(hydra.overrides.task), hydra.job.num


def completed_result() -> tuple[bool, float | None]:
    """``(True, best monitored value)`` when this job already completed in its folder."""
    run_dir, overrides, num = _job()
    try:
        summary = json.loads((run_dir / SUMMARY).read_text())
    except (OSError, json.JSONDecodeError):
        return False, None
    if summary.get("status") != "completed" or summary.get("overrides") != overrides:
        return False, None
    log.info("job %s already completed in %s; reusing its result", num, run_dir)
    return True, (summary.get("best_val") or {}).get(summary.get("monitor"))


def record_failure(error: BaseException, message: str) -> None:
    """Write the failed job's metrics.json and log its traceback to the job's log file."""
    run_dir, overrides, num = _job()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / SUMMARY, {
        "schema_version": 1,
        "status": "failed",
        "run_dir": str(run_dir.resolve()),
        "error": message,
        "error_type": type(error).__name__,
        "overrides": overrides,
    })
    details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (details,), None))
    log.error("job %s failed (%s): %s", num, run_dir, message)
