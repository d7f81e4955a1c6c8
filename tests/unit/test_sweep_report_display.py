"""Reports that read well: a terminal table that fits, bounded intervals, readable plots."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from matplotlib.colors import to_hex
from rich.console import Console
from test_sweep_baseline import baseline_block, job
from test_sweep_report import fake_run

from mmrun.sweep import plots
from mmrun.sweep.report import _console, write_report
from mmrun.sweep.runs import find_runs
from mmrun.sweep.stats import metric_range, summarise
from mmrun.sweep.table import build

FUSIONS = ("attention block concat deepset film gated late lowrank mcb mfb mfh mi mlb mult mutan nlgate perceiver "
           "product sum tensor transformer weighted").split()


def fusion_sweep(root: Path) -> Path:
    """Every one of the 22 fusions x 3 seeds, each job with a classical baseline (the widest table)."""
    number = 0
    for rank, fusion in enumerate(FUSIONS):
        for seed in (1, 2, 3):
            job(root / str(number), [f"fusion={fusion}", f"seed={seed}"], 0.5 + 0.02 * rank + 0.003 * seed, seed,
                baseline_block(0.6 + 0.01 * seed))
            number += 1
    return root


def test_the_table_of_22_configurations_fits_100_columns(tmp_path):
    console = Console(record=True, width=100)
    write_report([fusion_sweep(tmp_path / "sweep")], tmp_path / "report", console=console)
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "…" not in text  # no cell cut short
    header = " ".join(lines[1:lines.index(next(line for line in lines if line.startswith("┡")))]).split()
    for title in ("rank", "fusion", "val/acc", "seeds", "test/acc", "vs", "best", "beats", "baseline"):
        assert title in header, title  # titles may wrap at spaces
    table = text.split("vs best:")[0]  # the caption below the table names the columns left out
    for secondary in ("CI", "parameters", "time", "memory", "t-test"):  # in comparison.md and .csv only
        assert secondary not in table, secondary
    ranked = [line for line in lines if line.startswith("│") and line.split("│")[1].strip().isdigit()]
    assert len(ranked) == 22
    best = next(line for line in ranked if " weighted " in line)
    assert "0.9260 ± 0.0030" in best and " best " in best and " yes " in best  # each value on one line
    assert "p=" in next(line for line in ranked if " attention " in line)
    markdown = (tmp_path / "report" / "comparison.md").read_text()
    assert "| 95% CI |" in markdown and "| parameters |" in markdown and "t-test, 3 pairs" in markdown


def test_reports_off_a_terminal_are_100_columns_wide(monkeypatch):
    monkeypatch.setattr(Console, "is_terminal", property(lambda self: False))
    assert _console().width == 100


@pytest.mark.parametrize(("metric", "bounds"), [
    ("val/acc", (0.0, 1.0)), ("test/f1_macro", (0.0, 1.0)), ("val/auroc", (0.0, 1.0)), ("val/map", (0.0, 1.0)),
    ("val/recall@10", (0.0, 1.0)), ("val/precision", (0.0, 1.0)), ("val/loss", (0.0, None)),
    ("val/mse", (0.0, None)), ("val/mae", (0.0, None)), ("val/r2", (None, 1.0)), ("val/cider", (None, None)),
])
def test_metric_ranges_come_from_the_name(metric, bounds):
    assert metric_range(metric) == bounds


def test_intervals_are_clipped_to_the_metric_range():
    high = summarise([0.9, 0.97, 0.99], metric_range("val/acc"))  # Student's t: [0.836, 1.071]
    assert high.ci_high == 1.0 and high.ci_low == pytest.approx(0.8358, abs=1e-3)
    assert high.mean == pytest.approx(0.9533, abs=1e-4) and high.std == pytest.approx(0.0473, abs=1e-4)  # only the CI
    assert summarise([0.01, 0.3], metric_range("val/mse")).ci_low == 0.0
    assert summarise([0.99, 0.5], metric_range("val/r2")).ci_high == 1.0
    assert summarise([0.6, 0.95]).ci_high > 1.0  # unbounded: Student's t as it is


def test_the_csv_and_markdown_carry_the_clipped_interval(tmp_path):
    root = tmp_path / "sweep"
    for seed, value in ((1, 0.55), (2, 0.98)):  # t(0.975, 1) = 12.7: the raw interval is about [-2.0, 3.5]
        fake_run(root / str(seed), [f"seed={seed}"], value, seed)
    write_report([root], tmp_path / "report", console=Console(record=True, width=100))
    with (tmp_path / "report" / "comparison.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert float(row["val/acc ci95 low"]) == 0.0 and float(row["val/acc ci95 high"]) == 1.0
    assert "[0.0000, 1.0000]" in (tmp_path / "report" / "comparison.md").read_text()


def test_learning_curves_have_markers_and_say_when_there_is_one_epoch(tmp_path):
    root = tmp_path / "sweep"
    for number, (fusion, value) in enumerate({"concat": 0.7, "attention": 0.8}.items()):
        fake_run(root / str(number), [f"fusion={fusion}"], value, 1, curve=[value])
    comparison = build(find_runs([root]))
    figure = plots.learning_curves_png(comparison, tmp_path / "one.png")
    axes = figure.axes[0]
    assert len(axes.lines) == 2 and all(line.get_marker() == "o" for line in axes.lines)
    assert "only one epoch" in axes.get_title()

    longer = tmp_path / "longer"
    fake_run(longer / "0", ["fusion=concat"], 0.7, 1, curve=[0.5, 0.6, 0.7])
    fake_run(longer / "1", ["fusion=attention"], 0.8, 1, curve=[0.6, 0.8])
    axes = plots.learning_curves_png(build(find_runs([longer])), tmp_path / "two.png").axes[0]
    assert "one epoch" not in axes.get_title() and all(line.get_marker() == "o" for line in axes.lines)


def test_colours_do_not_repeat_for_30_configurations(tmp_path):
    for n in (1, 10, 11, 22, 30, 40, 41, 100):
        assert len({to_hex(colour) for colour in plots.palette(n)}) == n, n
    root = tmp_path / "sweep"
    for number in range(30):
        fake_run(root / str(number), [f"optimizer.lr={number + 1}e-4"], 0.5 + 0.01 * number, 1, curve=[0.4, 0.5])
    comparison = build(find_runs([root]))
    bars = plots.comparison_png(comparison, tmp_path / "bars.png").axes[0].patches
    lines = plots.learning_curves_png(comparison, tmp_path / "curves.png").axes[0].lines
    assert len({to_hex(bar.get_facecolor()) for bar in bars}) == 30
    assert len({to_hex(line.get_color()) for line in lines}) == 30
    # A configuration has the same colour in both figures (bars in rank order, lines too).
    assert [to_hex(bar.get_facecolor()) for bar in bars] == [to_hex(line.get_color()) for line in lines]


def test_every_bar_colour_is_in_the_legend_and_untested_bars_have_no_mark(tmp_path):
    root = tmp_path / "sweep"
    values = {"attention": {1: 0.90, 2: 0.91}, "concat": {1: 0.70, 2: 0.72}, "gated": {1: 0.85}}
    for fusion, per_seed in values.items():
        for seed, value in per_seed.items():
            job(root / f"{fusion}{seed}", [f"fusion={fusion}", f"seed={seed}"], value, seed, baseline_block(0.6))
    figure = plots.comparison_png(build(find_runs([root])), tmp_path / "bars.png")
    axes, (legend,) = figure.axes[0], figure.legends
    bar_colours = {to_hex(bar.get_facecolor()) for bar in axes.patches}
    legend_colours = {to_hex(handle.get_facecolor()) for handle in legend.legend_handles
                      if hasattr(handle, "get_facecolor")}  # the patches; the baseline's line has none
    assert len(bar_colours) == 3 and bar_colours <= legend_colours
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels[:3] == ["1. fusion=attention", "2. fusion=gated", "3. fusion=concat"]
    assert labels[3].startswith("classical baseline (logistic_regression)")  # the dashed line has its entry too
    notes = {text.get_text().split(" (n=")[0]: text.get_text() for text in axes.texts}
    assert notes["0.8500"] == "0.8500 (n=1)"  # one seed: not tested, so no mark
    assert notes["0.7100"].endswith(" *") and notes["0.9050"] == "0.9050 (n=2)"
