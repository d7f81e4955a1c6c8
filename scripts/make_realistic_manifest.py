"""Write a small realistic-looking multimodal table: digit scans, spoken digits, notes, a number.

    python scripts/make_realistic_manifest.py realistic --size 1800 --seed 0
    mmrun train dataset=manifest dataset.path=realistic/manifest.csv

Unlike ``make_demo_manifest.py`` (clean data built from the synthetic dataset's views), this
mimics a small real dataset as a user might have it (in the style of AV-MNIST / the Free
Spoken Digit Dataset, which we cannot download), so the defaults can be measured on data
that is messy in the usual ways. Ten balanced classes, the labels ``zero`` .. ``nine``;
each row holds (``manifest.csv`` columns ``image,audio,text,number,label,split``):

* ``image``: ``images/00001.png``, a 32x32 greyscale PNG of a handwritten-looking digit,
  light on dark. Each of 24 "writers" has a style (slant, pen width, size, and either
  jittered pen strokes or the scalable default font of Pillow >= 10.1 with a thickened
  outline); every sample adds a random affine distortion (rotation +-15 degrees, scale,
  shear, shift), pen-width change, blur, ink and paper intensity, a background gradient,
  pixel noise and now and then a scratch. Linear models on the pixels are good, not perfect.
* ``audio``: ``audio/00001.wav``, mono 16-bit PCM at 8 kHz, 0.3-1.4 s: the digit "spoken" by
  a source-filter synthesiser. Every digit is its phoneme sequence (``six`` = s-ih-k-s, ...):
  vowels, glides and nasals are a glottal pulse train at the speaker's pitch through three
  time-varying formant resonators, fricatives and stop bursts band-passed noise. Six
  speakers differ in pitch (80-250 Hz), vocal-tract length (formant scale), tempo and
  breathiness; each recording varies tempo, pitch contour, formants, the leading and trailing
  silence, the loudness, and has background noise (sometimes with mains hum) at 5-30 dB SNR;
  a few are clipped or cut off.
* ``text``: a short noisy annotator note from a shared vocabulary ("noisy background, speaker
  two", "faint stroke", "prob sevn?"). About 40% mention the class - often misspelled, as a
  numeral, or with a confusable digit, and 15% of the hints are wrong; the rest describe the
  recording or the scan (and then agree with them: "noisy background" when the SNR is low).
* ``number``: the writing time in seconds: a class-dependent mean (digits with more strokes
  take longer) times a writer speed and log-normal noise; about 3% of the cells are empty.
* ``split``: train/val/test, 70/15/15 and balanced per class (1260/270/270 for 1800 rows).

``--scans sklearn`` takes the images from real handwriting instead: scikit-learn's copy of
the UCI optical digits (``sklearn.datasets.load_digits``: 1,797 scans of 43 writers, 8x8 with
17 grey levels, shipped with scikit-learn), each upsampled to 32x32 (bicubic), so the table
pairs real scans with the synthetic recordings. A class's scans are used in a seeded order
and reused only when the table has more rows of the class than scikit-learn has scans (at
1,800 rows, 12 scans of the digits 0, 2, 7 and 8 appear twice, possibly in two splits).

How hard it is (``--seed 0``, 1800 rows, test accuracy of a logistic regression fitted on the
training rows): pixels about 0.76; log-spectrogram band statistics of the audio 0.85; TF-IDF
of the notes 0.30; the number alone 0.19; all four together 0.94-0.96 (chance: 0.10).

Everything follows from ``--seed`` (row ``i`` has its own random stream, so the rows do
not depend on each other or on ``--size``).
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import math
import time
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from scipy import signal

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COLUMNS = ("image", "audio", "text", "number", "label", "split")
SAMPLE_RATE = 8000
IMAGE_SIZE = 32
CANVAS = 64  # digits are drawn at twice the size, then distorted and shrunk
N_SPEAKERS = 6
N_WRITERS = 24
SPLIT_FRACTIONS = {"val": 0.15, "test": 0.15}
MISSING_NUMBER = 0.03

# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float, n: int = 18) -> list[tuple]:
    """Points of an elliptic arc in the unit square (y down, angles in degrees, 0 = right, 90 = down)."""
    angles = np.radians(np.linspace(start, stop, n))
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


# Each digit as pen strokes (polylines) in the unit square.
STROKES = {
    0: [_arc(0.5, 0.5, 0.22, 0.36, -90, 275, 28)],
    1: [[(0.38, 0.25), (0.52, 0.12), (0.52, 0.88)]],
    2: [_arc(0.49, 0.32, 0.2, 0.19, 190, 380) + [(0.27, 0.88), (0.75, 0.88)]],
    3: [_arc(0.48, 0.3, 0.19, 0.18, -160, 90) + _arc(0.48, 0.68, 0.21, 0.2, -90, 160)],
    4: [[(0.62, 0.88), (0.62, 0.12), (0.24, 0.64), (0.78, 0.64)]],
    5: [[(0.72, 0.12), (0.33, 0.12), (0.3, 0.46)] + _arc(0.49, 0.65, 0.22, 0.22, -125, 155)],
    6: [[(0.66, 0.12), (0.46, 0.3)] + _arc(0.5, 0.67, 0.2, 0.2, 200, 560, 24)],
    7: [[(0.26, 0.14), (0.74, 0.14), (0.42, 0.88)]],
    8: [_arc(0.5, 0.3, 0.16, 0.17, 90, 450, 20), _arc(0.5, 0.68, 0.2, 0.2, -90, 270, 20)],
    9: [_arc(0.5, 0.32, 0.19, 0.19, 0, 360, 20), [(0.69, 0.32), (0.62, 0.88)]],
}


@functools.lru_cache(maxsize=None)
def _font(size: int):
    """Pillow's scalable default font (Pillow >= 10.1 with FreeType), or None."""
    try:
        font = ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return None
    return font if isinstance(font, ImageFont.FreeTypeFont) else None


def make_writers(rng: np.random.Generator) -> list[dict]:
    """Handwriting styles: slant, pen width, size, glyph source and speed (for the writing time)."""
    writers = []
    for w in range(N_WRITERS):
        writers.append({
            "font": bool(_font(40)) and w % 3 == 0,  # a third of the writers print like the font
            "slant": rng.uniform(-0.2, 0.2),
            "width": rng.uniform(3.0, 7.0),
            "scale": rng.uniform(0.85, 1.1),
            "wobble": rng.uniform(0.005, 0.03),
            "speed": math.exp(rng.normal(0, 0.25)),
        })
    return writers


def _wobble(points: list[tuple], amount: float, rng: np.random.Generator) -> np.ndarray:
    """Points moved by a smooth random displacement plus a little per-point jitter."""
    p = np.asarray(points, dtype=float)
    s = np.linspace(0, 1, len(p))[:, None]
    freq = rng.uniform(0.5, 2.0, (1, 2))
    phase = rng.uniform(0, 2 * math.pi, (1, 2))
    p = p + amount * np.sin(2 * math.pi * freq * s + phase) + rng.normal(0, amount / 4, p.shape)
    return p + rng.normal(0, 0.02, (1, 2))  # the whole stroke off by a little


def draw_glyph(digit: int, writer: dict, rng: np.random.Generator) -> Image.Image:
    """The digit drawn white on black on a ``CANVAS``-sized canvas, before distortion."""
    canvas = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(canvas)
    width = max(1, int(round(writer["width"] * rng.uniform(0.7, 1.3))))
    if writer["font"]:
        font = _font(int(rng.integers(40, 56)))
        draw.text((CANVAS / 2, CANVAS / 2), str(digit), fill=255, font=font, anchor="mm",
                  stroke_width=max(0, width // 2 - 1), stroke_fill=255)
        return canvas
    for stroke in STROKES[digit]:
        if digit == 1 and rng.random() < 0.5:
            stroke = stroke[1:]  # a 1 without its flag
        points = _wobble(stroke, writer["wobble"], rng) * CANVAS
        xy = [tuple(p) for p in points]
        draw.line(xy, fill=255, width=width, joint="curve")
        r = width / 2
        for x, y in (xy[0], xy[-1]):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    if digit == 7 and rng.random() < 0.25:  # a crossed seven
        y = rng.uniform(0.45, 0.55) * CANVAS
        draw.line([(0.42 * CANVAS, y), (0.68 * CANVAS, y)], fill=255, width=width)
    return canvas


def distort(canvas: Image.Image, writer: dict, rng: np.random.Generator) -> Image.Image:
    """A random affine transform (rotation, scale, shear with the writer's slant, shift) of the canvas."""
    angle = math.radians(rng.uniform(-15, 15))
    scale = writer["scale"] * rng.uniform(0.85, 1.12)
    sx, sy = scale * rng.uniform(0.95, 1.05), scale * rng.uniform(0.95, 1.05)
    shear = writer["slant"] + rng.uniform(-0.1, 0.1)
    shift = rng.uniform(-2, 2, 2) * CANVAS / IMAGE_SIZE
    c = CANVAS / 2
    rotate = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    forward = rotate @ np.array([[1.0, -shear], [0.0, 1.0]]) @ np.diag([sx, sy])
    inverse = np.linalg.inv(forward)
    offset = np.array([c, c]) - inverse @ (np.array([c, c]) + shift)
    data = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])
    return canvas.transform((CANVAS, CANVAS), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)


def render_image(digit: int, writer: dict, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """A 32x32 greyscale scan of the digit and what an annotator could notice about it."""
    canvas = distort(draw_glyph(digit, writer, rng), writer, rng)
    small = canvas.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)
    small = small.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.0)))
    ink = np.asarray(small, dtype=np.float32) / 255.0
    paper, pen = rng.uniform(0, 60), rng.uniform(130, 255)
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE] / IMAGE_SIZE
    gradient = rng.uniform(-25, 25) * (xx - 0.5) + rng.uniform(-25, 25) * (yy - 0.5)
    pixels = paper + gradient + (pen - paper) * ink + rng.normal(0, rng.uniform(2, 15), ink.shape)
    scratch = rng.random() < 0.08
    if scratch:
        mark = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
        ends = rng.uniform(0, IMAGE_SIZE, 4)
        ImageDraw.Draw(mark).line(list(ends), fill=255, width=int(rng.integers(1, 3)))
        pixels = pixels + rng.uniform(60, 160) * np.asarray(mark, dtype=np.float32) / 255.0
    image = Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))  # 2-D uint8: mode L
    return image, {"faint": pen - paper < 110, "scratch": scratch}


# --------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------

# Formants (F1, F2, F3 in Hz) of an adult male voice; a speaker scales them.
VOWELS = {
    "iy": (270, 2290, 3010), "ih": (390, 1990, 2550), "eh": (530, 1840, 2480), "aa": (730, 1090, 2440),
    "ah": (640, 1190, 2390), "ao": (570, 840, 2410), "ow": (450, 900, 2350), "uw": (300, 870, 2240),
    "er": (490, 1350, 1690), "ax": (500, 1500, 2500), "w": (290, 610, 2150), "r": (400, 1150, 1600),
    "n": (250, 1450, 2550), "v": (300, 1400, 2400), "z": (300, 1600, 2600),
}
# Segments: ("V", start formants, end formants, seconds, loudness) voiced;
# ("N", ...) nasal (voiced, weak, wide upper formants); ("F", low Hz, high Hz, seconds, noise
# loudness, voicing) fricative; ("S", low Hz, high Hz, closure seconds) stop (closure + burst).
S = ("F", 2800, 3950, 0.11, 0.35, 0.0)
F = ("F", 900, 3950, 0.09, 0.1, 0.0)
TH = ("F", 1400, 3950, 0.09, 0.07, 0.0)
V_ = ("F", 1000, 3000, 0.07, 0.04, 0.25)
Z = ("F", 3000, 3950, 0.09, 0.2, 0.3)
WORDS = {
    0: [Z, ("V", "ih", "ih", 0.08, 1.0), ("V", "ih", "er", 0.09, 0.9), ("V", "ow", "uw", 0.18, 1.0)],
    1: [("V", "w", "ah", 0.09, 0.8), ("V", "ah", "ah", 0.14, 1.0), ("N", "n", "n", 0.1, 0.3)],
    2: [("S", 2500, 3950, 0.05), ("V", "ih", "uw", 0.06, 0.9), ("V", "uw", "uw", 0.2, 1.0)],
    3: [TH, ("V", "r", "r", 0.06, 0.7), ("V", "r", "iy", 0.06, 0.9), ("V", "iy", "iy", 0.16, 1.0)],
    4: [F, ("V", "ao", "ao", 0.16, 1.0), ("V", "ao", "er", 0.12, 0.9)],
    5: [F, ("V", "aa", "aa", 0.1, 1.0), ("V", "aa", "iy", 0.15, 1.0), V_],
    6: [S, ("V", "ih", "ih", 0.1, 1.0), ("S", 1200, 2600, 0.05), S],
    7: [S, ("V", "eh", "eh", 0.1, 1.0), V_, ("V", "ax", "ax", 0.06, 0.8), ("N", "n", "n", 0.09, 0.3)],
    8: [("V", "eh", "eh", 0.1, 1.0), ("V", "eh", "iy", 0.14, 1.0), ("S", 2500, 3950, 0.06)],
    9: [("N", "n", "n", 0.08, 0.35), ("V", "aa", "aa", 0.1, 1.0), ("V", "aa", "iy", 0.14, 1.0),
        ("N", "n", "n", 0.1, 0.3)],
}
BANDWIDTHS = {"V": (70.0, 100.0, 150.0), "N": (60.0, 350.0, 500.0)}
HOP = 80  # samples between formant updates (10 ms)


def make_speakers(rng: np.random.Generator) -> list[dict]:
    """Six speakers: pitch, formant scale (vocal-tract length), tempo, breathiness, microphone."""
    pitches = rng.permutation(np.linspace(85, 240, N_SPEAKERS))
    speakers = []
    for pitch in pitches:
        speakers.append({
            "pitch": float(pitch) * rng.uniform(0.95, 1.05),
            "formants": 0.88 + 0.3 * (pitch - 85) / 155 * rng.uniform(0.8, 1.1),
            "tempo": rng.uniform(0.85, 1.3),
            "breath": rng.uniform(0.02, 0.12),
            "mic": (rng.uniform(60, 300), rng.uniform(2800, 3900)),  # pass band of their microphone
        })
    return speakers


def _bandpass(low: float, high: float) -> np.ndarray:
    """A band-pass filter (second-order sections) for [low, high] Hz, edges rounded to 50 Hz."""
    return _butter(int(low // 50 * 50), min(int(high // 50 * 50), SAMPLE_RATE // 2 - 50))


@functools.lru_cache(maxsize=None)
def _butter(low: int, high: int) -> np.ndarray:
    return signal.butter(4, [low, high], btype="band", fs=SAMPLE_RATE, output="sos")


def _noise_band(n: int, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of noise band-passed to [low, high] Hz with unit RMS and soft edges."""
    if n <= 0:
        return np.zeros(0)
    band = signal.sosfilt(_bandpass(low, high), rng.standard_normal(n + 64))[64:]
    band /= np.sqrt(np.mean(band ** 2)) + 1e-9
    ramp = min(n // 3, int(0.015 * SAMPLE_RATE))
    if ramp > 0:
        window = np.sin(np.linspace(0, math.pi / 2, ramp)) ** 2
        band[:ramp] *= window
        band[-ramp:] *= window[::-1]
    return band


def formant_filter(excitation: np.ndarray, formants: np.ndarray, bandwidths: np.ndarray) -> np.ndarray:
    """``excitation`` through three cascaded resonators whose frequencies change every ``HOP`` samples.

    Short-time filtering: Hann frames of 32 ms at half overlap (which sum to one) are each
    multiplied, zero-padded, by the resonators' response at the frame's centre and added back.
    """
    win, hop, nfft = 256, 128, 512
    n = len(excitation)
    count = n // hop + 2
    padded = np.concatenate([np.zeros(hop), excitation, np.zeros(count * hop + win - n)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, win)[::hop][:count]
    frames = frames * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win))
    centres = np.arange(count) * hop + win / 2 - hop  # in samples of ``excitation``
    positions = np.arange(len(formants)) * HOP + HOP / 2
    f = np.stack([np.interp(centres, positions, formants[:, j]) for j in range(3)], 1)[:, None, :]
    b = np.stack([np.interp(centres, positions, bandwidths[:, j]) for j in range(3)], 1)[:, None, :]
    r = np.exp(-np.pi * b / SAMPLE_RATE)
    c = 2 * r * np.cos(2 * np.pi * np.minimum(f, 3800) / SAMPLE_RATE)
    z = np.exp(-1j * np.pi * np.arange(nfft // 2 + 1) / (nfft // 2))[None, :, None]
    response = np.prod((1 - c + r ** 2) / (1 - c * z + r ** 2 * z ** 2), axis=2)  # unit gain at 0 Hz
    out = np.fft.irfft(np.fft.rfft(frames, nfft) * response, nfft)
    result = np.zeros(count * hop + nfft)
    for k in range(count):
        result[k * hop:k * hop + nfft] += out[k]
    return result[hop:hop + n]


def speak(digit: int, speaker: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A recording of ``digit`` by ``speaker`` and what an annotator could notice about it."""
    sr = SAMPLE_RATE
    tempo = speaker["tempo"] * rng.uniform(0.8, 1.5)
    scale = speaker["formants"] * rng.uniform(0.95, 1.05)
    # Weak fricatives (f, th, v) are sometimes swallowed.
    segments = [seg for seg in WORDS[digit] if not (seg[0] == "F" and seg[4] <= 0.1 and rng.random() < 0.15)]
    # Per frame: formants, bandwidths and voicing; per sample: the noise (fricatives, bursts).
    formants, bandwidths, voicing, noise = [], [], [], []
    for seg in segments:
        if seg[0] in ("V", "N"):
            kind, start, end, seconds, loud = seg
            frames = max(2, int(round(seconds * tempo * rng.uniform(0.85, 1.15) * sr / HOP)))
            a = np.array(VOWELS[start]) * scale * rng.uniform(0.9, 1.1, 3)
            b = np.array(VOWELS[end]) * scale * rng.uniform(0.9, 1.1, 3)
            s = np.linspace(0, 1, frames)[:, None]
            formants.append(a + (b - a) * s)
            bandwidths.append(np.tile(BANDWIDTHS[kind], (frames, 1)))
            voicing.append(np.full(frames, loud * rng.uniform(0.8, 1.2)))
            noise.append(np.zeros(frames * HOP))
        elif seg[0] == "F":
            _, low, high, seconds, loud, voiced = seg
            frames = max(2, int(round(seconds * tempo * rng.uniform(0.85, 1.15) * sr / HOP)))
            formants.append(np.tile(np.array(VOWELS["z"]) * scale, (frames, 1)))
            bandwidths.append(np.tile(BANDWIDTHS["V"], (frames, 1)))
            voicing.append(np.full(frames, voiced))
            noise.append(loud * rng.uniform(0.7, 1.3) * _noise_band(frames * HOP, low * scale, high, rng))
        else:  # stop: silent closure, then a burst and a little aspiration
            _, low, high, closure = seg
            frames = max(3, int(round((closure * tempo + 0.03) * sr / HOP)))
            formants.append(np.tile(np.array(VOWELS["ax"]) * scale, (frames, 1)))
            bandwidths.append(np.tile(BANDWIDTHS["V"], (frames, 1)))
            voicing.append(np.zeros(frames))
            burst = np.zeros(frames * HOP)
            n = int(0.03 * sr)
            loud = 0.3 * rng.uniform(0.6, 1.4)
            burst[-n:] = loud * _noise_band(n, low * scale, high, rng) * np.exp(-np.arange(n) / (0.01 * sr))
            noise.append(burst)
    formants = np.concatenate(formants)
    bandwidths = np.concatenate(bandwidths)
    voicing = np.concatenate(voicing)
    frames = len(voicing)
    kernel = np.ones(3) / 3  # coarticulation: formant and voicing changes take ~30 ms
    formants = np.stack([np.convolve(np.pad(f, 1, mode="edge"), kernel, "valid") for f in formants.T], 1)
    voicing = np.convolve(np.pad(voicing, 1, mode="edge"), kernel, "valid")
    n = frames * HOP
    # Glottal source: pulses at a pitch that falls over the word, with jitter, then a spectral tilt.
    f0 = speaker["pitch"] * rng.uniform(0.9, 1.1) * np.linspace(rng.uniform(1.0, 1.15), rng.uniform(0.8, 0.95), n)
    f0 *= 1 + 0.01 * np.convolve(rng.standard_normal(n), np.ones(200) / 14, "same")
    phase = np.cumsum(f0 / sr)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    source = signal.lfilter([1.0], [1.0, -1.9, 0.9025], pulses)  # two poles at 0.95: -12 dB/octave
    source -= np.convolve(source, np.ones(80) / 80, "same")
    source += speaker["breath"] * rng.uniform(0.5, 1.5) * rng.standard_normal(n) * np.std(source)
    gain = np.interp(np.arange(n), np.arange(frames) * HOP + HOP / 2, voicing)
    voiced = formant_filter(source * gain, formants, bandwidths)
    voiced = np.diff(voiced, prepend=0.0)  # radiation at the lips: +6 dB/octave
    voiced /= np.sqrt(np.mean(voiced[gain > 0.5] ** 2)) + 1e-9 if np.any(gain > 0.5) else 1.0
    speech = voiced + np.concatenate(noise)
    fade = min(n // 4, int(0.02 * sr))
    speech[:fade] *= np.linspace(0, 1, fade)
    speech[-fade:] *= np.linspace(1, 0, fade)
    # Silence around the word, then trimmed (a few recordings are cut off) to 0.3-1.4 s.
    before, after = (int(rng.uniform(0.04, 0.36) * sr) for _ in range(2))
    wave = np.concatenate([np.zeros(before), speech, np.zeros(after)])
    if rng.random() < 0.3:  # a reverberant room
        rt60 = rng.uniform(0.1, 0.4)
        t = np.arange(int(rt60 * sr)) / sr
        room = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60) * rng.uniform(0.05, 0.2)
        room[0] = 1.0
        wave = signal.fftconvolve(wave, room)[:len(wave)]
    cut = False
    if len(wave) > 1.4 * sr:
        wave = wave[:int(1.4 * sr)]
        cut = before + len(speech) > len(wave)
    if rng.random() < 0.04:  # the recorder stopped early
        wave, cut = wave[:int(len(wave) * rng.uniform(0.6, 0.85))], True
    if len(wave) < 0.3 * sr:
        wave = np.concatenate([wave, np.zeros(int(0.3 * sr) - len(wave))])
    # Background: coloured noise (and sometimes mains hum) at 5-30 dB below the speech.
    snr = rng.uniform(5, 30)
    speech_power = np.mean(speech ** 2)
    background = signal.lfilter([1.0], [1.0, -rng.uniform(0.0, 0.95)], rng.standard_normal(len(wave)))
    hum = rng.random() < 0.2
    if hum:
        t = np.arange(len(wave)) / sr
        mains = rng.choice([50.0, 60.0])
        buzz = 0.0
        for h in (1, 2, 3):  # the mains frequency and two harmonics
            buzz = buzz + rng.uniform(1, 3) / h * np.sin(2 * math.pi * h * mains * t + rng.uniform(0, 6))
        background += buzz
    background *= math.sqrt(speech_power / 10 ** (snr / 10) / (np.mean(background ** 2) + 1e-12))
    wave = wave + background
    # The microphone's pass band and a per-recording tilt (distance, angle, gain settings).
    low, high = speaker["mic"]
    wave = signal.sosfilt(_bandpass(low * rng.uniform(0.8, 1.25), high * rng.uniform(0.9, 1.03)), wave)
    wave = signal.lfilter([1.0, -rng.uniform(-0.5, 0.5)], [1.0], wave)
    peak = rng.uniform(0.05, 0.95) if rng.random() > 0.03 else rng.uniform(1.1, 1.6)  # 3% clip
    wave = np.clip(wave * peak / (np.max(np.abs(wave)) + 1e-9), -1, 1)
    return wave.astype(np.float32), {"snr": snr, "cut": cut, "hum": hum, "quiet": peak < 0.15,
                                     "clipped": peak > 1}


# --------------------------------------------------------------------------------------------
# Notes and numbers
# --------------------------------------------------------------------------------------------

NUMBER_WORDS = ("one", "two", "three", "four", "five", "six")
CONFUSABLE = {0: (6, 8), 1: (7, 4), 2: (7, 3), 3: (8, 5), 4: (9, 1), 5: (6, 9), 6: (0, 5), 7: (1, 2),
              8: (3, 0), 9: (4, 5)}
HINTS = ("sounds like {w}", "{w}?", "prob {w}", "looks like a {d}", "i think {w}", "{w} or {o}",
         "writer said {w}", "maybe {d}", "{w}", "label {w} checked", "heard {w}", "{d} (unclear)")
GENERIC = ("clear sample", "ok", "checked", "good", "looks fine", "n/a", "-", "second take", "unsure",
           "fine", "double checked", "re-recorded", "hard to tell", "needs review", "good quality",
           "clear", "reviewed", "no issues")
NOISY = ("noisy background", "background noise", "hiss", "noisy", "lots of noise")
FAINT = ("faint stroke", "faint", "light ink", "hard to read")
CUT = ("cut off", "clipped at end", "truncated")
KEYS = "qwertyuiopasdfghjklzxcvbnm"


def misspell(word: str, rng: np.random.Generator) -> str:
    """A typo: a letter dropped, doubled, swapped with the next, or replaced."""
    if len(word) < 3:
        return word
    i = int(rng.integers(1, len(word) - 1))
    kind = rng.integers(4)
    if kind == 0:
        return word[:i] + word[i + 1:]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    if kind == 2:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + KEYS[int(rng.integers(len(KEYS)))] + word[i + 1:]


def write_note(digit: int, speaker: int, image_facts: dict, audio_facts: dict, rng: np.random.Generator) -> str:
    """A short annotator note: sometimes a (possibly wrong or misspelled) hint, mostly remarks."""
    parts = []
    if rng.random() < 0.4:
        said = digit if rng.random() < 0.85 else int(rng.choice(CONFUSABLE[digit]))
        other = int(rng.choice(CONFUSABLE[said]))
        word = CLASS_NAMES[said] if rng.random() > 0.35 else misspell(CLASS_NAMES[said], rng)
        hint = str(rng.choice(HINTS))
        if "{o}" in hint and rng.random() < 0.5:
            hint = "{o} or {w}"
        parts.append(hint.format(w=word, d=said, o=CLASS_NAMES[other]))
    if audio_facts["snr"] < 10 and rng.random() < 0.5:
        parts.append(str(rng.choice(NOISY)))
    if image_facts["faint"] and rng.random() < 0.4:
        parts.append(str(rng.choice(FAINT)))
    if image_facts["scratch"] and rng.random() < 0.5:
        parts.append("smudged" if rng.random() < 0.5 else "scratch on scan")
    if audio_facts["cut"] and rng.random() < 0.5:
        parts.append(str(rng.choice(CUT)))
    if audio_facts["hum"] and rng.random() < 0.4:
        parts.append("hum")
    if audio_facts["quiet"] and rng.random() < 0.4:
        parts.append("low volume")
    if audio_facts["clipped"] and rng.random() < 0.5:
        parts.append("distorted")
    if rng.random() < 0.35:
        name = NUMBER_WORDS[speaker]
        parts.append(str(rng.choice([f"speaker {name}", f"spk {speaker + 1}", f"speaker #{speaker + 1}"])))
    if not parts or rng.random() < 0.3:
        parts.append(str(rng.choice(GENERIC)))
    order = rng.permutation(len(parts))
    note = str(rng.choice([", ", "; ", " ", ". "])).join(parts[i] for i in order)
    style = rng.random()
    return note.upper() if style < 0.04 else note.capitalize() if style < 0.35 else note


# Mean writing time (seconds) per digit: more pen strokes and turns take longer.
WRITING_TIME = (1.9, 1.0, 1.7, 2.2, 2.0, 2.3, 1.6, 1.4, 2.6, 1.8)


def writing_time(digit: int, writer: dict, rng: np.random.Generator) -> float:
    return WRITING_TIME[digit] * writer["speed"] * math.exp(rng.normal(0, 0.3))


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def labels_and_splits(size: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Balanced labels in a random order and a 70/15/15 train/val/test split balanced per class."""
    rng = np.random.default_rng([seed, 2**31])
    labels = rng.permutation(np.arange(size) % len(CLASS_NAMES))
    splits = ["train"] * size
    rows = [rng.permutation(np.flatnonzero(labels == c)) for c in range(len(CLASS_NAMES))]
    taken = [0] * len(CLASS_NAMES)
    for split, fraction in SPLIT_FRACTIONS.items():
        quota = [int(len(r) * fraction) for r in rows]
        # The rows left over by rounding down go to classes in a random order.
        for c in rng.permutation(len(rows))[:int(round(fraction * size)) - sum(quota)]:
            quota[c] += 1
        for c, r in enumerate(rows):
            for i in r[taken[c]:taken[c] + quota[c]]:
                splits[int(i)] = split
            taken[c] += quota[c]
    return labels, splits


def real_scans(labels: np.ndarray, seed: int) -> list[Image.Image]:
    """One real 32x32 scan per row, of the row's digit (scikit-learn's UCI optical digits)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng([seed, 2**31 + 2])
    order = {c: rng.permutation(np.flatnonzero(digits.target == c)) for c in range(len(CLASS_NAMES))}
    used = dict.fromkeys(order, 0)
    scans = []
    for digit in labels:
        pool = order[int(digit)]
        pixels = digits.images[pool[used[int(digit)] % len(pool)]] * (255.0 / 16.0)
        used[int(digit)] += 1
        small = Image.fromarray(np.round(pixels).astype(np.uint8))
        scans.append(small.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC))
    return scans


def make_row(i: int, digit: int, seed: int, writers: list[dict], speakers: list[dict], folder: Path,
             scan: Image.Image | None = None) -> tuple[str, str]:
    """Write row ``i``'s image (``scan`` when given, else rendered) and recording; its note and writing time."""
    rng = np.random.default_rng([seed, i])
    writer_id, speaker_id = int(rng.integers(N_WRITERS)), int(rng.integers(N_SPEAKERS))
    if scan is None:
        image, image_facts = render_image(digit, writers[writer_id], rng)
    else:
        image, image_facts = scan, {"faint": False, "scratch": False}
    image.save(folder / "images" / f"{i + 1:05d}.png")
    wave, audio_facts = speak(digit, speakers[speaker_id], rng)
    buffer = io.BytesIO()  # written through memory: libsndfile's flush of a real file is slow
    soundfile.write(buffer, wave, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    (folder / "audio" / f"{i + 1:05d}.wav").write_bytes(buffer.getvalue())
    note = write_note(digit, speaker_id, image_facts, audio_facts, rng)
    number = "" if rng.random() < MISSING_NUMBER else f"{writing_time(digit, writers[writer_id], rng):.2f}"
    return note, number


def write_manifest(folder: Path, size: int = 1800, seed: int = 0, scans: str = "rendered") -> Path:
    """Write ``folder/manifest.csv`` with ``size`` rows and its files under ``images/`` and ``audio/``.

    ``scans``: ``rendered`` (synthetic handwriting) or ``sklearn`` (real scans, see the module doc).
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    styles = np.random.default_rng([seed, 2**31 + 1])
    writers, speakers = make_writers(styles), make_speakers(styles)
    labels, splits = labels_and_splits(size, seed)
    images = real_scans(labels, seed) if scans == "sklearn" else [None] * size
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for i in range(size):
            note, number = make_row(i, int(labels[i]), seed, writers, speakers, folder, images[i])
            writer.writerow([f"images/{i + 1:05d}.png", f"audio/{i + 1:05d}.wav", note, number,
                             CLASS_NAMES[labels[i]], splits[i]])
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="output folder (manifest.csv, images/, audio/)")
    parser.add_argument("--size", type=int, default=1800, help="rows of manifest.csv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scans", choices=("rendered", "sklearn"), default="rendered",
                        help="images: synthetic handwriting, or scikit-learn's real digit scans")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    manifest = write_manifest(args.folder, args.size, args.seed, args.scans)
    print(f"{manifest} ({args.size} rows, {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
