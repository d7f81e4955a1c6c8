"""The CLI driven through subprocess, as a user would, on tiny settings."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import TINY, read_metrics, run_dirs, run_mmrun


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One default training run shared by the tests that inspect or evaluate it."""
    cwd = tmp_path_factory.mktemp("train")
    result = run_mmrun(["train", *TINY], cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(cwd / "outputs")
    return cwd, run_dir, result


def test_train_writes_the_run_folder(trained):
    _, run_dir, result = trained
    for name in ("metrics.json", "metrics.csv", "train.log", ".hydra/config.yaml", ".hydra/overrides.yaml",
                 "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (run_dir / name).exists(), name
    metrics = read_metrics(run_dir)
    assert metrics["schema_version"] == 1 and metrics["status"] == "completed"
    assert metrics["monitor"] == "val/acc" and set(metrics["test"]) >= {"test/acc", "test/f1_macro", "test/auroc"}
    assert 0.0 <= metrics["test"]["test/acc"] <= 1.0
    assert metrics["parameters"]["total"] > 0 and metrics["train_time_s"] > 0
    assert metrics["versions"]["torch"] and metrics["seed"] == 42
    assert len(metrics["epoch_time_s"]) == 2 and metrics["train_samples_per_s"] > 0
    assert metrics["peak_memory_mb"]["host"] > 0
    import torch

    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] + 1 == metrics["epochs"] == 2  # last.ckpt holds the final epoch, whatever was best
    assert 1 <= metrics["best_epoch"] <= 2  # counted from 1, as in the log
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "val/acc", "train/loss"} <= set(header)
    assert "test" in result.stdout and "acc" in result.stdout  # the final table


def test_eval_from_another_directory_reproduces_test_metrics(trained, tmp_path):
    _, run_dir, _ = trained
    result = run_mmrun(["eval", f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", "accelerator=cpu"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (eval_json,) = list((tmp_path / "outputs").rglob("eval_metrics.json"))
    evaluated = json.loads(eval_json.read_text())["metrics"]
    expected = read_metrics(run_dir)["test"]
    assert set(evaluated) == set(expected)
    for key, value in expected.items():
        assert evaluated[key] == pytest.approx(value, abs=1e-6)


def test_eval_of_another_split(trained, tmp_path):
    _, run_dir, _ = trained
    result = run_mmrun(["eval", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "split=val"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (eval_json,) = list((tmp_path / "outputs").rglob("eval_metrics.json"))
    data = json.loads(eval_json.read_text())
    assert data["split"] == "val" and "val/acc" in data["metrics"] and data["num_samples"] == 40


def test_same_seed_gives_identical_metrics(trained):
    cwd, run_dir, _ = trained
    again = cwd / "again"
    again.mkdir()
    result = run_mmrun(["train", *TINY], again)
    assert result.returncode == 0, result.stderr[-3000:]
    (second,) = run_dirs(again / "outputs")
    assert read_metrics(second)["test"] == read_metrics(run_dir)["test"]
    assert read_metrics(second)["best_val"] == read_metrics(run_dir)["best_val"]


@pytest.mark.parametrize("override", ["+fusion=attention", "fusion=attention"])
def test_fusion_selection_with_and_without_plus(override, tmp_path):
    result = run_mmrun(["train", override, *TINY], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path / "outputs")
    config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert config["fusion"]["_target_"].endswith("AttentionFusion")


def test_multirun_sweep_runs_each_job_in_its_own_folder(tmp_path):
    result = run_mmrun(["train", "-m", "fusion=concat,attention", *TINY], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    dirs = run_dirs(tmp_path / "outputs" / "multirun")
    assert len(dirs) == 2
    targets = {yaml.safe_load((d / ".hydra" / "config.yaml").read_text())["fusion"]["_target_"] for d in dirs}
    assert targets == {"mmrun.fusion.concat.ConcatFusion", "mmrun.fusion.attention.AttentionFusion"}


def test_task_variants_train(tmp_path):
    result = run_mmrun(["train", "-m", "dataset.task=regression,multilabel", *TINY], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    monitors = sorted(read_metrics(d)["monitor"] for d in run_dirs(tmp_path / "outputs"))
    assert monitors == ["val/map", "val/mse"]


def test_ddp_cpu_two_processes(tmp_path):
    result = run_mmrun(["train", "trainer=ddp_cpu", "trainer.devices=2", *TINY], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path / "outputs")
    assert (run_dir / "train_ddp_process_1.log").exists()  # the second rank ran and logged apart
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and "test/acc" in metrics["test"]


def _shard_lines(log_file):
    return [line.split("trains on", 1)[1] for line in log_file.read_text().splitlines() if "trains on" in line]


def test_ddp_cpu_inside_a_sweep_ranks_split_data_and_metrics_cover_the_whole_val_set(tmp_path):
    args = ["train", "-m", "fusion=concat,attention", "trainer=ddp_cpu", "trainer.devices=2", *TINY]
    result = run_mmrun(args, tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    dirs = run_dirs(tmp_path / "outputs" / "multirun")
    assert len(dirs) == 2  # each job once, in its own folder: workers did not start sweeps
    assert not list((tmp_path / "outputs").glob("20*"))  # and no stray single-run folders
    logs = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "outputs").rglob("*.log"))
    for run_dir in dirs:
        assert (run_dir / "train_ddp_process_1.log").is_file(), f"rank 1 logged elsewhere: {logs}\n{result.stdout[-2000:]}"
        rank0, rank1 = _shard_lines(run_dir / "train.log"), _shard_lines(run_dir / "train_ddp_process_1.log")
        assert rank0 and rank1 and rank0 != rank1  # each rank trained on its own shard
        best_val = read_metrics(run_dir)["best_val"]["val/acc"]
        evaluated = run_mmrun(["eval", f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", "split=val",
                               "accelerator=cpu"], run_dir)
        assert evaluated.returncode == 0, evaluated.stderr[-2000:]
        (eval_json,) = list((run_dir / "outputs").rglob("eval_metrics.json"))
        # single-process eval over the whole val split equals the DDP-synchronised metric
        assert json.loads(eval_json.read_text())["metrics"]["val/acc"] == pytest.approx(best_val, abs=1e-6)
