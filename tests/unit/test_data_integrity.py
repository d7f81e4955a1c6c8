"""Data integrity: stale files are decoded again, damaged cache entries are rebuilt, deep images keep their range."""

from __future__ import annotations

import logging
import os
import shutil

import numpy as np
import pytest
import torch
from manifest_samples import write_csv
from PIL import Image

from mmrun.data import files
from mmrun.data.cache import TensorCache
from mmrun.data.infer import infer_image
from mmrun.data.manifest import ManifestDataModule
from mmrun.data.preprocess import image
from mmrun.errors import ConfigError


def write_bmp(path, value: int) -> None:
    """An uncompressed 8x8 grey image: any value gives a file of the same size."""
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(path)


def bmp_manifest(folder):
    """20 rows of one BMP each (row i has value 10 * i), labels by parity, 12/4/4 split."""
    (folder / "files").mkdir(parents=True)
    rows = []
    for i in range(20):
        write_bmp(folder / "files" / f"{i}.bmp", 10 * i)
        rows.append({"image": f"files/{i}.bmp", "label": "ab"[i % 2],
                     "split": "train" if i < 12 else "val" if i < 16 else "test"})
    return write_csv(folder / "manifest.csv", rows)


def build(manifest, cache, **options):
    datamodule = ManifestDataModule(path=str(manifest), cache_dir=str(cache), image={"normalize": False},
                                    batch_size=4, **options)
    datamodule.setup()
    return datamodule


def first_pixel(datamodule) -> int:
    """Row 0's first pixel as decoded (images are x / 255 without normalisation)."""
    return round(float(datamodule.splits["train"]["image"][0, 0, 0, 0]) * 255)


def rewrite_keeping_size_and_mtime(path, value: int) -> None:
    """What ``cp -p`` or ``rsync -t`` of another picture does: new bytes, same size, old mtime."""
    before = os.stat(path)
    write_bmp(path, value)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


@pytest.fixture
def count_decodes(monkeypatch):
    calls = []
    decode_all = files._decode_all
    monkeypatch.setattr(files, "_decode_all", lambda *args: calls.append(1) or decode_all(*args))
    return calls


def test_a_rewrite_with_the_same_size_and_mtime_is_decoded_again(tmp_path, count_decodes):
    manifest = bmp_manifest(tmp_path / "data")
    assert first_pixel(build(manifest, tmp_path / "cache")) == 0
    assert first_pixel(build(manifest, tmp_path / "cache")) == 0 and len(count_decodes) == 1  # cached
    rewrite_keeping_size_and_mtime(tmp_path / "data" / "files" / "0.bmp", 200)
    assert first_pixel(build(manifest, tmp_path / "cache")) == 200  # the new picture, not the cached one
    assert len(count_decodes) == 2


def test_content_check_reuses_a_copy_and_sees_a_change(tmp_path, count_decodes):
    build(bmp_manifest(tmp_path / "data"), tmp_path / "cache", cache_check="content")
    shutil.copytree(tmp_path / "data", tmp_path / "copy")  # new place, new ctimes, same bytes
    copy = tmp_path / "copy" / "manifest.csv"
    assert first_pixel(build(copy, tmp_path / "cache", cache_check="content")) == 0
    assert len(count_decodes) == 1  # the copy's files were found decoded
    shutil.copytree(tmp_path / "data", tmp_path / "other")
    build(tmp_path / "other" / "manifest.csv", tmp_path / "cache")  # stat check: a copy is other files
    assert len(count_decodes) == 2
    rewrite_keeping_size_and_mtime(tmp_path / "copy" / "files" / "0.bmp", 200)
    assert first_pixel(build(copy, tmp_path / "cache", cache_check="content")) == 200
    assert len(count_decodes) == 3


def test_a_damaged_prepared_entry_is_rebuilt_with_a_warning(tmp_path, caplog):
    manifest = bmp_manifest(tmp_path / "data")
    first = build(manifest, tmp_path / "cache")
    entries = {path: torch.load(path, weights_only=True) for path in (tmp_path / "cache").glob("*.pt")}
    path, entry = next((p, e) for p, e in entries.items() if "splits" in e["data"])  # the prepared one
    entry["data"]["splits"]["train"]["image"].fill_(float("nan"))  # damaged but readable
    torch.save(entry, path)
    with caplog.at_level(logging.WARNING, logger="mmrun"):
        second = build(manifest, tmp_path / "cache")
    assert any("damaged" in r.message and path.name in r.message for r in caplog.records)
    for split, tensors in second.splits.items():
        assert torch.isfinite(tensors["image"]).all()
        assert torch.equal(tensors["image"], first.splits[split]["image"])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mmrun"):
        build(manifest, tmp_path / "cache")
    assert not caplog.records  # the rebuilt entry was stored in its place


def test_a_changed_value_in_any_entry_is_detected(tmp_path):
    cache = TensorCache(tmp_path)
    cache.store("key", {"data": torch.arange(1000, dtype=torch.uint8), "problems": [[3, "empty cell"]]})
    assert torch.equal(cache.load("key")["data"], torch.arange(1000, dtype=torch.uint8))
    entry = torch.load(tmp_path / "key.pt", weights_only=True)
    entry["data"]["data"][500] += 1
    torch.save(entry, tmp_path / "key.pt")
    assert cache.load("key") is None


def test_a_16_bit_png_keeps_its_range(tmp_path):
    levels = np.array([0, 257, 4096, 32768, 49152, 65535], dtype=np.uint16)
    gradient = np.tile(np.linspace(0, 65535, 60).astype(np.uint16), (4, 1))
    gradient[:, : len(levels)] = levels
    picture = Image.fromarray(gradient)
    assert picture.mode == "I;16"
    picture.save(tmp_path / "deep.png")
    options = image.ImageOptions(channels="grayscale", size=(4, 60), resize="stretch")
    decoded = image.decode(str(tmp_path / "deep.png"), options)[0].numpy().astype(int)
    assert decoded[0, : len(levels)].tolist() == [0, 1, 16, 128, 191, 255]
    assert (np.abs(decoded - gradient / 257) <= 0.5).all()  # tracks the 16-bit values everywhere
    rgb = image.decode(str(tmp_path / "deep.png"), image.ImageOptions(size=(4, 60), resize="stretch"))
    assert torch.equal(rgb[0], rgb[2]) and rgb[0].tolist() == decoded.tolist()
    inferred = infer_image(image.ImageOptions(channels="auto", size="auto"), [str(tmp_path / "deep.png")])
    assert inferred.channels == "grayscale"


@pytest.mark.parametrize("values, expected", [
    (np.array([[0, 128, 255]], dtype=np.int32), [0, 128, 255]),  # I holding 8-bit values: as they are
    (np.array([[0, 32768, 65535]], dtype=np.int32), [0, 128, 255]),  # I holding 16-bit values
    (np.array([[-100, 0, 100]], dtype=np.int32), [0, 128, 255]),  # no known range: its own
    (np.array([[0.0, 0.5, 1.0]], dtype=np.float32), [0, 128, 255]),  # F in 0..1
    (np.array([[-2.0, 0.0, 2.0]], dtype=np.float32), [0, 128, 255]),  # F elsewhere: its own range
])
def test_deep_modes_are_scaled_by_their_range(values, expected):
    picture = Image.fromarray(values)
    assert picture.mode in ("I", "F")
    scaled = image.to_8bit(picture)
    assert scaled.mode == "L" and np.asarray(scaled)[0].tolist() == expected


def test_an_unknown_cache_check_is_one_line_naming_the_choices(tmp_path):
    with pytest.raises(ConfigError) as caught:
        ManifestDataModule(path=str(tmp_path / "manifest.csv"), cache_check="hash")
    message = str(caught.value)
    assert "\n" not in message and "dataset.cache_check='hash'" in message
    assert "stat" in message and "content" in message
