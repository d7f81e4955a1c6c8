"""Preprocessing settings read from the data (``auto``): images, audio, text, and eval reuse."""

from __future__ import annotations

import logging

import numpy as np
import soundfile
import torch
from manifest_samples import make_rows, write_csv
from PIL import Image

from mmrun.data import infer
from mmrun.data.manifest import ManifestDataModule
from mmrun.data.preprocess import audio, image, text

AUTO_AUDIO = {k: "auto" for k in ("sample_rate", "duration", "n_fft", "hop_length", "n_mels")}


def write_grey(path, height, width):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width), dtype=np.uint8), "L").save(path)


def write_tone(path, seconds, rate):
    soundfile.write(path, (0.3 * np.sin(np.arange(int(rate * seconds)) / 5.0)).astype(np.float32), rate)


def test_grey_images_stay_grey_at_their_native_size(tmp_path, caplog):
    paths = []
    for i in range(5):
        write_grey(tmp_path / f"{i}.png", 32, 28)
        paths.append(str(tmp_path / f"{i}.png"))
    with caplog.at_level(logging.INFO, logger="mmrun"):
        options = infer.infer_image(image.ImageOptions(channels="auto", size="auto"), paths)
    assert options.channels == "grayscale" and options.size == (32, 28) and options.shape == (1, 32, 28)
    assert "inferred dataset.image.channels=grayscale" in caplog.text
    assert "inferred dataset.image.size=[32, 28]" in caplog.text


def test_mixed_or_large_images_take_a_bounded_median_side(tmp_path):
    sides = [(40, 60), (50, 50), (30, 90)]  # shorter sides 40, 50, 30 -> median 40
    paths = []
    for i, (h, w) in enumerate(sides):
        Image.new("RGB", (w, h), (200, 10, 10)).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    mixed = infer.infer_image(image.ImageOptions(channels="auto", size="auto"), paths)
    assert mixed.channels == "rgb" and mixed.size == (40, 40)
    Image.new("RGB", (300, 200)).save(tmp_path / "big.png")
    large = infer.infer_image(image.ImageOptions(channels="rgb", size="auto"), [str(tmp_path / "big.png")])
    assert large.size == (infer.MAX_SIDE, infer.MAX_SIDE)


def test_audio_keeps_its_native_rate_and_almost_every_clip_whole(tmp_path):
    lengths = [0.4 + 0.01 * i for i in range(100)] + [3.0]  # one long outlier beyond the 99th percentile
    paths = []
    for i, seconds in enumerate(lengths):
        write_tone(tmp_path / f"{i}.wav", seconds, 8000)
        paths.append(str(tmp_path / f"{i}.wav"))
    options = infer.infer_audio(audio.AudioOptions(**AUTO_AUDIO), paths)
    assert options.sample_rate == 8000
    assert options.duration == 1.4  # 99% of the clips are at most 1.39 s, rounded up to 0.1 s
    assert (options.n_fft, options.hop_length, options.n_mels) == (200, 80, 40)  # 25 ms, 10 ms at 8 kHz


def test_high_rates_are_capped_and_set_values_win(tmp_path):
    write_tone(tmp_path / "a.wav", 0.5, 44100)
    options = infer.infer_audio(audio.AudioOptions(**{**AUTO_AUDIO, "n_mels": 32}), [str(tmp_path / "a.wav")])
    assert options.sample_rate == infer.MAX_RATE and options.n_mels == 32
    assert (options.n_fft, options.hop_length) == (400, 160)


def test_text_length_is_a_high_percentile_of_training_texts():
    texts = ["one two"] * 99 + [" ".join(["word"] * 500)]
    state = text.fit(texts, text.TextOptions(max_length="auto"))
    assert state["length"] == 2  # the one very long text does not pad every sample to 256
    assert text.fit(texts, text.TextOptions(max_length=64))["length"] == 64


def test_manifest_infers_and_eval_reuses_the_training_settings(tmp_path):
    rows = make_rows(tmp_path, 20)  # 12x16 RGB images, 0.1 s WAV at 8 kHz
    manifest = write_csv(tmp_path / "manifest.csv", rows)
    auto = dict(image={"channels": "auto", "size": "auto"}, audio=AUTO_AUDIO, text={"max_length": "auto"})
    trained = ManifestDataModule(path=str(manifest), cache_dir=str(tmp_path / "cache"), **auto)
    trained.setup()
    shapes = {m.name: m.shape for m in trained.spec.modalities}
    assert shapes["image"] == (3, 12, 16)
    assert shapes["sound"] == (40, 0.1 * 8000 // 80 + 1)
    # New files of another size are prepared as the training files were, not re-inferred.
    for i in range(20):
        Image.new("L", (50, 40), 128).save(tmp_path / "files" / f"{i}.png")
    new = write_csv(tmp_path / "new.csv", rows)
    evaluated = ManifestDataModule(path=str(new), cache_dir=str(tmp_path / "cache"), fitted=trained.spec.extra["fitted"],
                                   **auto)
    evaluated.setup()
    assert [m.shape for m in evaluated.spec.modalities] == [m.shape for m in trained.spec.modalities]
    assert evaluated.splits["test"]["image"].shape[1:] == torch.Size([3, 12, 16])


def test_a_prepared_cache_hit_restores_the_inferred_settings(tmp_path, caplog):
    manifest = write_csv(tmp_path / "manifest.csv", make_rows(tmp_path, 20))
    auto = dict(image={"channels": "auto", "size": "auto"}, audio=AUTO_AUDIO, cache_dir=str(tmp_path / "cache"))
    first = ManifestDataModule(path=str(manifest), **auto)
    first.setup()
    with caplog.at_level(logging.INFO, logger="mmrun"):
        second = ManifestDataModule(path=str(manifest), **auto)
        second.setup()
    assert "prepared tensors loaded" in caplog.text and "inferred" not in caplog.text
    assert second.options["image"] == first.options["image"] and second.options["image"].size == (12, 16)
    assert second.options["audio"].sample_rate == 8000


def test_odd_native_sides_round_to_a_multiple_of_four(tmp_path):
    write_grey(tmp_path / "a.png", 30, 18)
    options = infer.infer_image(image.ImageOptions(channels="auto", size="auto"), [str(tmp_path / "a.png")])
    assert options.size == (32, 20)
