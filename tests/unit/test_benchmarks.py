"""Benchmark loaders on tiny files written in exactly the release layouts."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from benchmark_layouts import AFFECT_DIMS, write_affect, write_avmnist, write_mmimdb
from mmrun.data.benchmarks.affect import AffectDataModule
from mmrun.data.benchmarks.avmnist import AVMNISTDataModule
from mmrun.errors import ConfigError, DataError


def train_split(datamodule) -> dict[str, torch.Tensor]:
    datamodule.setup()
    return datamodule.splits["train"]


def train_labels(datamodule) -> torch.Tensor:
    return train_split(datamodule)["label"]


def test_avmnist_splits_shapes_and_scaling(tmp_path):
    root = write_avmnist(tmp_path, n_train=60, n_test=20)
    dm = AVMNISTDataModule(str(root), val_size=15)
    dm.setup()
    labels = np.load(root / "train_labels.npy")
    assert len(dm.splits["train"]["label"]) == 45 and len(dm.splits["test"]["label"]) == 20
    assert torch.equal(dm.splits["val"]["label"], torch.from_numpy(labels[-15:]))  # the last train samples
    assert dm.splits["train"]["image"].shape[1:] == (1, 28, 28) and dm.splits["train"]["audio"].shape[1:] == (112, 112)
    assert 0.0 <= float(dm.splits["train"]["audio"].min()) and float(dm.splits["train"]["audio"].max()) <= 1.0
    pixel = np.load(root / "image" / "train_data.npy")[3, 5] / 255.0
    assert dm.splits["train"]["image"][3, 0, 0, 5] == pytest.approx(pixel)
    assert [(m.name, m.kind) for m in dm.spec.modalities] == [("audio", "audio"), ("image", "image")]
    assert dm.spec.task == "multiclass" and dm.spec.num_outputs == 10


def test_avmnist_errors_name_the_file(tmp_path):
    root = write_avmnist(tmp_path)
    np.save(root / "audio" / "test_data.npy", np.zeros((20, 112, 100)))
    with pytest.raises(DataError, match=r"audio/test_data.npy has shape \[20, 112, 100\]"):
        AVMNISTDataModule(str(root), val_size=10).setup()
    (root / "train_labels.npy").unlink()
    with pytest.raises(DataError, match="train_labels.npy is missing"):
        AVMNISTDataModule(str(root), val_size=10).setup()
    with pytest.raises(ConfigError, match="dataset.root"):
        AVMNISTDataModule(None)
    with pytest.raises(ConfigError, match="val_size=100 leaves no training samples"):
        AVMNISTDataModule(str(write_avmnist(tmp_path / "b")), val_size=100).setup()


def test_affect_tasks(tmp_path):
    path = write_affect(tmp_path / "mosi.pkl")
    with path.open("rb") as handle:
        scores = torch.from_numpy(pickle.load(handle)["train"]["labels"].reshape(-1))
    binary = AffectDataModule(str(path), task="binary")
    assert torch.equal(train_labels(binary), (scores > 0).long())
    dropped = AffectDataModule(str(path), task="binary", drop_zero=True)
    assert len(train_labels(dropped)) == int((scores != 0).sum()) < len(scores)
    seven = AffectDataModule(str(path), task="7class")
    assert torch.equal(train_labels(seven), (scores.round() + 3).long())
    assert seven.spec.num_outputs == 7
    regression = AffectDataModule(str(path), task="regression")
    assert torch.equal(train_labels(regression), scores)
    assert [(m.name, m.kind, m.shape) for m in regression.spec.modalities] == [
        (name, "features", (50, dim)) for name, dim in sorted(AFFECT_DIMS.items())
    ]


def test_affect_features_are_clean_and_standardized(tmp_path):
    dm = AffectDataModule(str(write_affect(tmp_path / "mosi.pkl")))
    dm.setup()
    audio = dm.splits["train"]["audio"]
    assert torch.isfinite(audio).all()  # the -inf of the release became 0
    assert (audio[:, :25] == 0).all()  # padding stays zero
    real = audio[:, 25:][audio[:, 25:].ne(0).any(-1)]
    assert real.mean(0).abs().max() < 0.2 and (real.std(0) - 1).abs().max() < 0.2
    raw = AffectDataModule(str(tmp_path / "mosi.pkl"), standardize=False)
    assert float(train_split(raw)["text"][:, 25:].mean()) > 2.0


def test_affect_pickle_cannot_run_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"train": Exploit(), "valid": {}, "test": {}}))
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        AffectDataModule(str(path)).setup()
    path.write_bytes(pickle.dumps({"train": {}, "test": {}}))
    with pytest.raises(DataError, match="does not hold the splits train, valid, test"):
        AffectDataModule(str(path)).setup()
    with pytest.raises(ConfigError, match="task='5class'"):
        AffectDataModule(str(path), task="5class")


def test_mmimdb_splits_and_labels(tmp_path):
    pytest.importorskip("h5py")
    from mmrun.data.benchmarks.mmimdb import MMIMDbDataModule

    path = write_mmimdb(tmp_path / "multimodal_imdb.hdf5", n=40)
    dm = MMIMDbDataModule(str(path), split_bounds=[20, 28, 36])
    dm.setup()
    assert [len(dm.splits[s]["label"]) for s in ("train", "val", "test")] == [20, 8, 8]
    assert dm.spec.task == "multilabel" and dm.spec.num_outputs == 23
    assert {m.name: m.shape for m in dm.spec.modalities} == {"image": (4096,), "text": (300,)}
    import h5py

    with h5py.File(path, "r") as handle:
        assert torch.equal(dm.splits["val"]["text"], torch.from_numpy(handle["features"][20:28]))
    with pytest.raises(DataError, match="expected at least 25959 x 23"):
        MMIMDbDataModule(str(path)).setup()
    with pytest.raises(ConfigError, match="split_bounds"):
        MMIMDbDataModule(str(path), split_bounds=[10, 5, 36])
