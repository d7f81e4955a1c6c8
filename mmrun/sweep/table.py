"""Group runs into configurations and rank them: the numbers behind every report format.

A configuration is the set of runs that agree on every grouping key (by default every swept
key but ``seed``); its seeds are the repeats. Rows are ranked best first in the metric's
direction, and each row is tested against the best row over the seeds both have.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from mmrun.errors import ConfigError
from mmrun.sweep.runs import Run, swept_keys
from mmrun.sweep.stats import PairedTest, SeedSummary, paired_test, summarise

MODES = ("max", "min")


@dataclass
class Row:
    """One configuration: its key values, seed statistics and the test against the best."""

    settings: dict[str, str]
    runs: list[Run]
    metric: SeedSummary | None
    test_metric: SeedSummary | None
    parameters: int | None
    train_time_s: float | None
    peak_memory_mb: float | None
    rank: int = 0
    versus_best: PairedTest | None = None

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.settings.items()) or "all runs"

    def per_seed(self, metric: str) -> dict[int, float]:
        """Metric value per seed (the last run wins if a seed repeats)."""
        return {r.seed: v for r in self.runs if r.seed is not None and (v := r.value(metric)) is not None}


@dataclass
class Comparison:
    """Ranked configurations plus the failed runs, for one metric."""

    metric: str
    test_metric: str
    mode: str
    group_by: list[str]
    rows: list[Row]
    failed: list[Run] = field(default_factory=list)

    @property
    def best(self) -> Row | None:
        return self.rows[0] if self.rows and self.rows[0].metric else None


def default_metric(runs: list[Run]) -> tuple[str, str]:
    """The metric and direction the runs monitored (the most common, if they differ)."""
    monitored = [(r.summary.get("monitor"), r.summary.get("monitor_mode")) for r in runs if r.completed]
    monitored = [m for m in monitored if m[0]]
    if not monitored:
        raise ConfigError("no completed run says which metric it monitored; pass metric=val/<name>")
    return max(set(monitored), key=monitored.count)


def metric_mode(metric: str, runs: list[Run]) -> str:
    """The direction of ``metric``: the runs' own when they monitored it, else by its name."""
    for run in runs:
        if run.summary.get("monitor") == metric and run.summary.get("monitor_mode") in MODES:
            return run.summary["monitor_mode"]
    return "min" if metric.endswith(("loss", "mae", "mse")) else "max"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _check_metric(metric: str, runs: list[Run]) -> None:
    if not metric.startswith("val/"):
        raise ConfigError(f"metric={metric} must be a validation metric such as val/acc (test/ is shown beside it)")
    if all(r.value(metric) is None for r in runs):
        logged = sorted({k for r in runs for k in r.summary.get("best_val", {})})
        raise ConfigError(f"metric={metric} is not in any run's metrics.json; use one of {logged}")


def _check_keys(keys: list[str], runs: list[Run]) -> None:
    for key in keys:
        if all(run.setting(key) == "-" for run in runs):
            known = sorted(set().union(*(run.known_keys() for run in runs)))
            match = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
            hint = f"; did you mean {match[0]!r}?" if match else ""
            raise ConfigError(f"group_by key {key!r} is set in none of the runs{hint} Keys: {', '.join(known)}")


def build(runs: list[Run], group_by: list[str] | None = None, metric: str | None = None,
          mode: str | None = None) -> Comparison:
    """Group, summarise, rank and test ``runs``; failed runs are set aside."""
    completed = [r for r in runs if r.completed]
    failed = [r for r in runs if not r.completed]
    keys = swept_keys(runs) if group_by is None else group_by
    _check_keys(keys, runs)
    if not completed:
        return Comparison(metric or "val/-", "test/-", mode or "max", list(keys), [], failed)
    if metric is None:
        metric, monitored_mode = default_metric(runs)
        mode = mode or monitored_mode
    _check_metric(metric, completed)
    mode = mode or metric_mode(metric, completed)
    if mode not in MODES:
        raise ConfigError(f"mode={mode} must be max or min")
    test_metric = "test/" + metric.split("/", 1)[1]

    groups: dict[tuple[str, ...], list[Run]] = {}
    for run in completed:
        groups.setdefault(tuple(run.setting(k) for k in keys), []).append(run)
    rows = [_row(dict(zip(keys, values)), members, metric, test_metric) for values, members in groups.items()]

    sign = 1 if mode == "max" else -1
    rows.sort(key=lambda row: (row.metric is None, -sign * row.metric.mean if row.metric else 0))
    for rank, row in enumerate(rows, start=1):
        row.rank = rank
    if rows and rows[0].metric:
        best = rows[0].per_seed(metric)
        for row in rows[1:]:
            row.versus_best = paired_test(row.per_seed(metric), best)
    return Comparison(metric, test_metric, mode, list(keys), rows, failed)


def _row(settings: dict[str, str], runs: list[Run], metric: str, test_metric: str) -> Row:
    memory = [m for r in runs if (m := r.summary.get("peak_memory_mb")) is not None]
    params = [p for r in runs if (p := (r.summary.get("parameters") or {}).get("total")) is not None]
    times = [t for r in runs if (t := r.summary.get("train_time_s")) is not None]
    return Row(
        settings=settings,
        runs=runs,
        metric=summarise([r.value(metric) for r in runs]),
        test_metric=summarise([r.value(test_metric) for r in runs]),
        parameters=max(params) if params else None,
        train_time_s=_mean(times),
        peak_memory_mb=max(_peak(m) for m in memory) if memory else None,
    )


def _peak(memory: float | dict) -> float:
    """metrics.json holds ``{"host": MB, "cuda": MB or null}``: GPU memory when there was a GPU."""
    if isinstance(memory, dict):
        return float(memory.get("cuda") or memory.get("host") or 0.0)
    return float(memory)
