"""Corruptions of one modality over a whole split: missing rows, per-kind noise, shuffled rows.

Every corruption takes the clean split tensor of one modality (``x [N, ...]``), its column of
``present`` and a level ``p`` in [0, 1], and returns new tensors; ``p = 0`` returns the data
unchanged. Randomness comes from a ``torch.Generator`` seeded per condition
(``generator``), so a condition draws the same corruption in every run.

* **missing** (``missing_rows``): a fraction ``p`` of the samples, drawn without replacement, is
  zero-filled and marked absent, exactly how missing data arrives (ModDrop: Neverova et al.,
  IEEE TPAMI 2016, arXiv:1501.00102; the missing-modality protocol of MultiBench: Liang et al.,
  NeurIPS 2021 Datasets & Benchmarks, arXiv:2107.07502).
* **noise** (``noisy``, by kind: ``NOISE``): one meaning across kinds, "noise of amplitude p relative to
  the signal": Gaussian noise of standard deviation ``p x`` the data's own spread (per image
  channel, per clip for audio, i.e. SNR = -20 log10 p dB, per feature for tabular and
  features), plus for images an occluding square over ``p / 2`` of the area; tokens and
  categorical ids are replaced (or text tokens dropped) with probability ``p``. Samples that
  are absent stay untouched (zero-filled, marked absent).
* **shuffle** (``shuffled``): the modality's rows, with their ``present`` column, permuted
  across the split: the permutation ("perceptual") score of Gat et al., NeurIPS 2021,
  arXiv:2110.14375.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import torch

from mmrun.data.spec import ModalitySpec

Noise = Callable[[torch.Tensor, torch.Tensor, float, torch.Generator], torch.Tensor]
OCCLUDED_AREA = 0.5  # the occluding square covers OCCLUDED_AREA x p of an image at level p


def generator(seed: int, *parts: object, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from ``seed`` and the condition's parts (modality, corruption, p, repeat)."""
    key = "/".join(f"{part:.6f}" if isinstance(part, float) else str(part) for part in (seed, *parts))
    return torch.Generator(device=device).manual_seed(zlib.crc32(key.encode()))


def missing_rows(n: int, p: float, g: torch.Generator) -> torch.Tensor:
    """``bool [n]``: ``round(p n)`` rows drawn without replacement (the rows made missing)."""
    rows = torch.zeros(n, dtype=torch.bool, device=g.device)
    rows[torch.randperm(n, generator=g, device=g.device)[: round(p * n)]] = True
    return rows


def shuffled(x: torch.Tensor, present: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of ``x`` and their ``present`` column under one random permutation of the split."""
    order = torch.randperm(len(x), generator=g, device=g.device).to(x.device)
    return x[order], present[order]


def _rows(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A ``[N]`` row mask shaped to broadcast over ``x [N, ...]``."""
    return mask.view(-1, *([1] * (x.dim() - 1)))


def _spread(x: torch.Tensor, present: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Standard deviation over the present samples and ``dims`` (kept for broadcasting)."""
    values = x[present].float() if present.any() else x.float()
    return values.std(dim=(0, *dims), keepdim=True).squeeze(0).clamp_min(1e-12)


def _gaussian(x: torch.Tensor, scale: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return x + scale * torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)


def image_noise(x: torch.Tensor, present: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """Gaussian noise of std ``p x`` each channel's std, then a square of ``p / 2`` of the area
    at a random place per image, filled with the channel's mean (``[N, C, H, W]``)."""
    spread = _spread(x, present, (2, 3))
    values = x[present].float() if present.any() else x.float()
    mean = values.mean(dim=(0, 2, 3)).view(1, -1, 1, 1).to(x.dtype)
    noisy = _gaussian(x, p * spread.to(x.dtype), g)
    n, _, height, width = x.shape
    side = OCCLUDED_AREA ** 0.5 * p ** 0.5
    h, w = round(side * height), round(side * width)
    if h and w:
        top = torch.randint(0, height - h + 1, (n,), generator=g, device=g.device).to(x.device)
        left = torch.randint(0, width - w + 1, (n,), generator=g, device=g.device).to(x.device)
        ys, xs = torch.arange(height, device=x.device), torch.arange(width, device=x.device)
        inside = (((ys.view(1, -1) >= top.view(-1, 1)) & (ys.view(1, -1) < (top + h).view(-1, 1))).unsqueeze(2)
                  & ((xs.view(1, -1) >= left.view(-1, 1)) & (xs.view(1, -1) < (left + w).view(-1, 1))).unsqueeze(1))
        noisy = torch.where(inside.unsqueeze(1), mean, noisy)
    return noisy


def audio_noise(x: torch.Tensor, present: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """Additive Gaussian noise at SNR = -20 log10 p dB per clip: std ``p x`` the clip's RMS
    (20 dB at p = 0.1, 6 dB at 0.5, 0 dB at 1); waveforms ``[N, L]`` or spectrograms as held."""
    rms = x.float().flatten(1).square().mean(1).sqrt()
    return _gaussian(x, p * _rows(rms, x).to(x.dtype), g)


def feature_noise(x: torch.Tensor, present: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """Gaussian noise of std ``p x`` each feature's std over the split (``[N, F]`` or ``[N, T, F]``)."""
    return _gaussian(x, p * _spread(x, present, tuple(range(1, x.dim() - 1))).to(x.dtype), g)


def _replace_ids(x: torch.Tensor, hit: torch.Tensor, vocab_size: int | None, g: torch.Generator) -> torch.Tensor:
    """``x`` with the ``hit`` positions set to random ids in [1, vocab_size) (0 is padding / unknown)."""
    random = torch.randint(1, max(vocab_size or 2, 2), x.shape, generator=g, device=g.device).to(x.device, x.dtype)
    return torch.where(hit, random, x)


def token_noise(spec: ModalitySpec) -> Noise:
    """Each real token (id != 0) hit with probability ``p``: replaced by a random vocabulary id
    or dropped (set to the padding id 0), half and half; padding is never touched."""

    def corrupt(x: torch.Tensor, present: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
        draw = torch.rand(x.shape, generator=g, device=g.device).to(x.device)
        hit = (x != 0) & (draw < p)
        dropped = hit & (draw < p / 2)
        return _replace_ids(x, hit, spec.vocab_size, g).masked_fill(dropped, 0)

    return corrupt


def categorical_noise(spec: ModalitySpec) -> Noise:
    """Each categorical id replaced with probability ``p`` by a random id of its id space."""

    def corrupt(x: torch.Tensor, present: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
        hit = torch.rand(x.shape, generator=g, device=g.device).to(x.device) < p
        return _replace_ids(x, hit, spec.vocab_size, g)

    return corrupt


# kind -> the noise corruption of a modality of that kind (built from its spec)
NOISE: dict[str, Callable[[ModalitySpec], Noise]] = {
    "image": lambda spec: image_noise,
    "audio": lambda spec: audio_noise,
    "tabular": lambda spec: feature_noise,
    "features": lambda spec: feature_noise,
    "text": token_noise,
    "categorical": categorical_noise,
}


def noisy(spec: ModalitySpec, x: torch.Tensor, present: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """``x`` at noise level ``p``; absent samples and ``p = 0`` unchanged."""
    if p == 0:
        return x
    return torch.where(_rows(present, x), NOISE[spec.kind](spec)(x, present, p, g), x)
