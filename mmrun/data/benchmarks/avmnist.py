"""AV-MNIST: MNIST digits paired with spoken-digit spectrograms (Vielzeuf et al., 2018).

Reads the release layout used by MultiBench (Liang et al., NeurIPS 2021 Datasets and
Benchmarks, arXiv:2107.07502)::

    ROOT/image/train_data.npy  ROOT/image/test_data.npy    N x 784 (28 x 28 digits)
    ROOT/audio/train_data.npy  ROOT/audio/test_data.npy    N x 112 x 112 spectrograms
    ROOT/train_labels.npy      ROOT/test_labels.npy        N digit labels 0-9

The last ``val_size`` (5000) training samples are the validation split. Pixel and
spectrogram values stored in 0-255 are scaled to [0, 1]. The image is kind ``image``
``[1, 28, 28]``; the spectrogram kind ``audio`` ``[112, 112]`` (read as [n_mels, frames]),
which ``conf/dataset/avmnist.yaml`` pairs with ``encoder/audio=melcnn``. Vielzeuf et al.,
"CentralNet: a Multilayer Approach for Multimodal Fusion", ECCV Workshops 2018,
arXiv:1808.07275.
"""

from __future__ import annotations


import numpy as np
import torch

from mmrun.data.benchmarks.common import all_present, require_file, required_path, select_modalities
from mmrun.data.spec import DataSpec, ModalitySpec
from mmrun.data.tensor_datamodule import TensorDataModule
from mmrun.errors import ConfigError, DataError

MODALITIES = ("audio", "image")
SHAPES = {"image": (784,), "audio": (112, 112)}
SPECS = {
    "image": ModalitySpec("image", "image", (1, 28, 28)),
    "audio": ModalitySpec("audio", "audio", (112, 112)),
}
NUM_CLASSES = 10
LAYOUT = "image/{train,test}_data.npy, audio/{train,test}_data.npy, {train,test}_labels.npy"


class AVMNISTDataModule(TensorDataModule):
    """AV-MNIST from the release ``.npy`` files (see the module docstring for the layout).

    Args:
        root: folder holding ``image/``, ``audio/`` and the label files.
        modalities: which of ``audio`` and ``image`` to serve.
        val_size: trailing training samples held out for validation (5000 in the benchmark).
        batch_size, eval_batch_size, seed: see ``TensorDataModule``.
    """

    def __init__(
        self,
        root: str | None,
        modalities: list[str] | tuple[str, ...] = MODALITIES,
        val_size: int = 5000,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed)
        self.root = required_path(root, "dataset.root", "avmnist", "/path/to/avmnist")
        self.modalities = select_modalities(modalities, MODALITIES, "avmnist")
        if val_size < 1:
            raise ConfigError(f"dataset.val_size={val_size} must be at least 1")
        self.val_size = val_size

    def _array(self, relative: str, shape: tuple[int, ...]) -> np.ndarray:
        path = require_file(self.root / relative, "avmnist", LAYOUT)
        array = np.load(path, mmap_mode="r")
        if tuple(array.shape[1:]) != shape:
            raise DataError(
                f"{path} has shape {list(array.shape)}; AV-MNIST stores N x {' x '.join(map(str, shape))} there"
            )
        return array

    def _part(self, part: str) -> dict[str, torch.Tensor]:
        labels = np.asarray(self._array(f"{part}_labels.npy", ())).reshape(-1)
        if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES or not np.all(labels == np.round(labels))):
            raise DataError(f"{self.root / f'{part}_labels.npy'} must hold digit labels 0-9")
        data = {"label": torch.from_numpy(labels.astype(np.int64))}
        for name in self.modalities:
            array = np.asarray(self._array(f"{name}/{part}_data.npy", SHAPES[name]), dtype=np.float32)
            if len(array) != len(labels):
                raise DataError(
                    f"{self.root / name / f'{part}_data.npy'} has {len(array)} samples but "
                    f"{part}_labels.npy has {len(labels)}"
                )
            if array.size and array.max() > 1.0:
                array = array / 255.0
            data[name] = torch.from_numpy(array).reshape(len(array), *SPECS[name].shape)
        data["present"] = all_present(len(labels), len(self.modalities))
        return data

    def build(self) -> tuple[dict[str, dict[str, torch.Tensor]], DataSpec]:
        train, test = self._part("train"), self._part("test")
        n_train = len(train["label"])
        if self.val_size >= n_train:
            raise ConfigError(f"dataset.val_size={self.val_size} leaves no training samples out of {n_train}")
        cut = n_train - self.val_size
        splits = {
            "train": {k: v[:cut] for k, v in train.items()},
            "val": {k: v[cut:] for k, v in train.items()},
            "test": test,
        }
        spec = DataSpec(
            tuple(SPECS[m] for m in self.modalities), "multiclass", NUM_CLASSES, tuple(str(d) for d in range(NUM_CLASSES))
        )
        return splits, spec
