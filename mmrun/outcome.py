"""metrics.json for runs that did not complete: interrupted (resumable) or diverged.

A run that stops early must never look completed: its summary says what happened, at which
epoch (1-based, as in the log) and step, and for an interrupted run which checkpoint and
command continue it. ``mmrun compare`` and sweep reports list such runs beside the ranking.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mmrun.report import write_json
from mmrun.resume import LAST

log = logging.getLogger("mmrun")


@dataclass
class Progress:
    """How far a run got: its trainer once built (None while the data is still loading)."""

    trainer: Any = None

    def position(self) -> dict[str, int | None]:
        if self.trainer is None:
            return {"epoch": None, "step": None}
        return {"epoch": self.trainer.current_epoch + 1, "step": self.trainer.global_step}

    @property
    def is_global_zero(self) -> bool:
        return self.trainer is None or self.trainer.is_global_zero


def _summary(status: str, run_dir: Path, overrides: list[str], cfg: DictConfig, progress: Progress) -> dict:
    return {"schema_version": 1, "status": status, "run_dir": str(run_dir.resolve()), **progress.position(),
            "seed": cfg.seed, "overrides": overrides}


def write_interrupted(run_dir: Path, overrides: list[str], cfg: DictConfig, progress: Progress, stop) -> None:
    """``status: interrupted`` with the signal, the checkpoint to resume from and the command."""
    if not progress.is_global_zero:
        return
    checkpoint = stop.checkpoint or (str(run_dir / LAST) if (run_dir / LAST).is_file() else None)
    resume = f"mmrun train {shlex.quote(f'resume={run_dir.resolve()}')}" if checkpoint else None
    write_json(run_dir / "metrics.json", {**_summary("interrupted", run_dir, overrides, cfg, progress),
                                          "signal": stop.signal_name, "checkpoint": checkpoint, "resume": resume})
    where = f"; continue it with: {resume}" if resume else " before its first checkpoint; start it again"
    log.warning("run interrupted by %s%s", stop.signal_name, where)


def write_diverged(run_dir: Path, overrides: list[str], cfg: DictConfig, progress: Progress, error) -> None:
    """``status: diverged`` with the epoch and step where the loss stopped being a number."""
    if progress.is_global_zero:
        write_json(run_dir / "metrics.json", {**_summary("diverged", run_dir, overrides, cfg, progress),
                                              "epoch": error.epoch, "step": error.step, "error": str(error)})
