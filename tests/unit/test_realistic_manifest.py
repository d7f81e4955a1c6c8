"""scripts/make_realistic_manifest.py: the realistic-looking digits table (images, speech, notes, a number)."""

from __future__ import annotations

import csv
import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_realistic_manifest.py"
SIZE = 40


def load_script():
    spec = importlib.util.spec_from_file_location("make_realistic_manifest", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return load_script()


@pytest.fixture(scope="module")
def made(script, tmp_path_factory):
    folder = tmp_path_factory.mktemp("realistic")
    manifest = script.write_manifest(folder, size=SIZE, seed=0)
    with manifest.open(newline="") as handle:
        return folder, list(csv.DictReader(handle))


def test_columns_and_balanced_string_labels(script, made):
    folder, rows = made
    with (folder / "manifest.csv").open(newline="") as handle:
        assert next(csv.reader(handle)) == ["image", "audio", "text", "number", "label", "split"]
    assert len(rows) == SIZE
    assert Counter(r["label"] for r in rows) == {name: SIZE // 10 for name in script.CLASS_NAMES}
    assert rows[0]["image"] == "images/00001.png" and rows[0]["audio"] == "audio/00001.wav"


def test_splits_are_present_in_70_15_15(made):
    _, rows = made
    assert Counter(r["split"] for r in rows) == {"train": 28, "val": 6, "test": 6}


def test_images_are_32x32_greyscale(made):
    folder, rows = made
    for row in rows:
        with Image.open(folder / row["image"]) as image:
            assert image.mode == "L" and image.size == (32, 32)
            assert image.format == "PNG"


def test_audio_is_8khz_mono_16_bit_of_varying_length(made):
    folder, rows = made
    lengths = set()
    for row in rows:
        info = soundfile.info(str(folder / row["audio"]))
        assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
        assert 0.3 <= info.duration <= 1.4
        lengths.add(info.frames)
    assert len(lengths) > SIZE // 2


def test_notes_are_free_text_and_some_numbers_are_empty(made):
    _, rows = made
    assert all(r["text"].strip() for r in rows)
    assert max(len(r["text"].split()) for r in rows) > 3  # inferred as text, not categorical
    numbers = [r["number"] for r in rows]
    assert 0 < numbers.count("") < SIZE // 4
    assert all(float(n) > 0 for n in numbers if n)


def test_same_seed_same_files_other_seed_other_files(script, made, tmp_path):
    folder, rows = made
    again = script.write_manifest(tmp_path / "again", size=SIZE, seed=0)
    assert again.read_bytes() == (folder / "manifest.csv").read_bytes()
    for name in ("images/00007.png", "audio/00007.wav"):
        assert (tmp_path / "again" / name).read_bytes() == (folder / name).read_bytes()
    other = script.write_manifest(tmp_path / "other", size=SIZE, seed=1)
    assert other.read_bytes() != again.read_bytes()
    assert (tmp_path / "other" / "audio/00007.wav").read_bytes() != (folder / "audio/00007.wav").read_bytes()


def test_main_parses_arguments(script, tmp_path, capsys):
    script.main([str(tmp_path / "cli"), "--size", "10", "--seed", "3"])
    assert "10 rows" in capsys.readouterr().out
    with (tmp_path / "cli" / "manifest.csv").open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 10


def test_real_scans_show_the_rows_digit(script, tmp_path):
    """--scans sklearn: each image is a real scan of its row's digit (the nearest scikit-learn scan,
    once the image is shrunk back to 8x8, has the row's label)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    manifest = script.write_manifest(tmp_path, size=30, seed=0, scans="sklearn")
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    names = list(script.CLASS_NAMES)
    references = digits.images.reshape(len(digits.images), -1) * (255.0 / 16.0)
    for row in rows:
        with Image.open(tmp_path / row["image"]) as image:
            assert image.mode == "L" and image.size == (32, 32)
            small = np.asarray(image.resize((8, 8), Image.Resampling.BOX), dtype=np.float64).reshape(-1)
        nearest = int(np.argmin(((references - small) ** 2).sum(axis=1)))
        assert names[digits.target[nearest]] == row["label"]
