"""The built-in dataset: four modalities generated in memory, where fusion really matters.

Each sample has a class ``y``. Every modality shows one *view* of it: the parity of a subset
of the bits of ``y`` (``bit_masks``), flipped with probability ``noise``. With the default four
classes the image and the tabular vector show bit 0, the text shows bit 1 and the audio shows
bit 0 XOR bit 1. One modality therefore tells at most one bit (at most 50% accuracy with four
classes), while any two different views pin the class down and the redundant third and
fourth views correct flips. Everything else in a sample (colour, position, filler words,
phase, the other tabular directions) is nuisance.

How each modality renders its view value ``s`` in [0, 1] (bit 0 -> s in [0.05, 0.45],
bit 1 -> s in [0.55, 0.95]; for regression s is the modality's continuous latent):

* image ``[3, 32, 32]``: a circle (s < 0.5) or square (s >= 0.5) of radius 4 + 7 s, random
  colour and position, on Gaussian noise;
* text: 6-12 caption words from a filler vocabulary with one size word
  ``SIZE_WORDS[floor(8 s)]`` at a random place;
* audio ``[512]``: a sine of 8 + 48 s cycles, random phase and amplitude, plus noise;
* tabular ``[16]``: Gaussian noise plus ``4 (2 s - 1)`` along one fixed direction.

Variants: ``task=multilabel`` predicts the bits of ``y``; ``task=regression`` predicts
``sum_m (2 u_m - 1)`` over the four modality latents ``u_m`` (each modality explains about a
quarter of the variance). ``missing_rate`` drops modalities per sample (never all of them).
``label_fraction`` < 1 keeps the labels of only that fraction of the training rows for the
label loss (a ``labelled`` mask in the training split; the rows and every other split are
unchanged): the setting of semi-supervised distillation, where a teacher's soft targets reach
the rows without a label.
"""

from __future__ import annotations

import math

import torch

from mmrun.data.spec import DataSpec, ModalitySpec
from mmrun.data.tensor_datamodule import SPLITS, TensorDataModule
from mmrun.errors import ConfigError

ALL_MODALITIES = ("audio", "image", "tabular", "text")
IMAGE_SIZE = 32
AUDIO_LENGTH = 512
TABULAR_FEATURES = 16
MAX_WORDS = 12
FILLER_WORDS = tuple(
    (
        "a the photo of with near some object scene shows there is in on this picture seems "
        "very quite rather next to and one"
    ).split()
)
SIZE_WORDS = ("tiny", "small", "little", "short", "tall", "big", "large", "huge")
VOCABULARY = ("<pad>",) + FILLER_WORDS + SIZE_WORDS
TASKS = ("classification", "multilabel", "regression")


def bit_masks(num_bits: int) -> dict[str, int]:
    """Which bits of the class each modality shows: single bits first, then all bits, cycled."""
    masks = [1 << b for b in range(num_bits)]
    if num_bits > 1:
        masks.append((1 << num_bits) - 1)
    order = ("image", "text", "audio", "tabular")
    return {name: masks[i % len(masks)] for i, name in enumerate(order)}


def parity(values: torch.Tensor, mask: int) -> torch.Tensor:
    """Parity of the bits of ``values`` selected by ``mask``."""
    selected = values & mask
    count = torch.zeros_like(values)
    for bit in range(max(mask.bit_length(), 1)):
        count += (selected >> bit) & 1
    return count % 2


def render_image(s: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = len(s)
    radius = 4.0 + 7.0 * s
    centre = radius.unsqueeze(1) + torch.rand(n, 2, generator=g) * (IMAGE_SIZE - 2 * radius).unsqueeze(1)
    grid = torch.arange(IMAGE_SIZE, dtype=torch.float32) + 0.5
    dy = (grid.view(1, -1, 1) - centre[:, 0].view(-1, 1, 1)).abs()
    dx = (grid.view(1, 1, -1) - centre[:, 1].view(-1, 1, 1)).abs()
    r = radius.view(-1, 1, 1)
    circle = dx.square() + dy.square() <= r.square()
    square = torch.maximum(dx, dy) <= r * 0.85
    shape = torch.where((s >= 0.5).view(-1, 1, 1), square, circle).float()
    colour = 0.4 + 0.6 * torch.rand(n, 3, 1, 1, generator=g)
    image = shape.unsqueeze(1) * colour + 0.3 * torch.randn(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)
    return image


def render_text(s: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = len(s)
    lengths = torch.randint(6, MAX_WORDS + 1, (n,), generator=g)
    filler = 1 + torch.randint(0, len(FILLER_WORDS), (n, MAX_WORDS), generator=g)
    positions = torch.arange(MAX_WORDS).unsqueeze(0)
    ids = torch.where(positions < lengths.unsqueeze(1), filler, torch.zeros_like(filler))
    size_word = 1 + len(FILLER_WORDS) + (s * len(SIZE_WORDS)).long().clamp(0, len(SIZE_WORDS) - 1)
    where = (torch.rand(n, generator=g) * lengths).long()
    ids[torch.arange(n), where] = size_word
    return ids


def render_audio(s: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = len(s)
    cycles = 8.0 + 48.0 * s
    phase = 2 * math.pi * torch.rand(n, 1, generator=g)
    amplitude = 0.5 + 0.5 * torch.rand(n, 1, generator=g)
    t = torch.arange(AUDIO_LENGTH, dtype=torch.float32).unsqueeze(0) / AUDIO_LENGTH
    wave = amplitude * torch.sin(2 * math.pi * cycles.unsqueeze(1) * t + phase)
    return wave + 0.5 * torch.randn(n, AUDIO_LENGTH, generator=g)


def render_tabular(s: torch.Tensor, g: torch.Generator, direction: torch.Tensor) -> torch.Tensor:
    noise = torch.randn(len(s), TABULAR_FEATURES, generator=g)
    return noise + (4.0 * (2 * s - 1)).unsqueeze(1) * direction


class SyntheticDataModule(TensorDataModule):
    """The built-in four-modality dataset (see the module docstring for how it is made).

    Args:
        size: samples in all splits together.
        num_classes: classes (classification); the bits of the class index are the views.
        noise: probability that a modality shows a flipped view bit (classification,
            multilabel); standard deviation of target noise (regression).
        missing_rate: probability that a modality is absent from a sample.
        label_fraction: the fraction of training rows whose label the loss may use (1: all).
        task: classification, multilabel or regression.
        modalities: which of audio, image, tabular, text to serve (None: all four).
        splits: train/val/test fractions.
        data_seed: seed of the generated data (separate from the training seed).
        batch_size, eval_batch_size, seed, on_device, device_memory_fraction: see
            ``TensorDataModule``.
    """

    def __init__(
        self,
        size: int = 10000,
        num_classes: int = 4,
        noise: float = 0.05,
        missing_rate: float = 0.0,
        label_fraction: float = 1.0,
        task: str = "classification",
        modalities: list[str] | tuple[str, ...] | None = ALL_MODALITIES,
        splits: list[float] | tuple[float, ...] = (0.8, 0.1, 0.1),
        data_seed: int = 0,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        seed: int = 0,
        on_device: bool | str = "auto",
        device_memory_fraction: float = 0.5,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, seed, on_device, device_memory_fraction)
        modalities = ALL_MODALITIES if modalities is None else modalities  # null = all, as for a manifest
        unknown = sorted(set(modalities) - set(ALL_MODALITIES))
        if unknown or not modalities:
            raise ConfigError(
                f"dataset.modalities={list(modalities)} is not a non-empty subset of the synthetic "
                f"modalities; choose from {list(ALL_MODALITIES)}, e.g. dataset.modalities=[image,text]"
            )
        if task not in TASKS:
            raise ConfigError(f"dataset.task={task!r} is unknown; use one of {list(TASKS)}")
        if num_classes < 2:
            raise ConfigError(f"dataset.num_classes={num_classes} must be at least 2")
        if not 0.0 <= missing_rate < 1.0:
            raise ConfigError(f"dataset.missing_rate={missing_rate} must be in [0, 1)")
        if not 0.0 < label_fraction <= 1.0:
            raise ConfigError(f"dataset.label_fraction={label_fraction} must be in (0, 1]")
        if len(splits) != 3 or abs(sum(splits) - 1.0) > 1e-6 or min(splits) <= 0:
            raise ConfigError(f"dataset.splits={list(splits)} must be three positive fractions summing to 1")
        if size < 30:
            raise ConfigError(f"dataset.size={size} is too small; use at least 30 samples")
        self.size = size
        self.num_classes = num_classes
        self.noise = noise
        self.missing_rate = missing_rate
        self.label_fraction = label_fraction
        self.task = task
        self.modalities = sorted(modalities)
        self.fractions = tuple(splits)
        self.data_seed = data_seed

    def _views(self, g: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Per-modality view values s in [0, 1] and the label of every sample."""
        n = self.size
        if self.task == "regression":
            latents = {m: torch.rand(n, generator=g) for m in ALL_MODALITIES}
            target = sum(2 * u - 1 for u in latents.values()) + self.noise * torch.randn(n, generator=g)
            return latents, target.float()
        y = torch.randint(0, self.num_classes, (n,), generator=g)
        num_bits = max(1, math.ceil(math.log2(self.num_classes)))
        views = {}
        for name, mask in bit_masks(num_bits).items():
            bit = parity(y, mask) ^ (torch.rand(n, generator=g) < self.noise).long()
            views[name] = 0.5 * bit + 0.05 + 0.4 * torch.rand(n, generator=g)
        if self.task == "multilabel":
            return views, torch.stack([(y >> b) & 1 for b in range(num_bits)], 1).float()
        return views, y

    def build(self):
        g = torch.Generator().manual_seed(self.data_seed)
        views, label = self._views(g)
        direction = torch.nn.functional.normalize(torch.randn(TABULAR_FEATURES, generator=g), dim=0)
        rendered = {
            "image": render_image(views["image"], g),
            "text": render_text(views["text"], g),
            "audio": render_audio(views["audio"], g),
            "tabular": render_tabular(views["tabular"], g, direction),
        }
        present = torch.rand(self.size, len(self.modalities), generator=g) >= self.missing_rate
        nobody = ~present.any(1)
        present[nobody, torch.randint(0, len(self.modalities), (int(nobody.sum()),), generator=g)] = True
        data = {m: rendered[m] for m in self.modalities}
        for column, name in enumerate(self.modalities):
            absent = ~present[:, column]
            data[name][absent] = 0
        data["label"] = label
        data["present"] = present
        splits = self._split(data)
        if self.label_fraction < 1.0:
            splits["train"]["labelled"] = self._labelled(len(splits["train"]["label"]))
        return splits, self._make_spec()

    def _labelled(self, rows: int) -> torch.Tensor:
        """The training rows whose label is kept: a fixed random ``label_fraction`` of them (at least one),
        drawn from their own generator so that the data itself is the same for every fraction."""
        g = torch.Generator().manual_seed(self.data_seed + 1)
        labelled = torch.zeros(rows, dtype=torch.bool)
        labelled[torch.randperm(rows, generator=g)[: max(1, round(self.label_fraction * rows))]] = True
        return labelled

    def _split(self, data: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        n_train = int(self.fractions[0] * self.size)
        n_val = int(self.fractions[1] * self.size)
        bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, self.size)}
        return {s: {k: v[bounds[s][0] : bounds[s][1]] for k, v in data.items()} for s in SPLITS}

    def _make_spec(self) -> DataSpec:
        shapes = {
            "image": ModalitySpec("image", "image", (3, IMAGE_SIZE, IMAGE_SIZE)),
            "text": ModalitySpec("text", "text", (MAX_WORDS,), vocab_size=len(VOCABULARY)),
            "audio": ModalitySpec("audio", "audio", (AUDIO_LENGTH,)),
            "tabular": ModalitySpec("tabular", "tabular", (TABULAR_FEATURES,)),
        }
        modalities = tuple(shapes[m] for m in self.modalities)
        num_bits = max(1, math.ceil(math.log2(self.num_classes)))
        if self.task == "regression":
            return DataSpec(modalities, "regression", 1)
        if self.task == "multilabel":
            return DataSpec(modalities, "multilabel", num_bits, tuple(f"bit{b}" for b in range(num_bits)))
        names = tuple(f"class{k}" for k in range(self.num_classes))
        if self.num_classes == 2:
            return DataSpec(modalities, "binary", 1, names)
        return DataSpec(modalities, "multiclass", self.num_classes, names)
