"""What a run reports as it trains: the best-epoch tracker, the epoch log, the progress bar,
a start marker. Epochs are counted from 1 wherever people read them (bar, log, metrics.json);
only Lightning's metrics.csv counts from 0.

The tracker and the epoch log keep their state in checkpoints, so a resumed run reports the
whole run, not only the part after the resume.
"""

from __future__ import annotations

import logging
import math
import time

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar
from pytorch_lightning.callbacks.progress.rich_progress import ProcessingSpeedColumn
from rich.text import Text

from mmrun.callbacks.selection import TieBreak
from mmrun.logfiles import to_log_files

log = logging.getLogger("mmrun")


def _scalars(trainer: pl.Trainer, prefix: str) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefix)}


class BestValidationTracker(pl.Callback):
    """Remembers every validation metric at the epoch where the monitored one was best (ties
    broken by ``tie_break``, as the best checkpoint's are: ``mmrun.callbacks.selection``)."""

    def __init__(self, monitor: str, mode: str, tie_break: str | None = None) -> None:
        self.monitor = monitor
        self.mode = mode
        self.tie = TieBreak(tie_break, monitor)
        self.best: dict[str, float] = {}
        self.best_epoch: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        current = _scalars(trainer, "val/")
        value = current.get(self.monitor)
        if value is None or math.isnan(value):
            return
        previous = self.best.get(self.monitor)
        better = previous is None or (value > previous if self.mode == "max" else value < previous)
        if better or self.tie.breaks_tie(trainer, value, previous):
            self.best = current
            self.best_epoch = trainer.current_epoch
            self.tie.record(trainer)

    def state_dict(self) -> dict:
        return {"best": dict(self.best), "best_epoch": self.best_epoch, "tie_break_best": self.tie.best}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = dict(state["best"]), state["best_epoch"]
        self.tie.best = state.get("tie_break_best")


class EpochLogger(pl.Callback):
    """One log line per epoch with the epoch's metrics (for logs and non-terminal output).

    Also times every training epoch and counts the samples trained on, for ``epoch_time_s``
    and ``train_samples_per_s`` in metrics.json. Lightning runs the epoch's validation before
    ``on_train_epoch_end``, so its time is measured and left out of those figures (the log
    line shows the whole epoch).
    """

    def __init__(self, console: bool = True) -> None:
        self.console = console  # False while a progress bar shows the epoch: the line goes to the log file only
        self.started = time.perf_counter()
        self.validation_started = self.started
        self.validation_seconds = 0.0
        self.epoch_times: list[float] = []
        self.samples = 0  # on this rank

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.perf_counter()
        self.validation_seconds = 0.0

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.validation_started = time.perf_counter()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validation_seconds += time.perf_counter() - self.validation_started

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.samples += len(batch["present"])

    def state_dict(self) -> dict:
        return {"epoch_times": list(self.epoch_times), "samples": self.samples}

    def load_state_dict(self, state: dict) -> None:
        self.epoch_times, self.samples = list(state["epoch_times"]), int(state["samples"])

    def samples_per_second(self, world_size: int) -> float | None:
        seconds = sum(self.epoch_times)
        return round(self.samples * world_size / seconds, 1) if seconds > 0 else None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        elapsed = time.perf_counter() - self.started
        self.epoch_times.append(round(elapsed - self.validation_seconds, 3))
        if not trainer.is_global_zero:
            return
        shown = {
            k: v
            for k, v in sorted(trainer.callback_metrics.items())
            if k.startswith(("train/loss", "val/")) and v.numel() == 1
        }
        text = "  ".join(f"{k} {float(v):.4f}" for k, v in shown.items())
        line = f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  {text}  ({elapsed:.1f} s)"
        if self.console:
            log.info(line)
        else:
            to_log_files(logging.INFO, line)


class EpochProgressBar(RichProgressBar):
    """Lightning's rich progress bar, counting epochs from 1 as the log does (``Epoch 1/5``), and
    showing no speed until one is measured (a one-batch test bar read ``0.00it/s``)."""

    def _get_train_description(self, current_epoch: int) -> str:
        description = f"Epoch {current_epoch + 1}"
        if self.trainer.max_epochs is not None and self.trainer.max_epochs > 0:
            description += f"/{self.trainer.max_epochs}"
        return f"{description:{len(self.validation_description)}}"

    def configure_columns(self, trainer: pl.Trainer) -> list:
        return [_MeasuredSpeed(self.theme.processing_speed) if isinstance(column, ProcessingSpeedColumn) else column
                for column in super().configure_columns(trainer)]


class _MeasuredSpeed(ProcessingSpeedColumn):
    """Batches per second, blank until rich has timed at least two updates."""

    def render(self, task):
        return super().render(task) if task.speed else Text("", style=self.style)


class FirstStepMarker(pl.Callback):
    """Print a marker line when the first training batch starts (used to time start-up)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.printed = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.printed:
            print(self.marker, flush=True)
            self.printed = True
