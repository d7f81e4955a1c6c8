"""Images: decode with Pillow, normalise with training statistics, augment on the device.

Decoding (cached) gives ``uint8 [C, H, W]``: the file is fully loaded (so a truncated or
corrupt file fails here, not in the middle of training), rotated by its EXIF orientation,
converted to RGB or grayscale and brought to ``size`` by one of three ``resize`` modes:
``crop`` (scale the shorter side, centre-crop), ``pad`` (scale the longer side, pad with
black) or ``stretch`` (ignore the aspect ratio). ``transform`` gives ``float [C, H, W]``
standardised per channel with the training split's mean and standard deviation.
Augmentations (random shifted crop, horizontal flip, Gaussian noise) act on whole batches
on the training device, never on the cached tensors. Pillow is used instead of torchvision,
which cannot be installed alongside every torch build.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from mmrun.data.preprocess import DecodeError
from mmrun.errors import ConfigError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
CHANNELS = {"rgb": ("RGB", 3), "grayscale": ("L", 1)}
RESIZE_MODES = ("crop", "pad", "stretch")


@dataclass(frozen=True)
class ImageOptions:
    """``dataset.image``: how images are decoded (part of the cache key)."""

    channels: str = "rgb"
    size: tuple[int, int] = (64, 64)
    resize: str = "crop"
    normalize: bool = True

    def __post_init__(self) -> None:
        size = self.size
        size = (int(size), int(size)) if isinstance(size, (int, float)) else tuple(int(s) for s in size)
        object.__setattr__(self, "size", size)
        if self.channels not in CHANNELS:
            raise ConfigError(f"dataset.image.channels={self.channels!r}; use rgb or grayscale")
        if self.resize not in RESIZE_MODES:
            raise ConfigError(f"dataset.image.resize={self.resize!r}; use one of {list(RESIZE_MODES)}")
        if len(size) != 2 or min(size) < 1:
            raise ConfigError(f"dataset.image.size={list(size)}; give [height, width] or one side, e.g. 64")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (CHANNELS[self.channels][1], *self.size)


@dataclass(frozen=True)
class AugmentOptions:
    """``dataset.augment``: random changes to training batches (off by default)."""

    crop_padding: int = 0
    flip: bool = False
    noise: float = 0.0

    def __post_init__(self) -> None:
        if self.crop_padding < 0 or self.noise < 0:
            raise ConfigError("dataset.augment.crop_padding and dataset.augment.noise must be >= 0")

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.flip or self.noise > 0


def decode(path: str, options: ImageOptions) -> torch.Tensor:
    """Load one image file as ``uint8 [C, H, W]``; raise ``DecodeError`` when it is unusable."""
    mode, _ = CHANNELS[options.channels]
    height, width = options.size
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image).convert(mode)
    except UnidentifiedImageError:
        raise DecodeError("not an image Pillow can read (corrupt file or wrong extension)") from None
    except Exception as error:  # Pillow's decoders raise many types for broken files
        raise DecodeError(f"corrupt or truncated image ({str(error).strip() or type(error).__name__})") from None
    if options.resize == "crop":
        image = ImageOps.fit(image, (width, height), Image.Resampling.BILINEAR)
    elif options.resize == "pad":
        image = ImageOps.pad(image, (width, height), Image.Resampling.BILINEAR, color=0)
    else:
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8).reshape(height, width, -1)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def fit(images: torch.Tensor, options: ImageOptions) -> dict:
    """Per-channel mean and standard deviation (in [0, 1] units) of the training images."""
    channels = options.shape[0]
    if not options.normalize or len(images) == 0:
        return {"mean": [0.0] * channels, "std": [1.0] * channels}
    # Exact statistics from each channel's 256-bin histogram of the uint8 pixels: one fast
    # pass, no float copy of the images.
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for channel in range(channels):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).double()
        total = counts.sum()
        mean = (counts * levels).sum() / total
        variance = (counts * (levels - mean) ** 2).sum() / (total - 1).clamp_min(1)
        means.append(float(mean))
        stds.append(max(float(variance.sqrt()), 1e-3))
    return {"mean": means, "std": stds}


def transform(images: torch.Tensor, state: dict) -> torch.Tensor:
    """``uint8 [N, C, H, W]`` -> standardised ``float [N, C, H, W]``."""
    mean = torch.tensor(state["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(state["std"]).view(1, -1, 1, 1)
    return images.float().mul_(1.0 / (255.0 * std)).sub_(mean / std)  # (x / 255 - mean) / std in place


def augment(images: torch.Tensor, options: AugmentOptions) -> torch.Tensor:
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
