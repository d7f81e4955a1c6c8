"""The built-in retrieval dataset: thousands of distinct items, each seen, heard and described.

Every *item* draws seven discrete attributes at random, independently and uniformly:

* visual: ``shape`` (circle, square, triangle, cross), ``colour`` (red, green, blue, yellow,
  purple, cyan), ``size`` (small, medium, big) and position (``row`` x ``col`` on a 3 x 3 grid):
  4 x 6 x 3 x 9 = 648 combinations;
* sound: ``pitch`` (5 levels a factor 1.5 apart) and ``rhythm`` (1, 2 or 4 beeps): 15 combinations.

That is 9,720 attribute combinations. Each modality renders part of them:

* image ``[3, 32, 32]``: the shape in its colour (brightness jittered), of its size, at its grid
  cell (position jittered by up to a pixel), on Gaussian pixel noise; visual attributes only;
* audio ``[512]``: a sine of the item's pitch (random phase and amplitude) gated into its number
  of beeps (random onset), plus Gaussian noise; sound attributes only;
* text: a caption of at most ``MAX_WORDS`` token ids (0 = padding) naming all seven
  attributes: the object phrase, the place phrase and the sound phrase in random order, with
  synonyms ("big", "large", "huge"), random adjective order and optional filler words.

So ``task.query=[image,audio] task.target=[text]`` can pin an item down while either query
modality alone cannot: an image fits every caption of its 648th of the attribute space (15 sound
variants), a sound every caption of its 15th (648 visual variants). With the default 750 test
items, an oracle that knows the attributes and breaks ties at random finds the right caption
first for about 96% of the queries from image and audio, 59% from the image alone and 2% from
the audio alone. Items are drawn independently, so a few items share all seven attributes
(different noise, same meaning): realistic near-duplicates, which keep recall@1 a little below 1.

``label`` is the row's group id, the item's index: with ``captions_per_item=k`` every item has
``k`` consecutive rows holding the same image and audio tensors and label, each with its own
caption wording, so a query has ``k`` positives. An item's rows always share a split. The drawn
attributes of each split are kept in ``PairedShapesDataModule.attributes`` (not in the batch)
for analysis and tests.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch

from mmrun.data.spec import DataSpec, ModalitySpec
from mmrun.data.synthetic import AUDIO_LENGTH, IMAGE_SIZE
from mmrun.data.tensor_datamodule import SPLITS, TensorDataModule
from mmrun.errors import ConfigError

ALL_MODALITIES = ("audio", "image", "text")
VISUAL = ("shape", "colour", "size", "row", "col")
SOUND = ("pitch", "rhythm")
ATTRIBUTES = VISUAL + SOUND

# Per attribute, per value: its synonyms in captions.
WORDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "shape": (("circle", "disc", "dot"), ("square", "box", "block"), ("triangle", "wedge"), ("cross", "plus")),
    "colour": (("red", "crimson"), ("green", "lime"), ("blue", "navy"), ("yellow", "golden"), ("purple", "violet"),
               ("cyan", "teal")),
    "size": (("small", "tiny", "little"), ("medium", "average"), ("big", "large", "huge")),
    "row": (("top", "upper"), ("middle", "central"), ("bottom", "lower")),
    "col": (("left",), ("centre", "center"), ("right",)),
    "pitch": (("deep", "bass"), ("low", "grave"), ("mid", "moderate"), ("high", "bright"), ("shrill", "piercing")),
    "rhythm": (("single", "one"), ("double", "two"), ("rapid", "four")),
}
CARDINALITY = {name: len(values) for name, values in WORDS.items()}
OPENERS = ((), ("we", "see"), ("there", "is"), ("picture", "of"), ("image", "shows"))
ARTICLES = ((), ("a",), ("the",))
PLACE_WORDS = (("at", "the"), ("in", "the"), ("on", "the"), ("at",), ())
SOUND_NOUNS = ("beeps", "tone", "sound", "notes")
SOUND_LINKS = ((), ("with",), ("and",), ("playing",), ("hearing",))
FILLER = tuple(sorted({w for group in (OPENERS, ARTICLES, PLACE_WORDS, SOUND_LINKS) for words in group for w in words}
                      | set(SOUND_NOUNS)))
VOCABULARY = ("<pad>",) + FILLER + tuple(w for values in WORDS.values() for synonyms in values for w in synonyms)
TOKEN = {word: i for i, word in enumerate(VOCABULARY)}
MAX_WORDS = 14  # longest caption: opener 2 + object 4 + place 4 + sound 4

GRID = (7.5, 16.0, 24.5)  # centre of each grid row/column, in pixels
RADII = (3.5, 5.0, 6.5)
COLOURS = ((1.0, 0.15, 0.15), (0.15, 0.9, 0.15), (0.2, 0.3, 1.0), (1.0, 0.95, 0.1), (0.75, 0.15, 1.0),
           (0.1, 0.95, 0.95))  # red, green, blue, yellow, purple, cyan (RGB)
CYCLES = tuple(16.0 * 1.5**k for k in range(5))  # sine cycles per clip: 16, 24, 36, 54, 81
BEEPS = (1, 2, 4)


def draw_attributes(size: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Uniform, independent attribute values (int64 ``[size]``) for ``size`` items."""
    return {name: torch.randint(0, CARDINALITY[name], (size,), generator=g) for name in ATTRIBUTES}


def combination(attributes: dict[str, torch.Tensor], names: tuple[str, ...]) -> torch.Tensor:
    """One integer per item for its values of the attributes ``names`` (equal iff all are equal)."""
    code = torch.zeros_like(attributes[names[0]])
    for name in names:
        code = code * CARDINALITY[name] + attributes[name]
    return code


def render_images(a: dict[str, torch.Tensor], noise: float, g: torch.Generator) -> torch.Tensor:
    """The shapes of items ``a`` as ``[N, 3, 32, 32]`` images (see the module docstring)."""
    n = len(a["shape"])
    grid = torch.tensor(GRID)
    centre = torch.stack([grid[a["row"]], grid[a["col"]]], 1) + (2 * torch.rand(n, 2, generator=g) - 1)
    r = torch.tensor(RADII)[a["size"]].view(-1, 1, 1)
    pixels = torch.arange(IMAGE_SIZE, dtype=torch.float32) + 0.5
    dy = pixels.view(1, -1, 1) - centre[:, 0].view(-1, 1, 1)  # signed: the triangle points up
    dx = (pixels.view(1, 1, -1) - centre[:, 1].view(-1, 1, 1)).abs()
    ady = dy.abs()
    masks = torch.stack([
        dx.square() + ady.square() <= r.square(),
        torch.maximum(dx, ady) <= 0.85 * r,
        (dy >= -r) & (dy <= 0.85 * r) & (dx <= (dy + r) / 1.85),
        ((dx <= r / 3) & (ady <= r)) | ((ady <= r / 3) & (dx <= r)),
    ], 1)  # [N, shapes, H, W]
    shape = masks[torch.arange(n), a["shape"]].float()
    colour = torch.tensor(COLOURS)[a["colour"]] * (0.75 + 0.25 * torch.rand(n, 1, generator=g))
    image = shape.unsqueeze(1) * colour.view(n, 3, 1, 1)
    return image + noise * torch.randn(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)


def render_audio(a: dict[str, torch.Tensor], noise: float, g: torch.Generator) -> torch.Tensor:
    """The sounds of items ``a`` as ``[N, 512]`` waveforms (see the module docstring)."""
    n = len(a["pitch"])
    t = torch.arange(AUDIO_LENGTH, dtype=torch.float32).unsqueeze(0) / AUDIO_LENGTH
    cycles = torch.tensor(CYCLES)[a["pitch"]].unsqueeze(1)
    phase = 2 * math.pi * torch.rand(n, 1, generator=g)
    amplitude = 0.6 + 0.4 * torch.rand(n, 1, generator=g)
    beeps = torch.tensor(BEEPS, dtype=torch.float32)[a["rhythm"]].unsqueeze(1)
    onset = 0.5 * torch.rand(n, 1, generator=g)  # beep k sounds over [(k + onset) / beeps, (k + onset + 0.5) / beeps)
    position = t * beeps - onset
    gate = (position >= 0) & (position - position.floor() < 0.5)
    wave = amplitude * torch.sin(2 * math.pi * cycles * t + phase) * gate
    return wave + noise * torch.randn(n, AUDIO_LENGTH, generator=g)


def caption_words(values: dict[str, int], rng: random.Random, synonyms: bool = True) -> list[str]:
    """One random wording of a caption naming every attribute in ``values`` (``synonyms=False``:
    each value by its first word, so only the phrase order, adjective order and fillers vary)."""
    word = {name: rng.choice(WORDS[name][value]) if synonyms else WORDS[name][value][0]
            for name, value in values.items()}
    adjectives = [word["size"], word["colour"]]
    rng.shuffle(adjectives)
    sound = [word["rhythm"], word["pitch"]]
    rng.shuffle(sound)
    phrases = [
        [*rng.choice(ARTICLES), *adjectives, word["shape"]],
        [*rng.choice(PLACE_WORDS), word["row"], word["col"]],
        [*rng.choice(SOUND_LINKS), *sound, rng.choice(SOUND_NOUNS)],
    ]
    rng.shuffle(phrases)
    return [*rng.choice(OPENERS), *(w for phrase in phrases for w in phrase)]


def render_captions(a: dict[str, torch.Tensor], per_item: int, rng: random.Random,
                    synonyms: bool = True) -> torch.Tensor:
    """``per_item`` captions per item, item-major, as ``[N * per_item, MAX_WORDS]`` token ids."""
    columns = {name: values.tolist() for name, values in a.items()}
    n = len(columns["shape"])
    ids = torch.zeros(n * per_item, MAX_WORDS, dtype=torch.long)
    for item in range(n):
        values = {name: columns[name][item] for name in ATTRIBUTES}
        for k in range(per_item):
            tokens = [TOKEN[w] for w in caption_words(values, rng, synonyms)]
            ids[item * per_item + k, : len(tokens)] = torch.tensor(tokens)
    return ids


class PairedShapesDataModule(TensorDataModule):
    """Built-in retrieval data: images of shapes, beeps, and captions naming both.

    The image shows only the visual attributes (shape, colour, size, position on a 3 x 3 grid),
    the audio only the sound attributes (pitch, rhythm), and the caption describes all of them
    in varied wording; so retrieving the caption needs both the image and the audio, and a
    model that fuses them wins over either alone (numbers in the module docstring). Thousands of
    independently drawn items, not a few classes: retrieval here is not classification in
    disguise. ``label`` is the group id (the item), shared by the ``captions_per_item`` rows of
    an item. The spec's task is ``retrieval`` with no outputs and no classes.

    Args:
        size: items in all splits together (rows = size x captions_per_item).
        captions_per_item: rows per item, each with its own caption and the item's image and audio.
        synonyms: name each attribute value by one of its synonyms at random (False: always by its
            first word, as the built-in captioning scenes do, so that n-gram metrics measure whether
            the attributes are right rather than which synonym a reference happened to draw).
        noise: standard deviation of the Gaussian noise on every pixel and audio sample (the
            signal's amplitude is about 1).
        modalities: which of audio, image, text to serve (None: all three).
        splits: train/val/test fractions of the items.
        data_seed: seed of the generated data (separate from the training seed).
        **loader_options: ``batch_size``, ``eval_batch_size``, ``seed`` and the other
            ``TensorDataModule`` options.
    """

    def __init__(
        self,
        size: int = 2500,
        captions_per_item: int = 1,
        synonyms: bool = True,
        noise: float = 0.3,
        modalities: list[str] | tuple[str, ...] | None = ALL_MODALITIES,
        splits: list[float] | tuple[float, ...] = (0.6, 0.1, 0.3),
        data_seed: int = 0,
        **loader_options: Any,
    ) -> None:
        super().__init__(**loader_options)
        modalities = ALL_MODALITIES if modalities is None else modalities
        unknown = sorted(set(modalities) - set(ALL_MODALITIES))
        if unknown or not modalities:
            raise ConfigError(
                f"dataset.modalities={list(modalities)} is not a non-empty subset of the pairs dataset's "
                f"modalities; choose from {list(ALL_MODALITIES)}, e.g. dataset.modalities=[image,text]"
            )
        if isinstance(size, bool) or not isinstance(size, int) or size < 30:
            raise ConfigError(f"dataset.size={size} must be a whole number of items, at least 30")
        if isinstance(captions_per_item, bool) or not isinstance(captions_per_item, int) or captions_per_item < 1:
            raise ConfigError(f"dataset.captions_per_item={captions_per_item} must be a whole number >= 1")
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
            raise ConfigError(f"dataset.noise={noise} must be a standard deviation >= 0 (e.g. dataset.noise=0.3)")
        if len(splits) != 3 or abs(sum(splits) - 1.0) > 1e-6 or min(splits) <= 0:
            raise ConfigError(f"dataset.splits={list(splits)} must be three positive fractions summing to 1")
        self.size = size
        self.captions_per_item = captions_per_item
        self.synonyms = bool(synonyms)
        self.noise = float(noise)
        self.modalities = sorted(modalities)
        self.fractions = tuple(float(f) for f in splits)
        self.data_seed = data_seed
        counts = self._item_counts()
        if min(counts.values()) < 2:
            raise ConfigError(
                f"dataset.splits={list(splits)} with dataset.size={size} leaves {counts} items per split; "
                f"retrieval needs at least 2 in each: raise dataset.size or the small fractions"
            )
        self._attributes: dict[str, dict[str, torch.Tensor]] = {}

    @property
    def attributes(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{split: {attribute: int64 [items]}}``: the drawn attributes of each split's items, in row order."""
        self.setup()
        return self._attributes

    def _item_counts(self) -> dict[str, int]:
        n_train = int(self.fractions[0] * self.size)
        n_val = int(self.fractions[1] * self.size)
        return {"train": n_train, "val": n_val, "test": self.size - n_train - n_val}

    def _generator(self, stream: int) -> torch.Generator:
        """An independent generator per stream, so each modality's data depends only on data_seed."""
        return torch.Generator().manual_seed(self.data_seed * 16 + stream)

    def build(self):
        attributes = draw_attributes(self.size, self._generator(0))
        k = self.captions_per_item
        rendered = {
            "image": render_images(attributes, self.noise, self._generator(1)).repeat_interleave(k, 0),
            "audio": render_audio(attributes, self.noise, self._generator(2)).repeat_interleave(k, 0),
            "text": render_captions(attributes, k, random.Random(self.data_seed * 16 + 3), self.synonyms),
        }
        data = {m: rendered[m] for m in self.modalities}
        data["label"] = torch.arange(self.size).repeat_interleave(k)
        data["present"] = torch.ones(self.size * k, len(self.modalities), dtype=torch.bool)
        splits, start = {}, 0
        for split, count in self._item_counts().items():
            items = slice(start, start + count)
            rows = slice(start * k, (start + count) * k)
            splits[split] = {key: value[rows] for key, value in data.items()}
            self._attributes[split] = {name: values[items] for name, values in attributes.items()}
            start += count
        assert tuple(splits) == SPLITS
        return splits, self._make_spec()

    def _make_spec(self) -> DataSpec:
        shapes = {
            "image": ModalitySpec("image", "image", (3, IMAGE_SIZE, IMAGE_SIZE)),
            "text": ModalitySpec("text", "text", (MAX_WORDS,), vocab_size=len(VOCABULARY)),
            "audio": ModalitySpec("audio", "audio", (AUDIO_LENGTH,)),
        }
        tokenizers = {"text": {"tokenizer": "word", "lowercase": True, "vocab": list(VOCABULARY), "length": MAX_WORDS}}
        return DataSpec(tuple(shapes[m] for m in self.modalities), "retrieval", 0, (),
                        extra={"tokenizers": {m: tokenizers[m] for m in self.modalities if m in tokenizers}})
