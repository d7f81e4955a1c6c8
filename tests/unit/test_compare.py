"""`mmrun compare`: argument handling and repeated runs of a seed (the report is tested in test_sweep_report.py)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from test_sweep_report import fake_run

from mmrun.compare import _list, main, parse
from mmrun.errors import ConfigError


def test_folders_and_options_are_separated():
    folders, options = parse(["a", "b/c", "group_by=[fusion,encoder/text]", "metric=val/f1_macro", "output=o"])
    assert folders == [Path("a"), Path("b/c")]
    assert options == {"group_by": "[fusion,encoder/text]", "metric": "val/f1_macro", "output": "o"}
    assert _list("[fusion,encoder/text]") == ["fusion", "encoder/text"]
    assert _list("fusion") == ["fusion"]
    assert _list("[]") == []


def test_unknown_option_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'group_by'"):
        parse(["dir", "groupby=[fusion]"])


def test_folders_are_required():
    with pytest.raises(ConfigError, match="at least one run or sweep folder"):
        parse(["metric=val/acc"])


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    assert "mmrun compare DIR" in capsys.readouterr().out



def _rerun(folder: Path, value: float, finished: float) -> Path:
    """A run of ``fusion=concat seed=42`` that wrote its metrics.json at time ``finished``."""
    fake_run(folder, ["fusion=concat", "seed=42"], value, 42)
    os.utime(folder / "metrics.json", (finished, finished))
    return folder


def test_repeats_of_a_seed_count_once_and_are_named(tmp_path, capsys):
    # The same configuration and seed run three times (two runs and a copied one): one seed, not three.
    newest = _rerun(tmp_path / "runs" / "a", 0.80, finished=3_000)
    older = [_rerun(tmp_path / "runs" / "b", 0.70, finished=1_000),
             _rerun(tmp_path / "copy" / "c", 0.75, finished=2_000)]
    fake_run(tmp_path / "runs" / "d", ["fusion=concat", "seed=7"], 0.60, 7)  # another seed: counts
    assert main([str(tmp_path / "runs"), str(tmp_path / "copy"), f"output={tmp_path / 'report'}"]) == 0

    with (tmp_path / "report" / "comparison.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["seeds"] == "2" and float(row["val/acc mean"]) == pytest.approx(0.70)  # 0.80 (newest) and 0.60
    assert row["run folders"].split(";") == [str(newest), str(tmp_path / "runs" / "d")]
    assert sorted(row["repeats set aside"].split(";")) == sorted(str(path) for path in older)
    markdown = (tmp_path / "report" / "comparison.md").read_text()
    assert "**Note:** 2 repeated run(s) of the same configuration and seed were set aside" in markdown
    assert all(str(path) in markdown for path in older)
    assert "2 repeated run(s)" in " ".join(capsys.readouterr().out.split())


def test_runs_that_differ_only_in_an_ungrouped_key_are_not_repeats(tmp_path):
    for number, fusion in enumerate(("concat", "attention")):
        fake_run(tmp_path / "runs" / str(number), [f"fusion={fusion}", "seed=42"], 0.7 + 0.1 * number, 42)
    assert main([str(tmp_path / "runs"), "group_by=[]", f"output={tmp_path / 'report'}"]) == 0
    with (tmp_path / "report" / "comparison.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["seeds"] == "2" and "repeats set aside" not in row  # two fusions pooled, not one run twice
