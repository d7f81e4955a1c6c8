"""Seed statistics of one configuration and the paired test against the best one.

scipy (a core dependency) supplies the Student t quantiles and the paired tests: writing
them by hand would mean re-deriving the t and Wilcoxon distributions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# With this many paired seeds or more the distribution-free Wilcoxon test replaces the t-test.
WILCOXON_MIN_PAIRS = 6
ALPHA = 0.05

# The range of a metric, by the first word of its name (``val/f1_macro`` -> ``f1``,
# ``val/recall@10`` -> ``recall``): a confidence interval never reaches past it.
Bounds = tuple[float | None, float | None]  # (low, high); None: no bound on that side
UNBOUNDED: Bounds = (None, None)
UNIT_INTERVAL: Bounds = (0.0, 1.0)
METRIC_RANGES: dict[str, Bounds] = {
    **dict.fromkeys(("acc", "accuracy", "f1", "auroc", "map", "precision", "recall", "ndcg", "mrr"), UNIT_INTERVAL),
    **dict.fromkeys(("loss", "mse", "rmse", "mae"), (0.0, None)),
    "r2": (None, 1.0),
}


def metric_range(metric: str) -> Bounds:
    """The (low, high) values ``metric`` can take, None where it has no bound (unknown metrics: both)."""
    word = metric.split("/", 1)[-1].replace("@", "_").split("_", 1)[0]
    return METRIC_RANGES.get(word, UNBOUNDED)


def _clip(value: float, bounds: Bounds) -> float:
    low, high = bounds
    value = value if low is None else max(low, value)
    return value if high is None else min(high, value)


@dataclass(frozen=True)
class SeedSummary:
    """Mean, sample standard deviation and 95% confidence interval of the mean over seeds."""

    n: int
    mean: float
    std: float | None
    ci_low: float | None
    ci_high: float | None


def summarise(values: list[float], bounds: Bounds = UNBOUNDED) -> SeedSummary | None:
    """Summarise per-seed values; None when there are none.

    The interval uses Student's t, clipped to ``bounds`` (see ``metric_range``): an accuracy
    of 0.95 ± 0.2 over two seeds has an interval that the metric itself cannot reach.
    """
    from scipy import stats

    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return SeedSummary(n, mean, None, None, None)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return SeedSummary(n, mean, std, _clip(mean - half, bounds), _clip(mean + half, bounds))


@dataclass(frozen=True)
class PairedTest:
    """A two-sided paired test of one configuration against the best over shared seeds."""

    name: str  # "t-test" or "wilcoxon"
    pairs: int
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA

    @property
    def mark(self) -> str:
        """``*``: differs from the best (p < ALPHA); ``ns``: not significantly."""
        return "*" if self.significant else "ns"


def paired_test(values: dict[int, float], best: dict[int, float]) -> PairedTest | None:
    """Compare per-seed values with the best configuration's on the seeds both have.

    A paired t-test below ``WILCOXON_MIN_PAIRS`` pairs, the Wilcoxon signed-rank test from
    there on; None with fewer than two pairs. Identical pairs give p = 1; a constant non-zero
    difference (no spread, so no test statistic) gives p = 0.
    """
    from scipy import stats

    seeds = sorted(set(values) & set(best))
    if len(seeds) < 2:
        return None
    a = [values[s] for s in seeds]
    b = [best[s] for s in seeds]
    diffs = [x - y for x, y in zip(a, b)]
    name = "wilcoxon" if len(seeds) >= WILCOXON_MIN_PAIRS else "t-test"
    if all(d == diffs[0] for d in diffs):
        return PairedTest(name, len(seeds), 1.0 if diffs[0] == 0 else 0.0)
    if name == "wilcoxon":
        p_value = stats.wilcoxon(a, b).pvalue
    else:
        p_value = stats.ttest_rel(a, b).pvalue
    return PairedTest(name, len(seeds), float(p_value))
