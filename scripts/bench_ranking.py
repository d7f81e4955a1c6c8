"""Full-split ranking metrics: mmrun's chunked computation against the plain full-matrix way.

For each size N (N queries x N targets), with random L2-normalised embeddings (``--dim``, 64) and
query/target groups of 5 (each query's positives are the 5 targets of its group), fixed seed:

* **reference** (N <= 20,000, unless ``--skip-reference``): the whole N x N similarity matrix,
  then torchmetrics' retrieval metrics (RetrievalHitRate, RetrievalNormalizedDCG, RetrievalMRR,
  RetrievalMAP) with ``indexes`` over the flattened matrix, and the mean / median rank of each
  query's best positive from the same matrix. The scores are first replaced, row by row, by
  N .. 1 in the order mmrun ranks them (score descending, ties by ascending target index;
  torchmetrics leaves the order of tied scores unspecified), which keeps them > 0 as well
  (torchmetrics 1.9 MAP / MRR count a positive scored <= 0 as not relevant);
* **chunked**: ``mmrun.metrics.ranking.ranking_metrics`` with its default memory bound.

It prints each metric from both and asserts they agree to 1e-6, then the wall time and the peak
memory of each (every measurement runs in a fresh process, so one method's peak cannot hide the
other's: the peak resident set size from ``getrusage``, and that peak minus the process's
resident size after imports and input creation) and their ratios. For sizes without reference it
prints whether the goal is met: under 60 s and a process peak under 2 GB. As other processes on
the machine slow the timings, it also prints the share of the CPUs they used meanwhile.

    python scripts/bench_ranking.py                        # N = 10,000 (with reference), 100,000
    python scripts/bench_ranking.py --sizes 20000 --dim 128
    python scripts/bench_ranking.py --sizes 100000 --skip-reference --threads 1
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path

GROUP = 5  # targets per group: positives per query
KS = (1, 5, 10)
NDCG_K = 10
REFERENCE_MAX = 20_000  # N^2 entries, several copies: about 5 GB of memory at 10,000
GOAL_SECONDS, GOAL_MB = 60.0, 2048.0
TOLERANCE = 1e-6


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def inputs(n: int, dim: int, seed: int):
    import torch

    generator = torch.Generator().manual_seed(seed)
    queries = torch.nn.functional.normalize(torch.randn(n, dim, generator=generator), dim=1)
    targets = torch.nn.functional.normalize(torch.randn(n, dim, generator=generator), dim=1)
    groups = torch.arange(n) // GROUP
    return queries, targets, groups


def threads(count: int | None) -> None:
    import torch

    if count:
        torch.set_num_threads(count)


def run_chunked(n: int, dim: int, seed: int, thread_count: int | None) -> dict:
    from mmrun.metrics.ranking import positives_from_groups, ranking_metrics

    threads(thread_count)
    queries, targets, groups = inputs(n, dim, seed)
    baseline = peak_rss_mb()
    start = time.perf_counter()
    positives = positives_from_groups(groups, groups)
    result = ranking_metrics(queries, targets, positives, hit_ks=KS, ndcg_ks=(NDCG_K,))
    seconds = time.perf_counter() - start
    return {"metrics": result.metrics, "seconds": seconds, "peak_mb": peak_rss_mb(), "baseline_mb": baseline}


def run_reference(n: int, dim: int, seed: int, thread_count: int | None) -> dict:
    import torch
    from torchmetrics.retrieval import (
        RetrievalHitRate,
        RetrievalMAP,
        RetrievalMRR,
        RetrievalNormalizedDCG,
    )

    threads(thread_count)
    queries, targets, groups = inputs(n, dim, seed)
    baseline = peak_rss_mb()
    start = time.perf_counter()
    scores = queries @ targets.T  # the full N x N matrix
    # N .. 1 in the documented order: score descending, ties by ascending index (stable sort)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    del scores
    preds = torch.empty(n, n).scatter_(1, order, torch.arange(n, 0, -1, dtype=torch.float32).expand(n, n))
    del order
    relevant = groups[:, None] == groups[None, :]
    target = relevant.flatten().long()  # long already: torchmetrics keeps it as is, no copy per metric
    indexes = torch.arange(n).repeat_interleave(n)
    flat = preds.flatten()
    metrics = {}
    for name, metric in (
        *((f"hit@{k}", lambda k=k: RetrievalHitRate(top_k=k)) for k in KS),
        (f"ndcg@{NDCG_K}", lambda: RetrievalNormalizedDCG(top_k=NDCG_K)),
        ("mrr", RetrievalMRR),
        ("map", RetrievalMAP),
    ):
        instance = metric()
        instance.update(flat, target, indexes=indexes)
        metrics[name] = instance.compute().item()
        del instance
    best = n + 1 - torch.where(relevant, preds, 0).amax(1).double()  # rank of the best positive
    metrics["mean_rank"] = best.mean().item()
    metrics["median_rank"] = best.quantile(0.5).item()
    seconds = time.perf_counter() - start
    return {"metrics": metrics, "seconds": seconds, "peak_mb": peak_rss_mb(), "baseline_mb": baseline}


def cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat (Linux)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def measure(function, *args) -> dict:
    """Run ``function(*args)`` in a fresh process; add the CPU share other processes used meanwhile."""
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = cpu_jiffies()
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        result = pool.submit(function, *args).result()
    after = cpu_jiffies()
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    if before and after:
        tick = os.sysconf("SC_CLK_TCK")
        own = (after_children.ru_utime + after_children.ru_stime) - (before_children.ru_utime + before_children.ru_stime)
        busy, total = after[0] - before[0], after[1] - before[1]
        result["others_share"] = max(0.0, (busy - own * tick) / total) if total else None
    return result


def others(result: dict) -> str:
    share = result.get("others_share")
    return "" if share is None else f"  [other processes used {share:.0%} of the CPUs meanwhile]"


def memory(result: dict) -> str:
    return f"peak {result['peak_mb']:7,.0f} MB ({result['peak_mb'] - result['baseline_mb']:6,.0f} MB above {result['baseline_mb']:,.0f} MB after imports and inputs)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="N (queries = targets)")
    parser.add_argument("--dim", type=int, default=64, help="embedding dimension")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-reference", action="store_true", help="chunked only, at every size")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads in both methods (default: torch's)")
    args = parser.parse_args()

    import torch

    threads(args.threads)

    print(
        f"full-split ranking: random L2-normalised embeddings, dim {args.dim}, groups of {GROUP} "
        f"(positives per query), seed {args.seed}; torch {torch.__version__}, threads: {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPUs"
    )
    failures = []
    for n in args.sizes:
        print(f"\nN = {n:,} queries x {n:,} targets")
        chunked = measure(run_chunked, n, args.dim, args.seed, args.threads)
        if not args.skip_reference and n <= REFERENCE_MAX:
            reference = measure(run_reference, n, args.dim, args.seed, args.threads)
            print(f"  {'metric':<12} {'reference':>14} {'chunked':>14} {'|difference|':>13}")
            worst = 0.0
            for name, value in reference["metrics"].items():
                difference = abs(value - chunked["metrics"][name])
                worst = max(worst, difference)
                print(f"  {name:<12} {value:14.8f} {chunked['metrics'][name]:14.8f} {difference:13.1e}")
            same = worst <= TOLERANCE
            print(f"  parity: every metric equal to {TOLERANCE:g}: {'yes' if same else 'NO'} (largest difference {worst:.1e})")
            if not same:
                failures.append(f"N={n}: chunked metrics differ from the reference by {worst:.1e}")
            print(f"  reference: {reference['seconds']:7.2f} s, {memory(reference)}{others(reference)}")
            print(f"  chunked:   {chunked['seconds']:7.2f} s, {memory(chunked)}{others(chunked)}")
            print(
                f"  ratio reference / chunked: time {reference['seconds'] / chunked['seconds']:.1f}x, "
                f"peak {reference['peak_mb'] / chunked['peak_mb']:.1f}x, "
                f"above baseline {(reference['peak_mb'] - reference['baseline_mb']) / max(chunked['peak_mb'] - chunked['baseline_mb'], 1):.1f}x"
            )
        else:
            print("  " + "  ".join(f"{name} {value:.6g}" for name, value in chunked["metrics"].items()))
            print(f"  chunked: {chunked['seconds']:7.2f} s, {memory(chunked)}{others(chunked)}")
            met = chunked["seconds"] < GOAL_SECONDS and chunked["peak_mb"] < GOAL_MB
            print(f"  goal (< {GOAL_SECONDS:.0f} s, process peak < {GOAL_MB / 1024:.0f} GB): {'met' if met else 'NOT met'}")
    if failures:
        raise SystemExit("; ".join(failures))


if __name__ == "__main__":
    main()
