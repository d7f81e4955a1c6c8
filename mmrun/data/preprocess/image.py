"""Images: decode with Pillow, normalise with training statistics, augment on the device.

Decoding (cached) gives ``uint8 [C, H, W]``: the file is fully loaded (so a truncated or
corrupt file fails here, not in the middle of training), rotated by its EXIF orientation,
converted to RGB or grayscale and brought to ``size`` by one of three ``resize`` modes:
``crop`` (scale the shorter side, centre-crop), ``pad`` (scale the longer side, pad with
black) or ``stretch`` (ignore the aspect ratio). ``transform`` gives ``float [C, H, W]``
standardised per channel with the training split's mean and standard deviation.
Augmentations (``mmrun.data.preprocess.augment``) act on whole batches on the training
device, never on the cached tensors. Pillow is used instead of torchvision,
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
    size: tuple[int, int] | str = (64, 64)
    resize: str = "crop"
    normalize: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.size, str) and self.size != "auto":
            raise ConfigError(f"dataset.image.size={self.size!r}; use auto, [height, width] or one side, e.g. 64")
        if "auto" in (self.channels, self.size):  # decided from the files (mmrun.data.infer), then checked
            if self.channels not in (*CHANNELS, "auto"):
                raise ConfigError(f"dataset.image.channels={self.channels!r}; use auto, rgb or grayscale")
            return
        size = self.size
        size = (int(size), int(size)) if isinstance(size, (int, float)) else tuple(int(s) for s in size)
        object.__setattr__(self, "size", size)
        if self.channels not in CHANNELS:
            raise ConfigError(f"dataset.image.channels={self.channels!r}; use auto, rgb or grayscale")
        if self.resize not in RESIZE_MODES:
            raise ConfigError(f"dataset.image.resize={self.resize!r}; use one of {list(RESIZE_MODES)}")
        if len(size) != 2 or min(size) < 1:
            raise ConfigError(f"dataset.image.size={list(size)}; give [height, width] or one side, e.g. 64")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (CHANNELS[self.channels][1], *self.size)


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
