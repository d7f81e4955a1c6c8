"""Read run folders: their summary (metrics.json), their overrides and their per-epoch curves.

Only files a run leaves behind are read (metrics.json, metrics.csv, .hydra/*.yaml, and the
analysis's robustness.json and contribution.json), never a checkpoint, so comparing hundreds
of runs copied from a cluster takes a second or two.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from mmrun.errors import ConfigError
from mmrun.sweep.analysis import read_analysis

SUMMARY = "metrics.json"
SEED_KEY = "seed"


def override_key(text: str) -> str:
    """The key of an override line: ``+fusion=attention`` -> ``fusion``."""
    return text.split("=", 1)[0].lstrip("+~")


def parse_overrides(lines: list[str]) -> dict[str, str]:
    """``["fusion=attention", "seed=2"]`` -> ``{"fusion": "attention", "seed": "2"}``."""
    return {override_key(line): line.split("=", 1)[1] for line in lines if "=" in line}


@dataclass
class Run:
    """One run folder as the comparison sees it."""

    path: Path
    summary: dict[str, Any]
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """completed, failed, diverged, interrupted, or incomplete (no metrics.json: killed or running)."""
        return str(self.summary.get("status", "completed"))

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def error(self) -> str:
        """What went wrong, in one line: the error, or how to resume an interrupted run."""
        if self.status == "interrupted":
            epoch = self.summary.get("epoch")
            where = f"{f'at epoch {epoch}' if epoch else 'before training started'} by {self.summary.get('signal')}"
            resume = self.summary.get("resume")
            return f"stopped {where}; " + (f"continue with: {resume}" if resume else "no checkpoint yet")
        return str(self.summary.get("error", ""))

    @property
    def seed(self) -> int | None:
        value = self.summary.get("seed", self.overrides.get(SEED_KEY))
        try:
            return int(value)
        except (TypeError, ValueError):
            return self._saved_config.get(SEED_KEY)

    @property
    def finished_at(self) -> float:
        """When the run wrote its metrics.json (the file's modification time; 0.0 without one)."""
        summary = self.path / SUMMARY
        return summary.stat().st_mtime if summary.is_file() else 0.0

    def value(self, metric: str) -> float | None:
        """A validation metric at the best epoch, or a test metric; None when not logged."""
        source = self.summary.get("test", {}) if metric.startswith("test/") else self.summary.get("best_val", {})
        value = source.get(metric)
        return None if value is None or math.isnan(value) else float(value)

    @property
    def baseline(self) -> dict[str, Any] | None:
        """The classical baseline block of metrics.json (``mmrun.baseline``); None when absent or failed."""
        block = self.summary.get("baseline")
        if not isinstance(block, dict) or "error" in block or "best" not in block:
            return None
        return block

    def baseline_value(self, metric: str) -> float | None:
        """The baseline's value of a val/ or test/ metric (the best candidate's); None when not there."""
        block = self.baseline
        if block is None:
            return None
        values = block.get("test" if metric.startswith("test/") else "val")
        number = values.get(metric) if isinstance(values, dict) else None
        return None if not isinstance(number, (int, float)) or not math.isfinite(number) else float(number)

    def setting(self, key: str) -> str:
        """The value of a config key or group choice: from the overrides, else the saved config."""
        if key in self.overrides:
            return self.overrides[key]
        if key in self._choices:
            return str(self._choices[key])
        node: Any = self._saved_config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return "-"
            node = node[part]
        return _format(node)

    def known_keys(self) -> set[str]:
        """Keys ``setting`` can answer without falling back to "-": overrides and group choices."""
        return set(self.overrides) | {k for k in self._choices if not k.startswith("hydra/")}

    @cached_property
    def _hydra(self) -> dict[str, Any]:
        return _load_yaml(self.path / ".hydra" / "hydra.yaml").get("hydra", {})

    @cached_property
    def _choices(self) -> dict[str, Any]:
        return dict(self._hydra.get("runtime", {}).get("choices", {}) or {})

    @property
    def job_number(self) -> int | None:
        """The job's number in its sweep (Hydra's ``hydra.job.num``), None outside a sweep."""
        number = (self._hydra.get("job") or {}).get("num")
        return int(number) if isinstance(number, int) else None

    @cached_property
    def _saved_config(self) -> dict[str, Any]:
        return _load_yaml(self.path / ".hydra" / "config.yaml")

    @cached_property
    def analysis(self) -> dict[str, dict]:
        """The analysis files the run left (``mmrun.sweep.analysis``), by name; empty without any."""
        return read_analysis(self.path)

    def curve(self, metric: str) -> dict[int, float]:
        """Per-epoch values of ``metric`` from metrics.csv (epoch -> value)."""
        return read_curves(self.path / "metrics.csv", [metric]).get(metric, {})


def _format(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(_format(v) for v in value) + "]"
    return str(value)


def _load_yaml(path: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    if not path.is_file():
        return {}
    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)  # type: ignore[return-value]
    except Exception:  # a damaged file only costs this run its defaults, not the whole report
        return {}


def read_curves(path: Path, metrics: list[str]) -> dict[str, dict[int, float]]:
    """Per-epoch values of each metric in a Lightning metrics.csv (missing file: empty)."""
    curves: dict[str, dict[int, float]] = {m: {} for m in metrics}
    if not path.is_file():
        return curves
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            epoch = row.get("epoch")
            for metric in metrics:
                text = row.get(metric)
                if text and epoch:
                    curves[metric][int(float(epoch))] = float(text)
    return curves


def load_run(path: Path) -> Run:
    """Read one run folder; one without a metrics.json is an incomplete run."""
    if not (path / SUMMARY).is_file():
        summary = {"status": "incomplete", "error": f"no {SUMMARY}: killed (or still running); if it has "
                                                    f"checkpoints/last.ckpt, continue with: mmrun train resume={path}"}
        saved = _load_yaml(path / ".hydra" / "overrides.yaml")
        return Run(path=path, summary=summary, overrides=parse_overrides([str(o) for o in saved or []]))
    try:
        summary = json.loads((path / SUMMARY).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read {path / SUMMARY}: {error}; delete that run folder or fix the file") from None
    lines = summary.get("overrides")
    if lines is None:
        saved = _load_yaml(path / ".hydra" / "overrides.yaml")
        lines = saved if isinstance(saved, list) else []
    return Run(path=path, summary=summary, overrides=parse_overrides([str(line) for line in lines]))


def find_runs(folders: list[Path]) -> list[Run]:
    """Every run below the given run or sweep folders, each once, in a stable order."""
    paths: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            raise ConfigError(f"{folder} is not a folder; pass run or sweep folders, e.g. outputs/multirun/<date_time>")
        summarised = {p.parent for p in folder.rglob(SUMMARY)}
        found = sorted(summarised | set(_unsummarised_training_runs(folder, summarised)), key=_natural)
        if not found:
            raise ConfigError(f"no runs in {folder} (no {SUMMARY} below it); pass a run or sweep folder")
        paths += [p.resolve() for p in found]
    unique = list(dict.fromkeys(paths))
    return [load_run(p) for p in unique]


def _unsummarised_training_runs(folder: Path, summarised: set[Path]) -> list[Path]:
    """Folders where ``mmrun train`` started a run (Hydra wrote .hydra/) that left no summary."""
    started = (p.parent for p in folder.rglob(".hydra") if p.is_dir() and p.parent not in summarised)
    return [run for run in started
            if (_load_yaml(run / ".hydra" / "hydra.yaml").get("hydra", {}).get("job") or {}).get("name") == "train"]


def _natural(path: Path) -> tuple:
    """Sort job folders 0, 1, 2, ..., 10 rather than 0, 1, 10, 2."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts)


def swept_keys(runs: list[Run]) -> list[str]:
    """Override keys whose value differs between runs, in first-seen order, without ``seed``."""
    keys = list(dict.fromkeys(k for run in runs for k in run.overrides))
    varying = [k for k in keys if len({run.setting(k) for run in runs}) > 1]
    return [k for k in varying if k != SEED_KEY]
