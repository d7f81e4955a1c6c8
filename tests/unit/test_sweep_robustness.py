"""Sweep reports of jobs that ran the analysis: robustness and Shapley columns, the robustness figure."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
from conftest import compose_train
from rich.console import Console
from test_sweep_report import fake_run

from mmrun.compare import main
from mmrun.sweep.plots import robustness_png
from mmrun.sweep.report import write_report
from mmrun.sweep.runs import find_runs
from mmrun.sweep.table import build

MODALITIES = ("audio", "image", "tabular", "text")
LEVELS = [0.0, 0.5, 1.0]
# (fusion, model.modality_dropout) -> val/acc, missing mean, worst, noise mean, worst, largest Shapley share
CONFIGS = {
    ("concat", "0"): (0.90, 0.70, 0.40, 0.80, 0.60, 0.50),
    ("concat", "0.3"): (0.89, 0.85, 0.70, 0.86, 0.75, 0.35),
    ("late", "0"): (0.88, 0.80, 0.60, 0.82, 0.65, 0.40),
    ("late", "0.3"): (0.87, 0.88, 0.78, 0.87, 0.80, 0.30),
}
SPREAD = 0.01  # seed 1 is 0.01 below each value, seed 2 0.01 above: mean = the value, std = 0.0141


def _curve(clean: float, slope: float) -> list[list[float]]:
    return [[p, clean - slope * p, 0.01] for p in LEVELS]


def write_analysis(folder: Path, clean: float, missing: tuple[float, float], noise: tuple[float, float],
                   share: float, worst: str = "audio", largest: str = "image") -> None:
    """robustness.json and contribution.json as ``mmrun.analysis`` writes them (schema 1)."""
    slopes = {name: 0.1 * (i + 1) for i, name in enumerate(MODALITIES)}  # mean slope 0.25
    robustness = {
        "schema_version": 1, "metric": "test/acc", "mode": "max", "split": "test", "clean": clean, "repeats": 3,
        "levels": LEVELS,
        "modalities": {name: {condition: {"relative_robustness": 0.8, "curve": _curve(clean, slope * factor)}
                              for condition, factor in (("missing", 1.0), ("noise", 0.5))}
                       for name, slope in slopes.items()},
        "subsets": [],
        "summary": {"missing": {"mean": missing[0], "worst": missing[1], "worst_modality": worst},
                    "noise": {"mean": noise[0], "worst": noise[1], "worst_modality": worst}},
        "effective_robustness": None,
    }
    contribution = {
        "schema_version": 1, "metric": "test/acc", "mode": "max", "full": clean, "empty": 0.25,
        "modalities": {name: {"shapley": 0.1, "shapley_share": 0.25, "leave_one_out": 0.05, "permutation": 0.1,
                              "permutation_std": 0.01} for name in MODALITIES},
        "summary": {"largest_shapley_share": share, "largest_shapley_modality": largest},
    }
    (folder / "robustness.json").write_text(json.dumps(robustness))
    (folder / "contribution.json").write_text(json.dumps(contribution))


def robustness_sweep(root: Path, analysed: bool = True) -> Path:
    for (fusion, rate), (val, *measures) in CONFIGS.items():
        for seed, sign in ((1, -1), (2, 1)):
            folder = fake_run(root / f"fusion={fusion},model.modality_dropout={rate},seed={seed}",
                              [f"fusion={fusion}", f"model.modality_dropout={rate}", f"seed={seed}"],
                              val + sign * SPREAD, seed)
            if analysed:
                m = [value + sign * SPREAD for value in measures]
                write_analysis(folder, val, (m[0], m[1]), (m[2], m[3]), m[4],
                               worst="text" if (fusion, rate, seed) == ("late", "0", 2) else "audio")
    return root


TITLES = ("robustness missing (mean)", "robustness missing (worst)", "robustness noise (mean)",
          "robustness noise (worst)", "largest Shapley share")


def test_each_configuration_gets_seed_statistics_of_the_analysis(tmp_path):
    comparison = build(find_runs([robustness_sweep(tmp_path / "sweep")]))
    assert [m.title for m in comparison.measures] == list(TITLES)
    rows = {(row.settings["fusion"], row.settings["model.modality_dropout"]): row for row in comparison.rows}
    for key, (_, *expected) in CONFIGS.items():
        measures = rows[key].analysis.measures
        for title, value in zip(TITLES, expected):
            assert measures[title].seeds.n == 2
            assert measures[title].seeds.mean == pytest.approx(value)
            assert measures[title].seeds.std == pytest.approx(SPREAD * 2**0.5)
    assert rows[("concat", "0")].analysis.measures["robustness missing (worst)"].modality == "audio"
    assert rows[("late", "0")].analysis.measures["robustness missing (worst)"].modality == "audio 1/2"
    assert rows[("late", "0")].analysis.measures["robustness missing (mean)"].modality is None
    assert rows[("concat", "0")].analysis.measures["largest Shapley share"].modality == "image"
    # Mean curve over modalities (slopes 0.1..0.4: mean 0.25; noise half of it), then over seeds.
    curves = rows[("concat", "0")].analysis.curves
    assert [p for p, _ in curves["missing"]] == [p for p, _ in curves["noise"]] == LEVELS
    assert [v for _, v in curves["missing"]] == pytest.approx([0.90, 0.775, 0.65])
    assert [v for _, v in curves["noise"]] == pytest.approx([0.90, 0.8375, 0.775])


def test_report_files_carry_the_columns_and_the_figure(tmp_path):
    output = tmp_path / "report"
    console = Console(record=True, width=100)
    write_report([robustness_sweep(tmp_path / "sweep")], output, console=console)
    with (output / "comparison.csv").open() as handle:
        rows = {(r["fusion"], r["model.modality_dropout"]): r for r in csv.DictReader(handle)}
    best = rows[("concat", "0")]
    assert float(best["robustness missing (mean) mean"]) == pytest.approx(0.70)
    assert float(best["robustness missing (mean) std"]) == pytest.approx(0.014142, abs=1e-6)
    assert float(best["robustness missing (mean) ci95 low"]) < 0.70 < float(best["robustness missing (mean) ci95 high"])
    assert float(best["robustness noise (worst) mean"]) == pytest.approx(0.60)
    assert best["robustness noise (worst) modality"] == "audio"
    assert float(best["largest Shapley share mean"]) == pytest.approx(0.50)
    assert best["largest Shapley share modality"] == "image"
    assert "robustness missing (mean) modality" not in best
    markdown = (output / "comparison.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| rank"))
    assert header.endswith(" | ".join(TITLES) + " |")
    line = next(line for line in markdown.splitlines() if line.startswith("| 1 | concat | 0 |"))
    assert "| 0.7000 ± 0.0141 | 0.4000 ± 0.0141 (audio) |" in line and "| 0.5000 ± 0.0141 (image) |" in line
    assert "comparison_robustness.png" in markdown and "`test/acc`" in markdown
    text = console.export_text()
    assert "relative robustness and modality contribution (test/acc)" in text
    row = next(line for line in text.splitlines() if line.startswith("│") and " late " in line and " 0.3 " in line
               and "0.880" in line)
    assert "0.780 audio" in row and "0.300 image" in row
    assert "0.600 audio 1/2" in text
    assert max(len(line) for line in text.splitlines()) <= 100 and "…" not in text
    assert "comparison_robustness.png" in text
    assert (output / "comparison_robustness.png").read_bytes()[:4] == b"\x89PNG"


def test_the_figure_draws_each_configuration_mean_curves(tmp_path):
    comparison = build(find_runs([robustness_sweep(tmp_path / "sweep")]))
    figure = robustness_png(comparison, tmp_path / "robustness.png")
    missing, noise = figure.axes
    assert len(missing.lines) == len(noise.lines) == len(CONFIGS)
    first = comparison.rows[0]  # rank 1 is drawn first, in the first colour
    assert list(missing.lines[0].get_ydata()) == pytest.approx([v for _, v in first.analysis.curves["missing"]])
    assert list(noise.lines[0].get_xdata()) == LEVELS
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels == [f"{row.rank}. {row.label}" for row in comparison.rows]


def test_damaged_and_foreign_files_are_skipped_with_one_warning_each(tmp_path, caplog):
    root = robustness_sweep(tmp_path / "sweep")
    damaged = root / "fusion=concat,model.modality_dropout=0,seed=1"
    (damaged / "robustness.json").write_text('{"schema_version": 1, "summ')
    foreign = root / "fusion=concat,model.modality_dropout=0,seed=2"
    data = json.loads((foreign / "contribution.json").read_text())
    (foreign / "contribution.json").write_text(json.dumps({**data, "schema_version": 2}))
    odd = root / "fusion=late,model.modality_dropout=0,seed=1"
    data = json.loads((odd / "robustness.json").read_text())
    data["summary"]["noise"]["worst"] = "bad"
    (odd / "robustness.json").write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="mmrun"):
        comparison = write_report([root], tmp_path / "report", console=Console(record=True, width=100))
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 3 and all("\n" not in w for w in warnings)
    assert any(str(damaged / "robustness.json") in w and "unreadable" in w for w in warnings)
    assert any(str(foreign / "contribution.json") in w and "schema_version 2" in w for w in warnings)
    assert any("summary.noise.worst is not a number" in w for w in warnings)
    rows = {(row.settings["fusion"], row.settings["model.modality_dropout"]): row for row in comparison.rows}
    concat = rows[("concat", "0")].analysis.measures
    assert concat["robustness missing (mean)"].seeds.n == 1  # seed 1's file skipped
    assert concat["robustness missing (mean)"].seeds.mean == pytest.approx(0.71)
    assert concat["largest Shapley share"].seeds.n == 1  # seed 2's file skipped
    assert (tmp_path / "report" / "comparison_robustness.png").is_file()


def test_without_analysis_the_report_keeps_its_shape(tmp_path):
    output = tmp_path / "report"
    console = Console(record=True, width=100)
    comparison = write_report([robustness_sweep(tmp_path / "sweep", analysed=False)], output, console=console)
    assert comparison.measures == []
    assert not (output / "comparison_robustness.png").exists()
    with (output / "comparison.csv").open() as handle:
        assert not any("robustness" in field or "Shapley" in field for field in next(csv.reader(handle)))
    assert "robustness" not in (output / "comparison.md").read_text()
    assert "robustness" not in console.export_text()


def test_contribution_alone_adds_only_the_shapley_column(tmp_path):
    root = robustness_sweep(tmp_path / "sweep")
    for path in root.rglob("robustness.json"):
        path.unlink()
    comparison = build(find_runs([root]))
    assert [m.title for m in comparison.measures] == ["largest Shapley share"]
    assert all(not row.analysis.curves for row in comparison.rows)


def test_mmrun_compare_reads_the_analysis(tmp_path, capsys):
    output = tmp_path / "compared"
    assert main([str(robustness_sweep(tmp_path / "sweep")), "group_by=[model.modality_dropout]",
                 f"output={output}"]) == 0
    with (output / "comparison.csv").open() as handle:
        rows = {r["model.modality_dropout"]: r for r in csv.DictReader(handle)}
    # concat and late pooled: 4 runs per rate
    assert float(rows["0.3"]["robustness missing (mean) mean"]) == pytest.approx((0.85 + 0.88) / 2)
    assert (output / "comparison_robustness.png").is_file()
    assert "robustness and modality contribution" in capsys.readouterr().out


def test_the_robustness_preset_crosses_fusions_dropout_and_seeds_and_runs_the_analysis():
    cfg = compose_train(["+sweep=robustness"], with_hydra=True)
    assert dict(cfg.hydra.sweeper.params) == {"fusion": "concat,late,gated", "model.modality_dropout": "0,0.3",
                                              "seed": "1,2,3"}
    assert cfg.analysis.robustness is True and cfg.analysis.contribution is True
