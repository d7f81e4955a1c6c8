"""Train every registered fusion on the built-in dataset for several seeds and tabulate.

Runs two ``mmrun train -m`` sweeps with default settings: every fusion x seeds, and the
single-modality baselines (concat on one modality) x seeds. Writes a Markdown table of test
accuracy (mean +- std over seeds), parameters, train time and the fusion's function class
(``mmrun list fusion``: fusions of one class compute the same functions when every modality
is present, so their gaps are noise), best first, followed by the best single modality, so a
reader sees whether each fusion beats it.

    python scripts/fusion_table.py                      # 27 fusions x seeds 1,2,3 (~50 min, 2 cores)
    python scripts/fusion_table.py --fusions concat,attention --seeds 1 2
    python scripts/fusion_table.py --update-readme      # replace the table in README.md

The README's fusion table is produced by this script, not typed by hand.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MODALITIES = ("image", "text", "audio", "tabular")
START, END = "<!-- fusion-table:start -->", "<!-- fusion-table:end -->"


def registered_fusions() -> list[str]:
    from mmrun.fusion import FUSIONS

    return sorted(FUSIONS)


def sweep(overrides: list[str], sweep_dir: Path) -> None:
    """Run one multirun sweep through the real CLI."""
    mmrun = Path(sys.executable).with_name("mmrun")
    command = [str(mmrun), "train", "-m", *overrides, f"hydra.sweep.dir={sweep_dir}", "progress=plain"]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def collect(sweep_dir: Path, key: str) -> dict[str, list[dict]]:
    """Completed jobs' metrics.json grouped by the value of ``key`` in their overrides."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for metrics_file in sorted(sweep_dir.glob("*/metrics.json")):
        metrics = json.loads(metrics_file.read_text())
        if metrics.get("status") != "completed":
            continue
        overrides = yaml.safe_load((metrics_file.parent / ".hydra" / "overrides.yaml").read_text())
        value = next(o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == key)
        groups[value].append(metrics)
    return groups


def summarise(runs: list[dict]) -> tuple[float, float, int, float, int]:
    accs = [r["test"]["test/acc"] for r in runs]
    std = statistics.stdev(accs) if len(accs) > 1 else 0.0
    seconds = statistics.mean(r["train_time_s"] for r in runs)
    return statistics.mean(accs), std, runs[0]["parameters"]["total"], seconds, len(runs)


def table(fusions: dict[str, list[dict]], baselines: dict[str, list[dict]]) -> str:
    from mmrun.config_check import conf_dir
    from mmrun.listing import function_classes

    rows = sorted(((name, *summarise(runs)) for name, runs in fusions.items()), key=lambda r: -r[1])
    best_single = max(((name, *summarise(runs)) for name, runs in baselines.items()), key=lambda r: r[1])
    classes = function_classes([conf_dir()], list(fusions))
    lines = [
        "| fusion | test accuracy (mean ± std) | seeds | parameters | train time (s) | beats best single modality "
        "| function class |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, mean, std, params, seconds, n in rows:
        beats = "yes" if mean - std > best_single[1] + best_single[2] else "no"
        lines.append(f"| {name} | {mean:.3f} ± {std:.3f} | {n} | {params:,} | {seconds:.1f} | {beats} "
                     f"| {classes.get(name, '')} |")
    lines.append("")
    lines.append("Function class: what the fusion computes when every modality is present (`mmrun list fusion`); "
                 "fusions of one class are the same functions, differently parametrised, so their gaps are noise.")
    lines.append("")
    lines.append("| single modality (concat) | test accuracy (mean ± std) | seeds |")
    lines.append("|---|---|---|")
    for name, mean, std, _, _, n in sorted(((k, *summarise(v)) for k, v in baselines.items()), key=lambda r: -r[1]):
        lines.append(f"| {name.strip('[]')} | {mean:.3f} ± {std:.3f} | {n} |")
    return "\n".join(lines)


def update_readme(markdown: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} ... {END} block to replace")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{markdown}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fusions", default="all", help="comma-separated names, or all (default)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--output", type=Path, default=ROOT / "outputs" / "fusion_table")
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run, e.g. trainer.max_epochs=3")
    args = parser.parse_args()

    fusions = registered_fusions() if args.fusions == "all" else args.fusions.split(",")
    seeds = ",".join(map(str, args.seeds))
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    fusion_dir = args.output / stamp / "fusions"
    baseline_dir = args.output / stamp / "single_modality"
    sweep([f"fusion={','.join(fusions)}", f"seed={seeds}", *args.overrides], fusion_dir)
    singles = ",".join(f"[{m}]" for m in MODALITIES)
    sweep([f"dataset.modalities={singles}", f"seed={seeds}", *args.overrides], baseline_dir)

    markdown = table(collect(fusion_dir, "fusion"), collect(baseline_dir, "dataset.modalities"))
    settings = " ".join(args.overrides) or "default settings"
    markdown = f"Built-in dataset, {settings}, seeds {seeds}; produced by `python scripts/fusion_table.py`.\n\n{markdown}"
    (args.output / stamp / "fusion_table.md").write_text(markdown + "\n")
    print(markdown)
    if args.update_readme:
        update_readme(markdown)


if __name__ == "__main__":
    main()
