"""The classical baseline in the sweep report: a reference row, never ranked, and a beats-baseline flag."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from rich.console import Console

from mmrun.compare import main as compare_main
from mmrun.sweep.report import write_report
from mmrun.sweep.runs import find_runs
from mmrun.sweep.table import build

# Per-seed val/acc of three fusions (as in test_sweep_report) and the baseline of each seed's data.
VALUES = {
    "attention": {1: 0.90, 2: 0.91, 3: 0.92},
    "gated": {1: 0.93, 2: 0.86, 3: 0.90},
    "concat": {1: 0.70, 2: 0.71, 3: 0.725},
}
BASELINE = {1: 0.80, 2: 0.82, 3: 0.78}  # mean 0.80, std 0.02: concat (0.7117) does not beat it
OLD_CSV_FIELDS = ["rank", "fusion", "val/acc mean", "val/acc std", "val/acc ci95 low", "val/acc ci95 high", "seeds",
                  "test/acc mean", "test/acc std", "parameters", "train_time_s", "peak_memory_mb", "paired test",
                  "pairs", "p_value", "significant", "run folders"]


def baseline_block(val: float, monitor: str = "val/acc", mode: str = "max", best: str = "logistic_regression") -> dict:
    """A ``baseline`` block shaped like ``mmrun.baseline.run_baseline``'s result."""
    name = monitor.split("/", 1)[1]
    metrics = {"val": {monitor: val, "val/f1_macro": val - 0.02}, "test": {f"test/{name}": val - 0.01}}
    return {"best": best, "monitor": monitor, "monitor_mode": mode, **metrics,
            "candidates": {best: {"params": {"C": 1.0}, **metrics, "fit_time_s": 0.5}},
            "train_rows": 320, "train_rows_total": 320, "subsampled": False, "features": {"tabular": 16},
            "time_s": 1.5}


def job(folder: Path, overrides: list[str], val: float, seed: int, baseline: dict | None = None,
        monitor: str = "val/acc", mode: str = "max") -> Path:
    """A completed run folder: metrics.json (with an optional baseline block) and its overrides."""
    folder.mkdir(parents=True)
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    name = monitor.split("/", 1)[1]
    summary = {"status": "completed", "monitor": monitor, "monitor_mode": mode, "seed": seed, "overrides": overrides,
               "best_val": {monitor: val, "val/loss": 1 - val}, "test": {f"test/{name}": val - 0.01},
               "parameters": {"total": 1000}, "train_time_s": 2.0, "peak_memory_mb": {"host": 500.0, "cuda": None}}
    if baseline is not None:
        summary["baseline"] = baseline
    (folder / "metrics.json").write_text(json.dumps(summary))
    return folder


def make_sweep(root: Path, baseline: bool = True) -> Path:
    number = 0
    for fusion, per_seed in VALUES.items():
        for seed, value in per_seed.items():
            block = baseline_block(BASELINE[seed]) if baseline else None
            job(root / str(number), [f"fusion={fusion}", f"seed={seed}"], value, seed, block)
            number += 1
    return root


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open() as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


def test_reference_is_summarised_over_distinct_fits_and_not_ranked(tmp_path):
    comparison = build(find_runs([make_sweep(tmp_path / "sweep")]))
    reference = comparison.baseline
    assert reference.label == "classical baseline (logistic_regression)"
    assert reference.metric.n == 3  # nine jobs, but three fits: one per seed, shared by the fusions
    assert reference.metric.mean == pytest.approx(0.80) and reference.metric.std == pytest.approx(0.02)
    assert reference.test_metric.mean == pytest.approx(0.79)
    assert len(reference.runs) == 9 and reference.time_s == pytest.approx(1.5)
    assert [row.settings["fusion"] for row in comparison.rows] == ["attention", "gated", "concat"]
    assert [row.rank for row in comparison.rows] == [1, 2, 3]
    assert [row.beats_baseline for row in comparison.rows] == [True, True, False]
    assert [row.settings["fusion"] for row in comparison.below_baseline] == ["concat"]


def test_report_shows_the_reference_row_flags_and_warning(tmp_path):
    sweep = make_sweep(tmp_path / "sweep")
    output = tmp_path / "report"
    console = Console(record=True, width=300)
    write_report([sweep], output, console=console)

    fields, rows = read_csv(output / "comparison.csv")
    assert fields == OLD_CSV_FIELDS + ["beats baseline", "baseline val/acc mean", "reference"]
    assert [r["rank"] for r in rows] == ["1", "2", "3", ""]  # the reference has no rank
    assert [r["beats baseline"] for r in rows] == ["yes", "yes", "no", ""]
    assert float(rows[2]["baseline val/acc mean"]) == pytest.approx(0.80)
    reference = rows[3]
    assert reference["reference"] == "classical baseline (logistic_regression)"
    assert float(reference["val/acc mean"]) == pytest.approx(0.80) and reference["seeds"] == "3"
    assert float(reference["test/acc mean"]) == pytest.approx(0.79)
    assert reference["p_value"] == "" and reference["significant"] == "" and reference["fusion"] == ""

    markdown = (output / "comparison.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert table[0].endswith("| vs best (paired) | beats baseline |")
    assert table[2].startswith("| 1 | attention |") and table[2].endswith("| best | yes |")
    assert table[4].startswith("| 3 | concat |") and table[4].endswith("| no |")
    assert table[5].startswith("|  | classical baseline (logistic_regression) | 0.8000 ± 0.0200 |  | 3 | "
                               "0.7900 ± 0.0200")
    assert "reference (not ranked)" in table[5]
    assert len(table) == 6  # header, rule, three configurations, the reference
    assert "**Warning:** 1 of 3 configurations do not beat the classical baseline (logistic_regression)" in markdown
    warning = next(line for line in markdown.splitlines() if line.startswith("**Warning:**"))
    assert "fusion=concat" in warning and "fusion=gated" not in warning

    text = console.export_text()
    assert "classical baseline (logistic_regression)" in text and "reference (not ranked)" in text
    assert "warning:" in text and "do not beat" in text and "fusion=concat" in text
    assert (output / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_no_warning_when_every_configuration_beats_it(tmp_path):
    root = tmp_path / "sweep"
    for number, (fusion, value) in enumerate({"attention": 0.9, "gated": 0.85}.items()):
        job(root / str(number), [f"fusion={fusion}"], value, 1, baseline_block(0.6))
    console = Console(record=True, width=300)
    write_report([root], tmp_path / "report", console=console)
    assert "Warning" not in (tmp_path / "report" / "comparison.md").read_text()
    assert "warning:" not in console.export_text() and "do not beat" not in console.export_text()


def test_without_baseline_blocks_the_report_is_unchanged(tmp_path):
    sweep = make_sweep(tmp_path / "sweep", baseline=False)
    output = tmp_path / "report"
    console = Console(record=True, width=300)
    write_report([sweep], output, console=console)
    before = {name: (output / name).read_text() for name in ("comparison.csv", "comparison.md")}
    assert read_csv(output / "comparison.csv")[0] == OLD_CSV_FIELDS
    table = [line for line in console.export_text().splitlines() if "│" in line or "┃" in line]
    assert "baseline" not in before["comparison.md"] and not any("baseline" in line for line in table)
    assert build(find_runs([sweep])).baseline is None

    # A failed baseline (``{"error": ...}``, e.g. baseline=none or every candidate failed) is no baseline either.
    for metrics in sweep.rglob("metrics.json"):
        summary = json.loads(metrics.read_text())
        summary["baseline"] = {"error": "every candidate failed (...)", "time_s": 0.1}
        metrics.write_text(json.dumps(summary))
    write_report([sweep], output, console=Console(record=True, width=300))
    assert {name: (output / name).read_text() for name in before} == before


def test_a_metric_the_baseline_does_not_have_gives_no_reference(tmp_path):
    comparison = build(find_runs([make_sweep(tmp_path / "sweep")]), metric="val/loss")
    assert comparison.baseline is None and all(row.beats_baseline is None for row in comparison.rows)


def test_lower_is_better_metrics_beat_the_baseline_from_below(tmp_path):
    root = tmp_path / "sweep"
    for number, (fusion, mse) in enumerate({"attention": 0.10, "concat": 0.30}.items()):
        for seed in (1, 2):
            job(root / f"{number}{seed}", [f"fusion={fusion}", f"seed={seed}"], mse, seed,
                baseline_block(0.20, monitor="val/mse", mode="min", best="ridge"), monitor="val/mse", mode="min")
    comparison = build(find_runs([root]))
    assert comparison.mode == "min" and comparison.baseline.label == "classical baseline (ridge)"
    assert [(row.settings["fusion"], row.beats_baseline) for row in comparison.rows] == [("attention", True),
                                                                                           ("concat", False)]


def test_each_configuration_is_compared_with_the_baseline_of_its_own_data(tmp_path):
    # Sweeping the modalities changes the data, so the baseline differs between configurations.
    root = tmp_path / "sweep"
    setups = {"[image]": (0.60, 0.50, "logistic_regression"), "[image,text]": (0.70, 0.80, "hist_gradient_boosting")}
    number = 0
    for modalities, (deep, classical, best) in setups.items():
        for seed in (1, 2):
            job(root / str(number), [f"dataset.modalities={modalities}", f"seed={seed}"], deep, seed,
                baseline_block(classical, best=best))
            number += 1
    comparison = build(find_runs([root]))
    rows = {row.settings["dataset.modalities"]: row for row in comparison.rows}
    assert rows["[image,text]"].rank == 1 and rows["[image,text]"].beats_baseline is False  # 0.70 < its 0.80
    assert rows["[image]"].beats_baseline is True  # 0.60 > its 0.50, though below the other data's baseline
    assert rows["[image]"].baseline == pytest.approx(0.50)
    assert comparison.baseline.metric.n == 4  # two data sets x two seeds
    assert "logistic_regression" in comparison.baseline.name and "hist_gradient_boosting" in comparison.baseline.name


def test_older_runs_without_a_baseline_are_compared_with_the_reference(tmp_path):
    root = tmp_path / "sweep"
    job(root / "0", ["fusion=attention"], 0.9, 1, baseline_block(0.8))
    job(root / "1", ["fusion=concat"], 0.7, 1)  # an older run: no baseline block
    comparison = build(find_runs([root]))
    assert comparison.baseline.metric.n == 1 and len(comparison.baseline.runs) == 1
    concat = next(row for row in comparison.rows if row.settings["fusion"] == "concat")
    assert concat.baseline == pytest.approx(0.8) and concat.beats_baseline is False


def test_report_without_group_keys_puts_the_label_in_the_first_column(tmp_path):
    root = tmp_path / "sweep"
    for seed in (1, 2):
        job(root / str(seed), [f"seed={seed}"], 0.9, seed, baseline_block(BASELINE[seed]))
    write_report([root], tmp_path / "report", console=Console(record=True, width=300))
    table = [line for line in (tmp_path / "report" / "comparison.md").read_text().splitlines() if line.startswith("|")]
    assert table[3].startswith("| classical baseline (logistic_regression) | 0.8100 ± 0.0141 |")
    assert table[3].count("|") == table[0].count("|")  # as many cells as titles


def test_mmrun_compare_builds_the_same_report(tmp_path, capsys):
    sweep = make_sweep(tmp_path / "sweep")
    assert compare_main([str(sweep), f"output={tmp_path / 'compared'}"]) == 0
    write_report([sweep], tmp_path / "callback", console=Console(record=True, width=300))
    compared = (tmp_path / "compared" / "comparison.md").read_text()
    assert "classical baseline (logistic_regression)" in compared
    assert compared == (tmp_path / "callback" / "comparison.md").read_text()
    assert "do not beat" in capsys.readouterr().out


def test_the_best_single_modality_is_named_with_the_configurations_above_it(tmp_path):
    values = {"[image,text]": 0.92, "[image]": 0.80, "[text]": 0.70, "null": 0.78}
    number = 0
    for modalities, value in values.items():
        for seed in (1, 2):
            job(tmp_path / "sweep" / str(number), [f"dataset.modalities={modalities}", f"seed={seed}"],
                value + 0.01 * seed, seed)
            number += 1
    comparison = build(find_runs([tmp_path / "sweep"]))
    assert comparison.best_single_modality.settings == {"dataset.modalities": "[image]"}
    write_report([tmp_path / "sweep"], tmp_path / "sweep", console=Console(record=True, width=200))
    text = (tmp_path / "sweep" / "comparison.md").read_text()
    assert "Best single modality: dataset.modalities=[image], val/acc 0.8150 ± 0.0071; 1 configuration(s) rank" \
           " above it: dataset.modalities=[image,text]." in text
    fusions = build(find_runs([make_sweep(tmp_path / "fusions", baseline=False)]))
    assert fusions.best_single_modality is None  # no dataset.modalities in the sweep: no line
