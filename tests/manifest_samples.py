"""Tiny manifests of real files (PNG via Pillow, WAV via soundfile) for the manifest tests.

Each row's class decides the image brightness, the tone's pitch, a word of the caption and
the number, so every modality carries the label and a model can learn it in an epoch.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

CLASSES = ("cat", "dog")
RATE = 8000
# Preprocessing small enough for tests: 16x16 images, 0.1 s of audio as 16 mel bands.
TINY_DATA = [
    "dataset.image.size=[16,16]",
    "dataset.audio.sample_rate=8000",
    "dataset.audio.duration=0.1",
    "dataset.audio.n_fft=64",
    "dataset.audio.hop_length=16",
    "dataset.audio.n_mels=16",
    "dataset.batch_size=16",
]


def write_png(path: Path, value: int, size: int = 12) -> None:
    pixels = np.full((size, size + 4, 3), value, dtype=np.uint8)
    pixels[::2, ::3, 1] = 255 - value
    Image.fromarray(pixels).save(path)


def write_wav(path: Path, pitch: float, seconds: float = 0.1) -> None:
    t = np.arange(int(RATE * seconds)) / RATE
    soundfile.write(path, (0.5 * np.sin(2 * math.pi * pitch * t)).astype(np.float32), RATE)


def make_rows(folder: Path, count: int, split: bool = True, start: int = 0) -> list[dict[str, str]]:
    """Write ``count`` samples' files under ``folder/files`` and return their manifest rows."""
    files = folder / "files"
    files.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(start, start + count):
        label = i % 2
        write_png(files / f"{i}.png", 40 + 160 * label)
        write_wav(files / f"{i}.wav", 300 + 900 * label)
        row = {
            "image": f"files/{i}.png",
            "sound": f"files/{i}.wav",
            "caption": f"a {'small' if label else 'big'} animal number {i % 5}",
            "weight": f"{label * 3 + (i % 3) * 0.1:.2f}",
            "label": CLASSES[label],
        }
        if split:
            row["split"] = "train" if i % 10 < 6 else "val" if i % 10 < 8 else "test"
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def make_manifest(folder: Path, count: int = 40, split: bool = True, name: str = "manifest.csv") -> Path:
    return write_csv(folder / name, make_rows(folder, count, split))


# Small decoding settings for manifest datamodules built in tests.
TINY = dict(image={"size": [16, 16]}, audio={"sample_rate": 8000, "duration": 0.1, "n_fft": 64, "hop_length": 16,
                                             "n_mels": 16}, batch_size=8)


def build(path, tmp_path, **options):
    """A set-up manifest datamodule over ``path`` with the tiny settings, caching in ``tmp_path``."""
    from mmrun.data.manifest import ManifestDataModule

    datamodule = ManifestDataModule(path=str(path), cache_dir=str(tmp_path / "cache"), **{**TINY, **options})
    datamodule.setup()
    return datamodule
