"""Tiny files in exactly the layouts of the public benchmark releases, for loader tests."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

AFFECT_DIMS = {"audio": 5, "text": 8, "vision": 4}
AFFECT_STEPS = 50


def write_avmnist(root: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> Path:
    """``image/``, ``audio/`` and label ``.npy`` files; pixels and spectrograms in 0-255."""
    rng = np.random.default_rng(seed)
    for part, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        image = rng.integers(0, 256, (n, 784)).astype(np.float64)
        image[:, :10] = labels[:, None] * 25  # a learnable trace of the digit
        audio = rng.integers(0, 256, (n, 112, 112)).astype(np.uint8)
        for name, array in (("image", image), ("audio", audio)):
            (root / name).mkdir(parents=True, exist_ok=True)
            np.save(root / name / f"{part}_data.npy", array)
        np.save(root / f"{part}_labels.npy", labels)
    return root


def affect_split(n: int, rng: np.random.Generator) -> dict:
    """One split of an affect pickle: front-padded sequences, N x 1 x 1 scores in [-3, 3], ids."""
    split = {}
    for name, dim in AFFECT_DIMS.items():
        array = rng.normal(3.0, 2.0, (n, AFFECT_STEPS, dim)).astype(np.float32)
        array[:, : AFFECT_STEPS // 2] = 0  # padding rows, as in the release
        split[name] = array
    split["audio"][0, -1, 0] = -np.inf  # the public MOSI audio has such values
    scores = rng.uniform(-3, 3, n).round(1)
    scores[:3] = 0.0
    split["labels"] = scores.reshape(n, 1, 1).astype(np.float32)
    split["id"] = np.array([[f"video{i}", str(i)] for i in range(n)], dtype=object)
    return split


def write_affect(path: Path, sizes: tuple[int, int, int] = (40, 16, 16), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    data = {name: affect_split(n, rng) for name, n in zip(("train", "valid", "test"), sizes)}
    path.write_bytes(pickle.dumps(data))
    return path


def write_mmimdb(path: Path, n: int = 36, seed: int = 0) -> Path:
    """``features`` (N x 300), ``vgg_features`` (N x 4096) and ``genres`` (N x 23) in hdf5."""
    import h5py

    rng = np.random.default_rng(seed)
    genres = (rng.random((n, 23)) < 0.3).astype(np.int8)
    genres[:, 0] = np.arange(n) % 2
    with h5py.File(path, "w") as handle:
        handle["features"] = rng.normal(size=(n, 300)).astype(np.float32) + genres[:, :1]
        handle["vgg_features"] = rng.normal(size=(n, 4096)).astype(np.float32)
        handle["genres"] = genres
    return path


def write_tiny_vit(directory: Path, image_size: int = 16, channels: int = 3) -> Path:
    """A randomly initialised two-layer Hugging Face ViT saved with save_pretrained."""
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        image_size=image_size, patch_size=8, num_channels=channels, hidden_size=32,
        num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    )
    ViTModel(config).save_pretrained(directory)
    return directory
