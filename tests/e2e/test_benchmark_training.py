"""Every benchmark loader and every encoder option trains end to end through the CLI."""

from __future__ import annotations

import pytest
import yaml

from benchmark_layouts import write_affect, write_avmnist, write_mmimdb, write_tiny_vit
from conftest import read_metrics, run_dirs, run_mmrun

ONE_EPOCH = ["trainer.max_epochs=1", "trainer.accelerator=cpu", "progress=plain", "baseline=none"]


def train(cwd, *args) -> dict[str, dict]:
    """Run ``mmrun train`` and return each run's metrics.json keyed by its overrides."""
    result = run_mmrun(["train", *args, *ONE_EPOCH], cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {}
    for run_dir in run_dirs(cwd / "outputs"):
        overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
        runs[" ".join(o for o in overrides if "=" in o and not o.startswith(("trainer.", "progress", "dataset.root", "dataset.path")))] = read_metrics(run_dir)
    return runs


def test_avmnist_with_every_audio_encoder(tmp_path):
    write_avmnist(tmp_path / "avmnist", n_train=40, n_test=10)
    runs = train(tmp_path, "-m", "dataset=avmnist", "dataset.root=avmnist", "dataset.val_size=10",
                 "encoder/audio=melcnn,melgru,transformer")
    assert len(runs) == 3
    for metrics in runs.values():
        assert metrics["status"] == "completed" and set(metrics["test"]) >= {"test/acc", "test/f1_macro"}


def test_affect_tasks_and_feature_encoders(tmp_path):
    write_affect(tmp_path / "affect.pkl")
    runs = train(tmp_path, "-m", "dataset=mosi", "dataset.path=affect.pkl", "dataset.task=binary",
                 "dataset.drop_zero=true", "encoder/features=gru,transformer,linear")
    assert len(runs) == 3 and all("test/acc" in m["test"] for m in runs.values())
    (tmp_path / "tasks").mkdir()
    runs = train(tmp_path / "tasks", "-m", "dataset=mosei", f"dataset.path={tmp_path / 'affect.pkl'}",
                 "dataset.task=7class,regression")
    (seven,) = [m for k, m in runs.items() if "7class" in k]
    (regression,) = [m for k, m in runs.items() if "regression" in k]
    assert "test/acc" in seven["test"] and seven["parameters"]["total"] > 0
    assert {"test/mae", "test/pearson"} <= set(regression["test"])


def test_mmimdb_multilabel(tmp_path):
    pytest.importorskip("h5py")
    write_mmimdb(tmp_path / "multimodal_imdb.hdf5", n=36)
    (metrics,) = train(tmp_path, "dataset=mmimdb", "dataset.path=multimodal_imdb.hdf5",
                       "dataset.split_bounds=[20,28,36]").values()
    assert {"test/f1_micro", "test/f1_macro", "test/map"} <= set(metrics["test"])


def test_synthetic_with_the_other_encoders(tmp_path):
    runs = train(tmp_path, "-m", "dataset.size=120", "encoder/text=transformer", "encoder/image=vit,resnet",
                 "encoder/tabular=ft", "encoder.text.lr_mult=0.5")
    assert len(runs) == 2 and all(m["status"] == "completed" for m in runs.values())


def test_image_hf_from_a_local_directory_with_freeze(tmp_path):
    pytest.importorskip("transformers")
    model = write_tiny_vit(tmp_path / "tiny-vit", image_size=16)
    (metrics,) = train(tmp_path, "dataset.size=120", "dataset.modalities=[image,text]", "encoder/image=hf", "encoder/text=bow",
                       f"encoder.image.model_path={model}", "encoder.image.freeze=true").values()
    assert metrics["status"] == "completed"
    assert metrics["parameters"]["trainable"] < metrics["parameters"]["total"]


def test_benchmark_user_errors(tmp_path):
    result = run_mmrun(["train", "dataset=mosi", *ONE_EPOCH], tmp_path)
    assert result.returncode == 2 and "dataset.path=" in result.stderr.strip().splitlines()[-1]
    write_avmnist(tmp_path / "avmnist", n_train=30, n_test=10)
    result = run_mmrun(["train", "dataset=avmnist", "dataset.root=avmnist", "dataset.val_size=10", "encoder/audio=cnn1d",
                        *ONE_EPOCH], tmp_path)
    assert result.returncode == 2 and "use encoder/audio=melcnn" in result.stderr
