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


@dataclass(frozen=True)
class SeedSummary:
    """Mean, sample standard deviation and 95% confidence interval of the mean over seeds."""

    n: int
    mean: float
    std: float | None
    ci_low: float | None
    ci_high: float | None


def summarise(values: list[float]) -> SeedSummary | None:
    """Summarise per-seed values; None when there are none. The interval uses Student's t."""
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
    return SeedSummary(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class PairedTest:
    """A two-sided paired test of one configuration against the best over shared seeds."""

    name: str  # "t-test" or "wilcoxon"
    pairs: int
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA


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
