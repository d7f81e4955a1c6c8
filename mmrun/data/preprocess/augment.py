"""Random changes to training batches, made on the training device (never to cached tensors).

Images: a random shift (zero-padded random crop of ``crop_padding`` pixels), a horizontal
flip and Gaussian noise. Spectrograms: SpecAugment-style masking (Park et al., "SpecAugment:
A Simple Data Augmentation Method for Automatic Speech Recognition", Interspeech 2019,
arXiv:1904.08779): per sample, one band of up to ``spec_mask`` of the mel bands and one span
of up to ``spec_mask`` of the frames are set to 0, the training mean after standardisation.
Every operation is vectorised over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmrun.errors import ConfigError


@dataclass(frozen=True)
class AugmentOptions:
    """``dataset.augment``: random changes to training batches (off by default)."""

    crop_padding: int = 0
    flip: bool = False
    noise: float = 0.0
    spec_mask: float = 0.0

    def __post_init__(self) -> None:
        if self.crop_padding < 0 or self.noise < 0:
            raise ConfigError("dataset.augment.crop_padding and dataset.augment.noise must be >= 0")
        if not 0 <= self.spec_mask < 1:
            raise ConfigError(f"dataset.augment.spec_mask={self.spec_mask}; give the largest masked fraction, in [0, 1)")

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.flip or self.noise > 0 or self.spec_mask > 0


def augment_images(images: torch.Tensor, options: AugmentOptions) -> torch.Tensor:
    """Randomly shift (zero-padded crop), flip and add noise to a float batch ``[B, C, H, W]``."""
    batch, _, height, width = images.shape
    device = images.device
    if options.crop_padding > 0:
        pad = options.crop_padding
        padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
        top = torch.randint(0, 2 * pad + 1, (batch, 1, 1), device=device)
        left = torch.randint(0, 2 * pad + 1, (batch, 1, 1), device=device)
        rows = top + torch.arange(height, device=device).view(1, -1, 1)
        cols = left + torch.arange(width, device=device).view(1, 1, -1)
        index = torch.arange(batch, device=device).view(-1, 1, 1)
        images = padded.permute(0, 2, 3, 1)[index, rows, cols].permute(0, 3, 1, 2)
    if options.flip:
        flip = torch.rand(batch, 1, 1, 1, device=device) < 0.5
        images = torch.where(flip, images.flip(-1), images)
    if options.noise > 0:
        images = images + options.noise * torch.randn_like(images)
    return images.contiguous()


def _random_span(batch: int, length: int, fraction: float, device: torch.device) -> torch.Tensor:
    """Bool ``[batch, length]``: per row one span of width uniform in ``[0, fraction * length]``."""
    width = (torch.rand(batch, 1, device=device) * (fraction * length + 1)).floor()
    start = (torch.rand(batch, 1, device=device) * (length - width + 1)).floor()
    position = torch.arange(length, device=device).view(1, -1)
    return (position >= start) & (position < start + width)


def mask_spectrograms(spectrograms: torch.Tensor, fraction: float) -> torch.Tensor:
    """Mask one frequency band and one time span per sample of ``[B, n_mels, frames]``."""
    batch, bands, frames = spectrograms.shape
    device = spectrograms.device
    masked = _random_span(batch, bands, fraction, device).unsqueeze(2) | _random_span(batch, frames, fraction, device).unsqueeze(1)
    return spectrograms.masked_fill(masked, 0.0)
