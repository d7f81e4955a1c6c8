"""Experiment trackers: MLflow (one experiment per sweep), TensorBoard and W&B offline at once."""

from __future__ import annotations

import pytest
from conftest import TINY, run_dirs, run_mmrun


def test_mlflow_sweep_is_one_experiment_with_a_run_per_job(tmp_path):
    mlflow = pytest.importorskip("mlflow", reason="pip install 'mmrun[mlflow]'")
    result = run_mmrun(["train", "-m", "logger=mlflow", "fusion=concat,attention", *TINY], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True)
    assert len(runs) == 2 and runs["experiment_id"].nunique() == 1
    (experiment,) = [e for e in mlflow.search_experiments() if e.experiment_id == runs["experiment_id"][0]]
    assert experiment.name.startswith("sweep ")
    names = sorted(runs["tags.mlflow.runName"])
    assert "fusion=attention" in names[0] and "fusion=concat" in names[1]  # named by the overrides
    assert set(runs["params.fusion/_target_"]) == {"mmrun.fusion.concat.ConcatFusion",
                                                   "mmrun.fusion.attention.AttentionFusion"}
    history = mlflow.MlflowClient().get_metric_history(runs["run_id"][0], "val/acc")
    assert len(history) == 2  # one value per epoch (trainer.max_epochs=2)


def test_several_loggers_at_once(tmp_path):
    pytest.importorskip("wandb", reason="pip install 'mmrun[wandb]'")
    pytest.importorskip("tensorboard", reason="pip install 'mmrun[tensorboard]'")
    result = run_mmrun(["train", "logger=[csv,tensorboard,wandb]", *TINY], tmp_path, env={"WANDB_SILENT": "true"})
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path / "outputs")
    assert "val/acc" in (run_dir / "metrics.csv").read_text().splitlines()[0]
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
