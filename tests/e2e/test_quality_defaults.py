"""Training that converges and a sanity floor: the baseline, early stopping, lr=auto (via the CLI)."""

from __future__ import annotations

import torch
import yaml

from conftest import TINY, read_metrics, run_dirs, run_mmrun

WITH_BASELINE = [o for o in TINY if not o.startswith("baseline=")]


def test_every_run_reports_the_classical_baseline(tmp_path):
    result = run_mmrun(["train", *WITH_BASELINE], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path / "outputs")
    metrics = read_metrics(run_dir)
    baseline = metrics["baseline"]
    assert baseline["best"] in baseline["candidates"] and baseline["monitor"] == "val/acc"
    assert set(baseline["test"]) == {k for k in metrics["test"] if k != "test/loss"}
    assert 0.0 <= baseline["test"]["test/acc"] <= 1.0 and baseline["train_rows"] == 320
    assert "baseline test" in result.stdout and "classical baseline:" in result.stdout + result.stderr


def test_no_baseline_and_a_bad_value(tmp_path):
    result = run_mmrun(["train", *TINY], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_metrics(run_dirs(tmp_path / "outputs")[0])["baseline"] is None
    (tmp_path / "bad").mkdir()
    bad = run_mmrun(["train", *TINY, "baseline=linear"], tmp_path / "bad")
    assert bad.returncode == 2 and bad.stderr.startswith("mmrun: error: baseline=linear must be one of auto, none")


# min_delta=2: no change of an accuracy counts as an improvement, so patience p ends the run after p + 1 epochs.
NEVER_IMPROVES = ["trainer.max_epochs=8", "callbacks.early_stopping.min_delta=2.0", "callbacks.early_stopping.patience=2"]


def test_training_stops_when_the_monitored_metric_stalls(tmp_path):
    result = run_mmrun(["train", *TINY, *NEVER_IMPROVES], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(read_metrics(run_dirs(tmp_path / "outputs")[0])["epoch_time_s"]) == 3


def test_fixed_epochs_turns_early_stopping_off(tmp_path):
    result = run_mmrun(["train", *TINY, "callbacks=fixed_epochs", "trainer.max_epochs=5"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(read_metrics(run_dirs(tmp_path / "outputs")[0])["epoch_time_s"]) == 5
    refused = run_mmrun(["train", *TINY, "callbacks=fixed_epochs", *NEVER_IMPROVES], tmp_path / "outputs")
    assert refused.returncode != 0  # the patience keys belong to early stopping, which fixed_epochs removes


def test_lr_auto_runs_the_finder_and_trains_with_its_rate(tmp_path):
    result = run_mmrun(["train", *TINY, "optimizer.lr=auto"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "inferred optimizer.lr=" in log  # 100 finder steps, although the run has only 2 epochs of 3 steps
    assert "Finding best initial lr" not in log  # the finder's tqdm bar stays out of a non-terminal log
    (run_dir,) = run_dirs(tmp_path / "outputs")
    found = float(log.split("inferred optimizer.lr=")[1].split()[0])
    assert yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())["optimizer"]["lr"] == "auto"
    stored = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)["mmrun"]["config"]["optimizer"]["lr"]
    assert abs(stored - found) / found < 1e-2  # the model trained (and is rebuilt) with the rate found
