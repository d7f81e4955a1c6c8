"""Images: decode with Pillow, normalise with training statistics, augment on the device.

Decoding (cached) gives ``uint8 [C, H, W]``: the file is fully loaded (so a truncated or
corrupt file fails here, not in the middle of training), rotated by its EXIF orientation,
brought to 8 bits if it has more (``to_8bit``), converted to RGB or grayscale and brought to
``size`` by one of three ``resize`` modes:
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
# Pillow's single-channel modes deeper than 8 bits, with the value ranges (low, high) they are
# read as, the first that holds every pixel; an image that fits none is scaled by its own range.
DEEP_RANGES = {**dict.fromkeys(("I;16", "I;16B", "I;16L", "I;16N"), ((0, 65535),)),
               "I": ((0, 255), (0, 65535)), "F": ((0, 1),)}


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


def to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit integer or float image as ``L``, its range mapped onto 0..255; others unchanged.

    Pillow's own conversion clips these modes to 0..255, so a 16-bit PNG turns white. The scale
    is the value range of the format (``DEEP_RANGES``), not of each image, so that brightness
    stays comparable across images: ``I;16`` is 0..65535 (65535 -> 255, 32768 -> 128). ``I``
    (32-bit integers, what older Pillow opens 16-bit PNGs as) is read as 8-bit when every value
    fits, as Pillow reads it, else as 16-bit; ``F`` (float) as 0..1, the usual convention. An
    image outside these ranges (negative, wider than 16 bits, float beyond 0..1) has no known
    scale and is mapped from its own minimum and maximum.
    """
    ranges = DEEP_RANGES.get(image.mode)
    if ranges is None:
        return image
    values = np.asarray(image, dtype=np.float64)
    lowest, highest = float(values.min()), float(values.max())
    low, high = next(((a, b) for a, b in ranges if a <= lowest and highest <= b), (lowest, highest))
    scaled = (values - low) * 255.0 / (high - low) if high > low else np.zeros_like(values)  # flat: no range
    return Image.fromarray(np.rint(scaled).astype(np.uint8))


def decode(path: str, options: ImageOptions) -> torch.Tensor:
    """Load one image file as ``uint8 [C, H, W]``; raise ``DecodeError`` when it is unusable."""
    mode, _ = CHANNELS[options.channels]
    height, width = options.size
    try:
        with Image.open(path) as image:
            image.load()
            image = to_8bit(ImageOps.exif_transpose(image)).convert(mode)
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
