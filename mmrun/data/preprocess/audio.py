"""Audio: decode with soundfile, resample, crop or pad, log-mel spectrogram in torch.

Decoding (cached) reads the file with soundfile, mixes it to mono, resamples it to
``sample_rate`` (FFT resampling: the spectrum is truncated or zero-padded, which is
band-limited and so free of aliasing), crops or zero-pads it to ``duration`` seconds from the
start, and computes ``log(mel power + 1e-6)`` as ``float [n_mels, frames]`` with
``torch.stft`` (Hann window, centred frames) and a triangular mel filterbank on the HTK mel
scale. ``transform`` standardises each mel band with the training split's statistics.
torchaudio is not used because it cannot be installed alongside every torch build; the few
lines it would save are written here in plain torch.

A WAV file whose header promises more audio than the file holds is reported as truncated
(libsndfile itself would silently read the shorter part).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from mmrun.data.preprocess import DecodeError
from mmrun.errors import ConfigError

EXTENSIONS = (".wav", ".flac", ".ogg")
LOG_FLOOR = 1e-6


@dataclass(frozen=True)
class AudioOptions:
    """``dataset.audio``: how audio files are decoded (part of the cache key)."""

    sample_rate: int | str = 16000
    duration: float | str = 1.0
    n_mels: int | str = 64
    n_fft: int | str = 400
    hop_length: int | str = 160
    f_min: float = 0.0
    f_max: float | None = None
    normalize: bool = True

    def __post_init__(self) -> None:
        inferred = ("sample_rate", "duration", "n_mels", "n_fft", "hop_length")
        for key in inferred:
            value = getattr(self, key)
            if isinstance(value, str) and value != "auto":
                raise ConfigError(f"dataset.audio.{key}={value!r}; use auto or a number")
        if any(getattr(self, key) == "auto" for key in inferred):
            return  # decided from the files (mmrun.data.infer), then checked
        if self.sample_rate <= 0 or self.duration <= 0:
            raise ConfigError("dataset.audio.sample_rate and dataset.audio.duration must be positive")
        f_max = self.f_max or self.sample_rate / 2
        if not 0 <= self.f_min < f_max <= self.sample_rate / 2:
            raise ConfigError(
                f"dataset.audio: need 0 <= f_min < f_max <= sample_rate / 2, got f_min={self.f_min}, f_max={f_max}"
            )
        if self.n_fft < 2 or self.hop_length < 1 or self.n_mels < 1:
            raise ConfigError("dataset.audio.n_fft must be >= 2, hop_length >= 1 and n_mels >= 1")
        if self.n_mels > self.n_fft // 2 + 1:
            raise ConfigError(
                f"dataset.audio.n_mels={self.n_mels} exceeds the {self.n_fft // 2 + 1} frequency bins of "
                f"n_fft={self.n_fft}; lower n_mels or raise n_fft"
            )

    @property
    def num_samples(self) -> int:
        return max(1, round(self.sample_rate * self.duration))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_mels, self.num_samples // self.hop_length + 1)


def _hz_to_mel(hz: float | torch.Tensor):
    return 2595.0 * (torch.log10(1.0 + hz / 700.0) if isinstance(hz, torch.Tensor) else math.log10(1.0 + hz / 700.0))


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> torch.Tensor:
    """Triangular filters ``[n_fft // 2 + 1, n_mels]`` spaced evenly on the HTK mel scale."""
    freqs = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = _mel_to_hz(torch.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2, dtype=torch.float64))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs.unsqueeze(1) - lower) / (centre - lower)
    falling = (upper - freqs.unsqueeze(1)) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def log_mel(wave: torch.Tensor, options: AudioOptions) -> torch.Tensor:
    """``float [L]`` waveform -> ``float [n_mels, frames]`` log-mel spectrogram."""
    window = torch.hann_window(options.n_fft)
    spectrum = torch.stft(wave, options.n_fft, options.hop_length, window=window, center=True, return_complex=True)
    power = spectrum.abs().square()  # [freqs, frames]
    f_max = options.f_max or options.sample_rate / 2
    bank = mel_filterbank(options.n_fft, options.n_mels, options.sample_rate, float(options.f_min), float(f_max))
    return torch.log(bank.T @ power + LOG_FLOOR)


def resample(wave: torch.Tensor, source_rate: int, target_rate: int) -> torch.Tensor:
    """Band-limited FFT resampling of a mono waveform."""
    if source_rate == target_rate or len(wave) == 0:
        return wave
    target_length = max(1, round(len(wave) * target_rate / source_rate))
    spectrum = torch.fft.rfft(wave.double())
    bins = target_length // 2 + 1
    kept = spectrum[:bins] if bins <= len(spectrum) else torch.nn.functional.pad(spectrum, (0, bins - len(spectrum)))
    return (torch.fft.irfft(kept, n=target_length) * (target_length / len(wave))).float()


def check_wav_length(path: str) -> None:
    """Raise ``DecodeError`` when a WAV file's data chunk is shorter than its header says."""
    size = Path(path).stat().st_size
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return  # not RIFF/WAVE: soundfile reports what it is
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk, length = struct.unpack("<4sI", handle.read(8))
            if chunk == b"data":
                available = size - offset - 8
                if length not in (0, 0xFFFFFFFF) and length > available:
                    raise DecodeError(f"truncated audio: the header declares {length} bytes of samples, the file holds {available}")
                return
            offset += 8 + length + (length & 1)


def decode(path: str, options: AudioOptions) -> torch.Tensor:
    """Read one audio file as a log-mel spectrogram ``float [n_mels, frames]``."""
    import soundfile

    if path.lower().endswith(".wav"):
        check_wav_length(path)
    try:
        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        reason = str(error).split(": ", 1)[-1].strip() or "unreadable"
        raise DecodeError(f"unreadable audio ({reason})") from None
    if samples.shape[0] == 0:
        raise DecodeError("audio file holds no samples")
    wave = resample(torch.from_numpy(samples).mean(1), rate, options.sample_rate)
    length = options.num_samples
    wave = wave[:length] if len(wave) >= length else torch.nn.functional.pad(wave, (0, length - len(wave)))
    return log_mel(wave, options)


def fit(spectrograms: torch.Tensor, options: AudioOptions) -> dict:
    """Mean and standard deviation of each mel band over the training spectrograms."""
    if not options.normalize or len(spectrograms) == 0:
        return {"mean": [0.0] * options.n_mels, "std": [1.0] * options.n_mels}
    std, mean = torch.std_mean(spectrograms, dim=(0, 2))
    return {"mean": mean.tolist(), "std": std.clamp_min(1e-3).tolist()}


def transform(spectrograms: torch.Tensor, state: dict) -> torch.Tensor:
    """Standardise ``[N, n_mels, frames]`` per mel band."""
    mean = torch.tensor(state["mean"]).view(1, -1, 1)
    std = torch.tensor(state["std"]).view(1, -1, 1)
    return (spectrograms - mean).div_(std)
