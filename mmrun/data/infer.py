"""Preprocessing settings read from the data: every ``auto`` in ``dataset.image/audio/text``.

A setting left at ``auto`` is decided from the training rows' files, before anything is
decoded, by reading file headers only (Pillow's ``Image.open`` without ``load``,
``soundfile.info``); at most ``SAMPLE`` files per kind are looked at, evenly spaced:

* ``image.channels``: ``grayscale`` when every image is single-channel (modes 1, L, LA, I,
  F), else ``rgb`` - grey stays grey, colour stays colour;
* ``image.size``: the native ``[height, width]`` (sides rounded up to a multiple of 4) when every
  image shares one and its sides lie in ``[MIN_SIDE, MAX_SIDE]``; otherwise a square side from the distribution (the median
  shorter side, rounded to a multiple of 4, within those bounds);
* ``audio.sample_rate``: the native rate when the files share one (the most common one
  otherwise), capped at ``MAX_RATE``;
* ``audio.duration``: the ``DURATION_QUANTILE`` quantile of the clip lengths, rounded up to
  0.1 s and capped at ``MAX_DURATION`` - long enough that almost no clip is cut;
* ``audio.n_fft``, ``hop_length``, ``n_mels``: a 25 ms window and a 10 ms hop at that rate
  (the usual speech front end, e.g. Kaldi's and Whisper's framing), 64 mel bands from 16 kHz
  up and 40 below (fewer FFT bins to share).

``text.max_length=auto`` is decided when the vocabulary is fitted (``preprocess.text.fit``).
Every inferred value is logged as ``inferred dataset.<key>=<value> (<why>)`` and any of them
can be set instead. The resolved options are saved with the fitted state, so evaluating a
checkpoint on new files prepares them exactly as the training files were.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
from collections import Counter
from dataclasses import replace

from mmrun.data.files import resolve_path
from mmrun.data.preprocess import high_quantile
from mmrun.data.table import Table

log = logging.getLogger("mmrun")
AUTO = "auto"
SAMPLE = 2000
MIN_SIDE, MAX_SIDE = 8, 64
MAX_RATE = 16000
DURATION_QUANTILE, MAX_DURATION = 0.99, 10.0
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def _spaced(items: list, limit: int = SAMPLE) -> list:
    """At most ``limit`` items, evenly spaced (deterministic, covers the whole list)."""
    if len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def _training_files(table: Table, columns: list[str], rows: list[int]) -> list[str]:
    base = table.path.resolve().parent
    paths = [resolve_path(table.rows[r][c], base) for c in columns for r in rows if table.rows[r][c] is not None]
    return _spaced([p for p in paths if os.path.isfile(p)])


def _image_headers(paths: list[str]) -> list[tuple[str, int, int]]:
    from PIL import Image

    headers = []
    for path in paths:
        try:
            with Image.open(path) as image:
                headers.append((image.mode, image.height, image.width))
        except Exception:  # unreadable files are reported per row by validation
            continue
    return headers


def _audio_headers(paths: list[str]) -> list[tuple[int, float]]:
    import soundfile

    headers = []
    for path in paths:
        try:
            info = soundfile.info(path)
        except Exception:  # unreadable files are reported per row by validation
            continue
        if info.samplerate > 0:
            headers.append((int(info.samplerate), info.frames / info.samplerate))
    return headers


def infer_image(options, paths: list[str]):
    """``ImageOptions`` with ``channels`` and ``size`` decided from the images' headers."""
    if AUTO not in (options.channels, options.size):
        return options
    headers = _image_headers(paths)
    if not headers:  # nothing readable: validation will name the files
        return replace(options, channels="rgb" if options.channels == AUTO else options.channels,
                       size=(MAX_SIDE, MAX_SIDE) if options.size == AUTO else options.size)
    changes = {}
    if options.channels == AUTO:
        grey = all(mode in GREY_MODES for mode, _, _ in headers)
        changes["channels"] = "grayscale" if grey else "rgb"
        why = "every image has one channel" if grey else "the images have colour channels"
        log.info("inferred dataset.image.channels=%s (%s; %d images read)", changes["channels"], why, len(headers))
    if options.size == AUTO:
        sizes = Counter((h, w) for _, h, w in headers)
        (height, width), _ = sizes.most_common(1)[0]
        if len(sizes) == 1 and MIN_SIDE <= min(height, width) and max(height, width) <= MAX_SIDE:
            # Sides rounded up to a multiple of 4, so that patch and pooling sizes divide them (28 stays 28).
            changes["size"] = (4 * math.ceil(height / 4), 4 * math.ceil(width / 4))
            why = "the native size of every image" + ("" if changes["size"] == (height, width) else
                                                      f" ({height}x{width}) rounded up to a multiple of 4")
        else:
            side = statistics.median(min(h, w) for _, h, w in headers)
            side = int(min(MAX_SIDE, max(MIN_SIDE, 4 * round(side / 4))))
            changes["size"] = (side, side)
            why = (f"the images' median shorter side, within [{MIN_SIDE}, {MAX_SIDE}]" if len(sizes) > 1
                   else f"native {height}x{width} brought within [{MIN_SIDE}, {MAX_SIDE}]")
        log.info("inferred dataset.image.size=%s (%s)", list(changes["size"]), why)
    return replace(options, **changes)


def mel_settings(sample_rate: int) -> dict[str, int]:
    """25 ms window, 10 ms hop, 64 mel bands from 16 kHz up and 40 below."""
    n_fft = max(16, round(0.025 * sample_rate))
    return {"n_fft": n_fft, "hop_length": max(1, round(0.010 * sample_rate)),
            "n_mels": min(64 if sample_rate >= 16000 else 40, n_fft // 2 + 1)}


def infer_audio(options, paths: list[str]):
    """``AudioOptions`` with rate, duration and mel framing decided from the files' headers."""
    keys = ("sample_rate", "duration", "n_fft", "hop_length", "n_mels")
    if all(getattr(options, k) != AUTO for k in keys):
        return options
    headers = _audio_headers(paths)
    changes: dict = {}
    if options.sample_rate == AUTO:
        rates = Counter(rate for rate, _ in headers)
        native = rates.most_common(1)[0][0] if rates else MAX_RATE
        changes["sample_rate"] = min(native, MAX_RATE)
        why = ("the files' native rate" if len(rates) == 1 else "the most common rate") if rates else "no readable file"
        if native > MAX_RATE:
            why += f" {native} Hz, capped at {MAX_RATE}"
        log.info("inferred dataset.audio.sample_rate=%d (%s)", changes["sample_rate"], why)
    if options.duration == AUTO:
        lengths = [seconds for _, seconds in headers]
        longest = high_quantile(lengths, DURATION_QUANTILE) if lengths else 1.0
        changes["duration"] = min(MAX_DURATION, max(0.1, math.ceil(longest * 10 - 1e-9) / 10))
        log.info("inferred dataset.audio.duration=%.1f (%d%% of %d clips are at most %.2f s; capped at %.0f s)",
                 changes["duration"], round(100 * DURATION_QUANTILE), len(lengths), longest, MAX_DURATION)
    rate = changes.get("sample_rate", options.sample_rate)
    framing = {k: v for k, v in mel_settings(rate).items() if getattr(options, k) == AUTO}
    if framing:
        log.info("inferred %s (25 ms window, 10 ms hop at %d Hz)",
                 ", ".join(f"dataset.audio.{k}={v}" for k, v in framing.items()), rate)
    return replace(options, **changes, **framing)


def infer_file_options(options: dict, table: Table, modalities, train_rows: list[int]) -> dict:
    """``options`` (by kind) with every ``auto`` image/audio setting decided from the training files."""
    resolved = dict(options)
    for kind, infer in (("image", infer_image), ("audio", infer_audio)):
        columns = [m.columns[0] for m in modalities if m.kind == kind]
        if columns:  # a kind the data lacks keeps its settings: nothing decodes with them
            resolved[kind] = infer(options[kind], _training_files(table, columns, train_rows))
    return resolved

