"""Per-modality preprocessing: images, audio, text, numbers, categories."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from mmrun.data.preprocess import DecodeError, audio, augment, image, make_options, tabular, text
from mmrun.errors import ConfigError


def test_image_decode_resize_modes_and_channels(tmp_path):
    pixels = np.zeros((10, 20, 3), dtype=np.uint8)
    pixels[:, :10] = 200  # left half bright
    Image.fromarray(pixels).save(tmp_path / "a.png")
    crop = image.decode(str(tmp_path / "a.png"), image.ImageOptions(size=(8, 8), resize="crop"))
    pad = image.decode(str(tmp_path / "a.png"), image.ImageOptions(size=(8, 8), resize="pad"))
    stretch = image.decode(str(tmp_path / "a.png"), image.ImageOptions(size=(4, 6), resize="stretch"))
    gray = image.decode(str(tmp_path / "a.png"), image.ImageOptions(size=(8, 8), channels="grayscale"))
    assert crop.shape == (3, 8, 8) and crop.dtype == torch.uint8
    assert crop[:, :, 0].float().mean() > 150 and crop[:, :, -1].float().mean() < 50  # centre crop keeps both halves
    assert pad[:, 0].max() == 0 and pad[:, -1].max() == 0  # black bars above and below
    assert stretch.shape == (3, 4, 6) and gray.shape == (1, 8, 8)


def test_broken_images_raise_decode_errors(tmp_path):
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8) + 90).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    options = image.ImageOptions(size=(8, 8))
    with pytest.raises(DecodeError, match="corrupt or truncated"):
        image.decode(str(tmp_path / "truncated.png"), options)
    with pytest.raises(DecodeError, match="not an image"):
        image.decode(str(tmp_path / "junk.png"), options)


def test_image_statistics_and_augmentations():
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    state = image.fit(images, image.ImageOptions(size=(8, 8)))
    normalised = image.transform(images, state)
    assert normalised.mean((0, 2, 3)).abs().max() < 1e-4
    assert normalised.std((0, 2, 3)).sub(1).abs().max() < 1e-2
    torch.manual_seed(0)
    shifted = augment.augment_images(normalised, augment.AugmentOptions(crop_padding=2))
    flipped = augment.augment_images(normalised, augment.AugmentOptions(flip=True))
    assert shifted.shape == normalised.shape and not torch.equal(shifted, normalised)
    for before, after in zip(normalised, flipped):
        assert torch.equal(after, before) or torch.equal(after, before.flip(-1))
    assert not torch.equal(augment.augment_images(normalised, augment.AugmentOptions(noise=0.1)), normalised)


def test_image_options_refuse_bad_values():
    with pytest.raises(ConfigError, match="channels"):
        image.ImageOptions(channels="cmyk")
    with pytest.raises(ConfigError, match="has no key"):
        make_options(image.ImageOptions, {"sise": 3}, "image")
    assert image.ImageOptions(size=32).shape == (3, 32, 32)


def wav(path, seconds, rate, pitch=440.0):
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (0.5 * np.sin(2 * math.pi * pitch * t)).astype(np.float32), rate)


def test_audio_resample_crop_pad_and_log_mel(tmp_path):
    options = audio.AudioOptions(sample_rate=8000, duration=0.25, n_fft=256, hop_length=64, n_mels=32)
    wav(tmp_path / "long.wav", 1.0, 16000, pitch=1000.0)
    wav(tmp_path / "short.wav", 0.05, 8000, pitch=1000.0)
    long, short = (audio.decode(str(tmp_path / f), options) for f in ("long.wav", "short.wav"))
    assert long.shape == short.shape == options.shape == (32, 2000 // 64 + 1)
    bank = audio.mel_filterbank(256, 32, 8000, 0.0, 4000.0)
    peak_band = int(bank[round(1000 / 8000 * 256)].argmax())
    assert int(long[:, 5].argmax()) == peak_band  # the 1 kHz tone survives resampling from 16 kHz
    assert short[:, -3:].max() == pytest.approx(math.log(audio.LOG_FLOOR), abs=1e-3)  # padded with silence
    state = audio.fit(long.unsqueeze(0), options)
    assert len(state["mean"]) == 32 and audio.transform(long.unsqueeze(0), state).shape == (1, *options.shape)


def test_resample_keeps_a_tone_and_changes_length():
    t = torch.arange(16000) / 16000
    tone = torch.sin(2 * math.pi * 500 * t)
    down = audio.resample(tone, 16000, 8000)
    assert len(down) == 8000
    expected = torch.sin(2 * math.pi * 500 * torch.arange(8000) / 8000)
    assert (down - expected).abs().max() < 1e-3


def test_truncated_and_unreadable_audio(tmp_path):
    wav(tmp_path / "ok.wav", 0.1, 8000)
    data = (tmp_path / "ok.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.wav").write_bytes(b"RIFF" + b"\0" * 40)
    options = audio.AudioOptions(sample_rate=8000, duration=0.1, n_fft=64, hop_length=16, n_mels=8)
    with pytest.raises(DecodeError, match="truncated audio"):
        audio.decode(str(tmp_path / "cut.wav"), options)
    with pytest.raises(DecodeError, match="unreadable audio"):
        audio.decode(str(tmp_path / "junk.wav"), options)
    with pytest.raises(ConfigError, match="n_mels"):
        audio.AudioOptions(n_fft=16, n_mels=64)


def test_word_tokenizer_vocabulary_and_padding():
    options = text.TextOptions(vocab_size=5, min_frequency=2, max_length=4)
    state = text.fit(["The cat, the dog", "the cat"], options)
    assert state["vocab"] == ["<pad>", "<unk>", "the", "cat"]  # 'dog' and ',' are seen once
    ids = text.transform(["THE dog cat the cat", None], state)
    assert state["length"] == 4  # longest training text (5 tokens) capped at max_length
    assert ids.tolist() == [[2, 1, 3, 2], [0, 0, 0, 0]]
    assert text.vocab_size(state) == 4


def test_subword_tokenizer_round_trips_through_its_state():
    pytest.importorskip("tokenizers")
    options = text.TextOptions(tokenizer="subword", vocab_size=60, max_length=16)
    state = text.fit(["lower lowest newer newest", "wider widest"] * 5, options)
    assert isinstance(state["model"], str)
    ids = text.transform(["newest lowest", "zzz"], state)
    assert ids.shape == (2, state["length"]) and (ids[0] > 1).sum() >= 2 and ids[1, 0] == 1


def test_numeric_imputation_flags_and_standardisation():
    values = torch.tensor([[1.0, 10.0], [3.0, float("nan")], [5.0, 30.0]])
    state = tabular.fit_numeric(["a", "b"], values, standardize=True, missing_flags=True)
    assert state["flags"] == ["b"] and tabular.width(state) == 3
    out = tabular.transform_numeric(torch.tensor([[3.0, float("nan")], [float("nan"), 30.0]]), state)
    assert out[0].tolist() == pytest.approx([0.0, 0.0, 1.0])  # imputed with the mean, flagged
    assert out[1].tolist() == pytest.approx([0.0, 1.0, 0.0])
    with pytest.raises(ValueError):
        tabular.parse_number("abc")
    assert tabular.parse_number(" 2.5 ") == 2.5 and tabular.parse_number(None) is None


def test_categorical_ids_share_one_space_with_zero_for_unknown():
    state = tabular.fit_categorical(["user", "item"], [["u1", "u2", "u1"], ["a", "b", "c"]], min_frequency=1)
    assert tabular.categorical_vocab_size(state) == 1 + 2 + 3
    ids = tabular.transform_categorical([["u2", "u9", None], ["c", "a", "a"]], state)
    assert ids.tolist() == [[2, 5], [0, 3], [0, 3]]
    rare = tabular.fit_categorical(["user"], [["u1", "u2", "u1"]], min_frequency=2)
    assert rare["values"] == [["u1"]]


def test_spec_mask_hides_one_band_and_one_span_per_sample():
    torch.manual_seed(0)
    spectrograms = torch.randn(64, 40, 100) + 5.0  # no zeros before masking
    masked = augment.mask_spectrograms(spectrograms, 0.2)
    assert masked.shape == spectrograms.shape
    zero = masked == 0
    bands = zero.all(2).sum(1)  # whole bands masked, per sample
    frames = zero.all(1).sum(1)  # whole frames masked, per sample
    assert bands.max() <= 0.2 * 40 + 1e-6 and frames.max() <= 0.2 * 100 + 1e-6
    assert (bands > 0).float().mean() > 0.5 and (frames > 0).float().mean() > 0.5
    assert torch.equal(masked[~zero], spectrograms[~zero])  # nothing else changes
    assert augment.AugmentOptions(spec_mask=0.1).active
    with pytest.raises(ConfigError, match="spec_mask"):
        augment.AugmentOptions(spec_mask=1.5)


@pytest.mark.parametrize("cell", ["", "n/a", "NA", " N/A ", "null", "None", "nan", "#N/A", "<NA>"])
def test_missing_markers_in_a_numeric_column_are_missing_values(cell):
    from mmrun.data.preprocess.tabular import parse_number

    assert parse_number(cell) is None
    assert parse_number(" 2.5 ") == 2.5
    with pytest.raises(ValueError):
        parse_number("two")
