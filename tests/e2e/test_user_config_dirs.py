"""A user's own config folder, named with ``--config-dir``/``-cd`` or ``hydra.searchpath``: its sweep
and experiment presets compose and run like mmrun's own, and a typo is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TINY, read_metrics, run_dirs, run_mmrun

ONE_EPOCH = [*(arg for arg in TINY if not arg.startswith("trainer.max_epochs=")), "trainer.max_epochs=1"]
# Written as a user would copy conf/sweep/fusions.yaml and conf/experiment/quick.yaml.
SWEEP = """# @package _global_
# My sweep: two seeds of the sum fusion.
hydra:
  sweeper:
    params:
      fusion: sum
      seed: 5,6
"""
EXPERIMENT = """# @package _global_
# My experiment: attention fusion, seed 77.
defaults:
  - override /fusion: attention
seed: 77
"""


@pytest.fixture
def user_folder(tmp_path) -> Path:
    for group, text in (("sweep", SWEEP), ("experiment", EXPERIMENT)):
        (tmp_path / "myconf" / group).mkdir(parents=True)
        (tmp_path / "myconf" / group / "mine.yaml").write_text(text)
    return tmp_path / "myconf"


WAYS = {
    "config-dir": lambda folder: ["--config-dir", "myconf"],
    "cd": lambda folder: ["-cd", "myconf"],
    "searchpath": lambda folder: [f"hydra.searchpath=[file://{folder}]"],
}


@pytest.mark.parametrize("way", WAYS)
def test_user_presets_compose(way, user_folder):
    folder = WAYS[way](user_folder)
    experiment = run_mmrun(["train", *folder, "experiment=mine", "--cfg", "job"], user_folder.parent)
    assert experiment.returncode == 0, experiment.stderr
    assert "seed: 77" in experiment.stdout.splitlines() and "AttentionFusion" in experiment.stdout
    sweep = run_mmrun(["train", *folder, "+sweep=mine", "--cfg", "hydra"], user_folder.parent)
    assert sweep.returncode == 0, sweep.stderr
    assert "      fusion: sum\n      seed: 5,6\n" in sweep.stdout


def test_user_sweep_runs_through_config_dir(user_folder):
    result = run_mmrun(["train", "-m", "--config-dir", "myconf", "+sweep=mine", "hydra.sweep.dir=sweep", *ONE_EPOCH],
                       user_folder.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [read_metrics(job) for job in run_dirs(user_folder.parent / "sweep")]
    assert sorted(run["seed"] for run in runs) == [5, 6]
    assert {run["status"] for run in runs} == {"completed"}


def test_user_experiment_runs_through_searchpath(user_folder):
    result = run_mmrun(["train", f"hydra.searchpath=[file://{user_folder}]", "experiment=mine", "hydra.run.dir=run",
                        *ONE_EPOCH], user_folder.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    run = user_folder.parent / "run"
    assert read_metrics(run)["seed"] == 77
    assert "AttentionFusion" in (run / ".hydra" / "config.yaml").read_text()


@pytest.mark.parametrize("way", ["cd", "searchpath"])
def test_a_typo_names_the_closest_option(way, user_folder):
    result = run_mmrun(["train", *WAYS[way](user_folder), "-m", "+sweep=mien"], user_folder.parent)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("mmrun: error: 'mien' is not an option of sweep; did you mean 'mine'?")


def test_list_shows_the_user_options(user_folder):
    result = run_mmrun(["list", "sweep", "--config-dir", "myconf"], user_folder.parent)
    assert result.returncode == 0, result.stderr
    assert "mine" in result.stdout and "My sweep: two seeds" in result.stdout and "fusions" in result.stdout
