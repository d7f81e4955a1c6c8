"""Group runs into configurations and rank them: the numbers behind every report format.

A configuration is the set of runs that agree on every grouping key (by default every swept
key but ``seed``); its seeds are the repeats. Runs that also share the seed (and every other
swept key) repeat one experiment rather than add a seed: only the most recent counts, the
others are set aside and named in the report. Rows are ranked best first in the metric's
direction, and each row is tested against the best row over the seeds both have.

When runs carry a classical baseline (``baseline`` in metrics.json, see ``mmrun.baseline``),
it becomes a reference row, never ranked nor tested, and every configuration says whether its
mean beats the baseline's mean in the metric's direction. When runs ran the analysis, each
configuration also summarises its robustness and modality contribution (``mmrun.sweep.analysis``).
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from dataclasses import dataclass, field

from mmrun.errors import ConfigError
from mmrun.sweep.analysis import MEASURES, Measure, RowAnalysis, summarise_analysis
from mmrun.sweep.classes import SharedClass, mark_shared_classes
from mmrun.sweep.runs import Run, swept_keys
from mmrun.sweep.stats import PairedTest, SeedSummary, metric_range, paired_test, summarise

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
    baseline: float | None = None  # the classical baseline's mean this row is compared with
    beats_baseline: bool | None = None  # None: no baseline (or no value) to compare with
    repeats: list[Run] = field(default_factory=list)  # earlier runs of a seed in ``runs``: not counted
    analysis: RowAnalysis | None = None  # robustness and contribution, when its runs ran the analysis
    class_mark: str = ""  # footnote mark of a fusion function class it shares with other rows (mmrun.sweep.classes)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.settings.items()) or "all runs"

    def per_seed(self, metric: str) -> dict[int, float]:
        """Metric value per seed (runs pooled by a narrow ``group_by`` that share a seed: the last one)."""
        return {r.seed: v for r in self.runs if r.seed is not None and (v := r.value(metric)) is not None}


@dataclass
class Reference:
    """The classical baseline as a reference row: summarised over its distinct fits, not ranked.

    Jobs that share the data and the seed (e.g. two fusions, seed 1) fit the same baseline;
    it counts once, so ``metric.n`` is the number of distinct fits.
    """

    name: str
    metric: SeedSummary | None
    test_metric: SeedSummary | None
    time_s: float | None
    runs: list[Run]

    @property
    def label(self) -> str:
        return f"classical baseline ({self.name})"


@dataclass
class Comparison:
    """Ranked configurations plus the failed runs, for one metric."""

    metric: str
    test_metric: str
    mode: str
    group_by: list[str]
    rows: list[Row]
    failed: list[Run] = field(default_factory=list)
    baseline: Reference | None = None
    shared_classes: list[SharedClass] = field(default_factory=list)  # rows whose fusions are one function class

    @property
    def best(self) -> Row | None:
        return self.rows[0] if self.rows and self.rows[0].metric else None

    @property
    def best_single_modality(self) -> Row | None:
        """The best configuration that trains on one modality (``dataset.modalities=[x]``), if any."""
        single = [row for row in self.rows if row.metric and _modality_count(row) == 1]
        return single[0] if single else None  # rows are in rank order

    @property
    def repeats(self) -> list[Run]:
        """Runs set aside because a more recent run of the same configuration and seed counts instead."""
        return [run for row in self.rows for run in row.repeats]

    @property
    def measures(self) -> list[Measure]:
        """The analysis measures that some configuration has, in ``MEASURES`` order (none: no analysis)."""
        return [m for m in MEASURES if any(row.analysis and m.title in row.analysis.measures for row in self.rows)]

    @property
    def below_baseline(self) -> list[Row]:
        """Configurations whose mean does not beat the classical baseline's."""
        return [row for row in self.rows if row.beats_baseline is False]


def _modality_count(row: Row) -> int | None:
    """How many modalities a configuration's ``dataset.modalities`` names (None: not swept)."""
    value = row.settings.get("dataset.modalities")
    if value is None or value in ("null", "None"):
        return None
    return len([name for name in value.strip("[]").split(",") if name.strip()])


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
    experiment = swept_keys(runs)
    rows = [_row(dict(zip(keys, values)), *_latest_per_seed(members, experiment), metric, test_metric)
            for values, members in groups.items()]

    sign = 1 if mode == "max" else -1
    rows.sort(key=lambda row: (row.metric is None, -sign * row.metric.mean if row.metric else 0))
    for rank, row in enumerate(rows, start=1):
        row.rank = rank
    if rows and rows[0].metric:
        best = rows[0].per_seed(metric)
        for row in rows[1:]:
            row.versus_best = paired_test(row.per_seed(metric), best)
    set_aside = {id(run) for row in rows for run in row.repeats}
    reference = _reference([run for run in completed if id(run) not in set_aside], metric, test_metric)
    if reference is not None:
        for row in rows:
            _compare_with_baseline(row, reference, metric, mode)
    return Comparison(metric, test_metric, mode, list(keys), rows, failed, reference, mark_shared_classes(rows))


def _reference(runs: list[Run], metric: str, test_metric: str) -> Reference | None:
    """The baseline over the distinct fits among ``runs``; None when no run has its metric."""
    fits: dict[str, Run] = {}
    for run in runs:
        if run.baseline_value(metric) is not None:
            block = run.baseline
            key = json.dumps([run.seed, block.get("best"), block.get("val"), block.get("test")], sort_keys=True)
            fits.setdefault(key, run)
    if not fits:
        return None
    unique = list(fits.values())
    names = Counter(str(run.baseline["best"]) for run in unique)
    times = [t for run in unique if isinstance(t := run.baseline.get("time_s"), (int, float))]
    return Reference(
        name=" / ".join(name for name, _ in names.most_common()),
        metric=summarise([run.baseline_value(metric) for run in unique], metric_range(metric)),
        test_metric=summarise([run.baseline_value(test_metric) for run in unique], metric_range(test_metric)),
        time_s=_mean(times),
        runs=[run for run in runs if run.baseline_value(metric) is not None],
    )


def _compare_with_baseline(row: Row, reference: Reference, metric: str, mode: str) -> None:
    """Set the row's baseline (its own runs' baseline, else the reference) and whether it beats it."""
    own = [v for run in row.runs if (v := run.baseline_value(metric)) is not None]
    row.baseline = _mean(own) if own else (reference.metric.mean if reference.metric else None)
    if row.metric is None or row.baseline is None:
        return
    row.beats_baseline = row.metric.mean > row.baseline if mode == "max" else row.metric.mean < row.baseline


def _latest_per_seed(runs: list[Run], experiment: list[str]) -> tuple[list[Run], list[Run]]:
    """Split runs into those that count, one per seed, and the repeats set aside (both in input order).

    Runs that agree on the seed and on every swept key (``experiment``) are one experiment run
    twice: counting both would report two seeds with a spread of zero. The most recent, by when
    it wrote metrics.json (then by folder), counts: a run is repeated after a fix or an upgrade,
    and a file's time follows the run wherever it is compared, whereas folder names need not
    say when (job folders are named after their overrides). Runs without a seed all count.
    """
    latest: dict[object, Run] = {}
    for run in sorted(runs, key=lambda r: (r.finished_at, str(r.path))):
        identity = run.path if run.seed is None else (run.seed, *(run.setting(k) for k in experiment))
        latest[identity] = run
    counted = {id(run) for run in latest.values()}
    return [r for r in runs if id(r) in counted], [r for r in runs if id(r) not in counted]


def _row(settings: dict[str, str], runs: list[Run], repeats: list[Run], metric: str, test_metric: str) -> Row:
    """Summarise one configuration's counted runs; ``repeats`` are only recorded."""
    memory = [m for r in runs if (m := r.summary.get("peak_memory_mb")) is not None]
    params = [p for r in runs if (p := (r.summary.get("parameters") or {}).get("total")) is not None]
    times = [t for r in runs if (t := r.summary.get("train_time_s")) is not None]
    return Row(
        settings=settings,
        runs=runs,
        metric=summarise([r.value(metric) for r in runs], metric_range(metric)),
        test_metric=summarise([r.value(test_metric) for r in runs], metric_range(test_metric)),
        parameters=max(params) if params else None,
        train_time_s=_mean(times),
        peak_memory_mb=max(_peak(m) for m in memory) if memory else None,
        repeats=repeats,
        analysis=summarise_analysis(runs),
    )


def _peak(memory: float | dict) -> float:
    """metrics.json holds ``{"host": MB, "cuda": MB or null}``: GPU memory when there was a GPU."""
    if isinstance(memory, dict):
        return float(memory.get("cuda") or memory.get("host") or 0.0)
    return float(memory)
