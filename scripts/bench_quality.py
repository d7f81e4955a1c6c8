"""Default mmrun against the classical baseline it reports, on generated tables of real files.

For each table, trains ``mmrun train dataset=manifest dataset.path=<table>`` with nothing
else set (defaults only) for every seed, through the real CLI, and reads each run's
``metrics.json``: the deep model's test metric and the ``baseline`` block's (the classical
baseline selected on the validation split, scored on the same test rows). Prints, per
table, mean +- std over seeds of both, their difference and the mean wall time of a run.

Tables (generated into ``--work``, deterministic):

* ``demo``: ``scripts/make_demo_manifest.py`` (3000 rows: RGB PNG, 16 kHz WAV, caption,
  two numbers, four classes that each modality shows only in part);
* ``realistic``: ``scripts/make_realistic_manifest.py`` (1800 rows: 32x32 grey digit
  images, speech-like 8 kHz clips of 0.3-1.4 s, short noisy notes, one noisy number with
  empty cells, ten classes, a split column);
* ``real-scans``: the same table with real handwriting (``--scans sklearn``: scikit-learn's
  UCI optical digit scans, upsampled to 32x32) in place of the rendered digits.

    python scripts/bench_quality.py                        # every table, seeds 1 2 3
    python scripts/bench_quality.py --tables realistic --seeds 1
    python scripts/bench_quality.py -- trainer.max_epochs=5   # extra overrides for every run
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATORS = {
    "demo": ["make_demo_manifest.py", "--size", "3000"],
    "realistic": ["make_realistic_manifest.py", "--size", "1800"],
    "real-scans": ["make_realistic_manifest.py", "--size", "1800", "--scans", "sklearn"],
}


def make_table(name: str, work: Path) -> Path:
    folder = work / name
    manifest = folder / "manifest.csv"
    if not manifest.exists():
        script, *arguments = GENERATORS[name]
        subprocess.run([sys.executable, str(ROOT / "scripts" / script), str(folder), *arguments], check=True,
                       stdout=subprocess.DEVNULL)
    return manifest


def train(manifest: Path, seed: int, run_dir: Path, extra: list[str]) -> tuple[dict, float]:
    """One default run through the CLI; its metrics.json and wall time."""
    mmrun = Path(sys.executable).with_name("mmrun")
    command = [str(mmrun), "train", "dataset=manifest", f"dataset.path={manifest}", f"seed={seed}",
               f"hydra.run.dir={run_dir}", "progress=plain", *extra]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((run_dir / "metrics.json").read_text()), time.perf_counter() - started


def summary(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} +- {spread:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="+", default=list(GENERATORS), choices=list(GENERATORS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--work", type=Path, default=Path("bench_quality"), help="folder for tables and runs")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run")
    args = parser.parse_args()

    lines = ["| table | metric | default mmrun (test) | classical baseline (test) | difference | run time (s) |",
             "|---|---|---|---|---|---|"]
    for name in args.tables:
        manifest = make_table(name, args.work.resolve())
        deep, classical, times, metric, best = [], [], [], None, set()
        for seed in args.seeds:
            metrics, seconds = train(manifest, seed, args.work.resolve() / "runs" / f"{name}-{seed}", args.overrides)
            metric = "test/" + metrics["monitor"].split("/", 1)[1]
            deep.append(metrics["test"][metric])
            classical.append(metrics["baseline"]["test"][metric])
            best.add(metrics["baseline"]["best"])
            times.append(seconds)
            print(f"{name} seed {seed}: deep {deep[-1]:.4f}, baseline {classical[-1]:.4f} "
                  f"({metrics['baseline']['best']}), {seconds:.0f} s, {metrics['epochs']} epochs", flush=True)
        difference = [d - c for d, c in zip(deep, classical)]
        lines.append(f"| {name} | {metric} | {summary(deep)} | {summary(classical)} ({', '.join(sorted(best))}) | "
                     f"{summary(difference)} | {statistics.fmean(times):.0f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
