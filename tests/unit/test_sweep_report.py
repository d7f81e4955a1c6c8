"""Sweep comparison on synthetic run folders: grouping, ranking, statistics, report files."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from mmrun.errors import ConfigError
from mmrun.sweep.runs import find_runs, swept_keys
from mmrun.sweep.stats import paired_test, summarise
from mmrun.sweep.table import build
from mmrun.sweep.report import write_report

# Per-seed val/acc of three fusions; attention is clearly best, concat is far behind, and
# gated is close to attention and noisy (so its gap is not significant).
VALUES = {
    "attention": {1: 0.90, 2: 0.91, 3: 0.92},
    "gated": {1: 0.93, 2: 0.86, 3: 0.90},
    "concat": {1: 0.70, 2: 0.71, 3: 0.725},
}


def fake_run(folder: Path, overrides: list[str], val: float | None, seed: int, status: str = "completed",
             monitor: str = "val/acc", mode: str = "max", curve: list[float] = ()) -> Path:
    """A run folder as mmrun train leaves it: metrics.json, metrics.csv, .hydra/overrides.yaml."""
    folder.mkdir(parents=True)
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if status == "failed":
        summary = {"status": "failed", "error": "fusion=tensor needs at least 2 modalities", "overrides": overrides}
    else:
        name = monitor.split("/", 1)[1]
        summary = {
            "status": "completed", "monitor": monitor, "monitor_mode": mode, "seed": seed, "overrides": overrides,
            "best_val": {monitor: val, "val/loss": 1 - val}, "test": {f"test/{name}": val - 0.01, "test/loss": 1 - val},
            "parameters": {"total": 1000}, "train_time_s": 2.0, "peak_memory_mb": {"host": 500.0, "cuda": None},
        }
    (folder / "metrics.json").write_text(json.dumps(summary))
    with (folder / "metrics.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "step", "train/loss", monitor])
        for epoch, value in enumerate(curve):
            writer.writerow([epoch, epoch * 10, "", value])
            writer.writerow([epoch, epoch * 10, 0.5, ""])
    return folder


@pytest.fixture
def sweep(tmp_path) -> Path:
    root = tmp_path / "sweep"
    job = 0
    for fusion, per_seed in VALUES.items():
        for seed, value in per_seed.items():
            fake_run(root / str(job), [f"fusion={fusion}", f"seed={seed}", "dataset.size=400"], value, seed,
                     curve=[value - 0.1, value])
            job += 1
    fake_run(root / str(job), ["fusion=tensor", "seed=1", "dataset.size=400"], None, 1, status="failed")
    return root


def test_summary_has_student_t_interval():
    summary = summarise([1.0, 2.0, 3.0])
    assert summary.mean == pytest.approx(2.0)
    assert summary.std == pytest.approx(1.0)
    # t(0.975, 2) = 4.3027; half width = 4.3027 * 1 / sqrt(3)
    assert summary.ci_low == pytest.approx(2.0 - 2.4841, abs=1e-3)
    assert summary.ci_high == pytest.approx(2.0 + 2.4841, abs=1e-3)
    single = summarise([0.5])
    assert single.n == 1 and single.std is None and single.ci_low is None
    assert summarise([]) is None


def test_paired_test_uses_shared_seeds_and_switches_to_wilcoxon():
    assert paired_test({1: 0.5}, {1: 0.6}) is None
    short = paired_test({1: 0.5, 2: 0.6, 3: 0.55, 9: 0.0}, {1: 0.7, 2: 0.75, 3: 0.72, 4: 1.0})
    assert short.name == "t-test" and short.pairs == 3 and short.significant
    many = {s: 0.5 + 0.01 * s for s in range(8)}
    best = {s: 0.7 + 0.013 * s for s in range(8)}
    wilcoxon = paired_test(many, best)
    assert wilcoxon.name == "wilcoxon" and wilcoxon.pairs == 8
    assert paired_test({1: 0.5, 2: 0.6}, {1: 0.5, 2: 0.6}).p_value == 1.0


def test_rows_group_by_swept_keys_without_seed(sweep):
    runs = find_runs([sweep])
    assert swept_keys(runs) == ["fusion"]
    comparison = build(runs)
    assert comparison.metric == "val/acc" and comparison.test_metric == "test/acc" and comparison.mode == "max"
    assert [row.settings["fusion"] for row in comparison.rows] == ["attention", "gated", "concat"]
    assert [row.metric.n for row in comparison.rows] == [3, 3, 3]
    assert [run.path.name for run in comparison.failed] == ["9"]
    gated, concat = comparison.rows[1], comparison.rows[2]
    assert not gated.versus_best.significant
    assert concat.versus_best.significant and concat.versus_best.name == "t-test"
    assert comparison.rows[0].test_metric.mean == pytest.approx(0.90)
    assert comparison.rows[0].peak_memory_mb == 500.0


def test_min_metrics_rank_lowest_first(sweep):
    comparison = build(find_runs([sweep]), metric="val/loss")
    assert comparison.mode == "min"
    assert [row.settings["fusion"] for row in comparison.rows] == ["attention", "gated", "concat"]
    means = [row.metric.mean for row in comparison.rows]
    assert means == sorted(means)


def test_group_by_and_metric_are_checked(sweep):
    runs = find_runs([sweep])
    one = build(runs, group_by=[])
    assert len(one.rows) == 1 and one.rows[0].metric.n == 9
    with pytest.raises(ConfigError, match="did you mean 'fusion'"):
        build(runs, group_by=["fuson"])
    with pytest.raises(ConfigError, match="val/acc"):
        build(runs, metric="val/accuracy")
    with pytest.raises(ConfigError, match="validation metric"):
        build(runs, metric="test/acc")


def test_report_files_and_table(sweep, tmp_path):
    output = tmp_path / "report"
    console = Console(record=True, width=250)
    write_report([sweep], output, console=console)
    for name in ("comparison.csv", "comparison.md", "comparison.png", "learning_curves.png"):
        assert (output / name).stat().st_size > 0, name
    assert (output / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    with (output / "comparison.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["fusion"] for r in rows] == ["attention", "gated", "concat"]
    assert float(rows[0]["val/acc mean"]) == pytest.approx(0.91)
    assert rows[1]["significant"] == "False" and rows[2]["significant"] == "True"
    markdown = (output / "comparison.md").read_text()
    assert "## Runs that did not complete (1)" in markdown and "needs at least 2 modalities" in markdown
    assert "| 2 | gated | 0.8967 ± 0.0351" in markdown and "not significant" in markdown
    text = console.export_text()
    assert "0.9100 ± 0.0100" in text and "runs that did not complete (1)" in text


def test_optuna_results_add_best_parameters_and_history(tmp_path):
    root = tmp_path / "search"
    for job, (lr, value) in enumerate([(0.1, 0.5), (0.01, 0.8), (0.001, 0.7)]):
        fake_run(root / str(job), [f"optimizer.lr={lr}"], value, seed=42)
    (root / "optimization_results.yaml").write_text("name: optuna\nbest_params:\n  optimizer.lr: 0.01\nbest_value: 0.8\n")
    write_report([root], root, console=Console(record=True))
    markdown = (root / "comparison.md").read_text()
    assert "## Best parameters" in markdown and "`optimizer.lr=0.01`" in markdown
    assert (root / "optimisation_history.png").stat().st_size > 0


def test_missing_folder_and_empty_folder_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="is not a folder"):
        find_runs([tmp_path / "nope"])
    with pytest.raises(ConfigError, match="no runs in"):
        find_runs([tmp_path])


def test_list_values_show_in_the_terminal_table(tmp_path):
    root = tmp_path / "sweep"
    for job, (modalities, value) in enumerate({"[image]": 0.5, "[audio]": 0.6}.items()):
        fake_run(root / str(job), [f"dataset.modalities={modalities}"], value, 1)
    fake_run(root / "2", ["dataset.modalities=[text]"], None, 1, status="failed")
    console = Console(record=True, width=250)
    write_report([root], tmp_path / "report", console=console)
    text = console.export_text()
    assert "│ [audio]" in text and "│ [image]" in text  # not swallowed as rich markup tags


def test_two_runs_of_one_seed_are_one_seed_not_a_zero_width_interval(tmp_path):
    for name in ("first", "second"):
        fake_run(tmp_path / name, ["seed=42"], 0.8, 42)
        os.utime(tmp_path / name / "metrics.json", (1_000, 1_000))  # finished together: the folder decides
    comparison = build(find_runs([tmp_path]))
    (row,) = comparison.rows
    assert row.metric.n == 1 and row.metric.std is None and row.metric.ci_low is None
    assert [run.path.name for run in row.runs] == ["second"]
    assert [run.path.name for run in comparison.repeats] == ["first"]
