"""Interaction data for ``task=recommendation``: users x items, items with content.

The contract every interactions datamodule keeps (``InteractionsDataModule``):

* ``splits[split]``: one row per user-item interaction (a positive): ``user`` ``[N, 1]``
  (the user id as a categorical modality: ``1 + user index``), ``user_index`` and
  ``item_index`` ``[N]`` (0-based), ``label`` (= ``item_index``) and ``present`` ``[N, M]``;
* ``catalogue``: one row per item of the whole catalogue: every item-side modality
  (``item``: ``[I, 1]`` ids, ``1 + item index`` for items seen in training and 0, the unknown
  id, for cold items; content such as ``title`` or ``attributes``), ``present`` ``[I, M]``
  and ``cold`` ``[I]`` (never in a training interaction);
* ``user_features``: one row per user (by ``user_index``) of every user feature modality
  (empty when users are their id alone); a row's ``present`` already says which it has;
* ``spec.task == "recommendation"``; ``spec.extra["recommendation"]`` names the user and the
  item id modalities, and the user feature modalities (``user_features``).

Batches hold the interaction rows; the recommendation task adds each row's item content
from the catalogue and its user's features (``mmrun.tasks.recommendation``), so content is
stored once per item and features once per user.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from mmrun.data.spec import DataSpec, ModalitySpec
from mmrun.data.tensor_datamodule import SPLITS, TensorDataModule
from mmrun.errors import ConfigError

ALL_MODALITIES = ("attributes", "item", "title", "user")
GENRE_WORDS = 4  # words per genre in titles
FILLER = ("the", "a", "of", "new", "one", "my", "last", "story", "night", "day", "life", "world")
TITLE_LENGTH = 6
ATTRIBUTES = 8  # numeric content features per item


class InteractionsDataModule(TensorDataModule):
    """Base of the interaction datasets: splits of interactions plus an item ``catalogue``
    and, where the data has them, ``user_features`` (set by ``build``)."""

    catalogue: dict[str, torch.Tensor]
    user_features: dict[str, torch.Tensor]

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.user_features = {}
            self.splits, self._spec, self.catalogue = self.build()


class SyntheticInteractionsDataModule(InteractionsDataModule):
    """Built-in users x items generated from latent tastes, where content ranks cold items.

    Items belong to one of ``genres`` clusters: an item's latent vector is its genre's centre
    plus noise, its popularity is log-normal. A user likes one or two genres (latent vector a
    mix of their centres plus noise) and interacts with ``interactions_per_user`` items drawn
    without replacement with probability proportional to ``exp(user . item / temperature +
    popularity)``. Content shows the latent vector: ``title`` holds two of the genre's words
    and filler words; ``attributes`` is the latent vector through a fixed random map plus
    noise. A fraction ``cold_items`` of the items never appears in training: their
    interactions go to validation and test, and their ``item`` id is the unknown id, so only
    content can rank them.

    Each user's other interactions are split at random by ``splits``; ``modalities`` picks
    the modalities to serve (``[user, item]`` is the id-only model; ``user`` is required);
    ``**loader_options`` are the ``TensorDataModule`` options (``batch_size``, ...).
    """

    def __init__(self, num_users: int = 1500, num_items: int = 2000, genres: int = 12, interactions_per_user: int = 16,
                 temperature: float = 0.5, noise: float = 0.5, cold_items: float = 0.1,
                 modalities: list[str] | tuple[str, ...] | None = ALL_MODALITIES,
                 splits: list[float] | tuple[float, ...] = (0.8, 0.1, 0.1), data_seed: int = 0,
                 **loader_options: Any) -> None:
        super().__init__(**loader_options)
        modalities = ALL_MODALITIES if modalities is None else tuple(modalities)
        unknown = sorted(set(modalities) - set(ALL_MODALITIES))
        if unknown or "user" not in modalities or len(modalities) < 2:
            raise ConfigError(f"dataset.modalities={list(modalities)} must hold user and at least one item "
                              f"modality of {[m for m in ALL_MODALITIES if m != 'user']}, "
                              "e.g. dataset.modalities=[user,item] for the id-only model")
        if not 0.0 <= cold_items < 1.0:
            raise ConfigError(f"dataset.cold_items={cold_items} must be a fraction in [0, 1)")
        if num_users < 10 or num_items < 10 or genres < 1 or interactions_per_user < 3:
            raise ConfigError("dataset.num_users and dataset.num_items must be at least 10, dataset.genres at least 1 "
                              "and dataset.interactions_per_user at least 3")
        if interactions_per_user > num_items:
            raise ConfigError(f"dataset.interactions_per_user={interactions_per_user} exceeds "
                              f"dataset.num_items={num_items}")
        if len(splits) != 3 or abs(sum(splits) - 1.0) > 1e-6 or min(splits) <= 0:
            raise ConfigError(f"dataset.splits={list(splits)} must be three positive fractions summing to 1")
        self.users, self.items, self.genres = num_users, num_items, genres
        self.per_user, self.temperature, self.noise = interactions_per_user, temperature, noise
        self.cold_fraction = cold_items
        self.modalities = sorted(modalities)
        self.fractions = tuple(splits)
        self.data_seed = data_seed

    def _tastes(self, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Genre of each item, latent vectors of items and users, item popularity."""
        centres = torch.nn.functional.normalize(torch.randn(self.genres, ATTRIBUTES, generator=g), dim=1) * 2
        genre = torch.randint(0, self.genres, (self.items,), generator=g)
        item_latent = centres[genre] + 0.5 * torch.randn(self.items, ATTRIBUTES, generator=g)
        liked = torch.randint(0, self.genres, (self.users, 2), generator=g)
        mix = torch.rand(self.users, 1, generator=g)
        user_latent = mix * centres[liked[:, 0]] + (1 - mix) * centres[liked[:, 1]]
        user_latent = user_latent + 0.5 * torch.randn(self.users, ATTRIBUTES, generator=g)
        popularity = 0.5 * torch.randn(self.items, generator=g)
        return genre, item_latent, user_latent, popularity

    def _interactions(self, user_latent, item_latent, popularity, g) -> torch.Tensor:
        """``[users * per_user, 2]`` (user, item) pairs, each user's items without replacement."""
        logits = user_latent @ item_latent.T / self.temperature + popularity
        chosen = torch.multinomial(torch.softmax(logits, 1), self.per_user, replacement=False, generator=g)
        users = torch.arange(self.users).repeat_interleave(self.per_user)
        return torch.stack([users, chosen.reshape(-1)], 1)

    def _titles(self, genre: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Token ids: two words of the item's genre among filler words (0 = padding)."""
        n = len(genre)
        words = 1 + len(FILLER) + genre.unsqueeze(1) * GENRE_WORDS + torch.randint(0, GENRE_WORDS, (n, 2), generator=g)
        filler = 1 + torch.randint(0, len(FILLER), (n, TITLE_LENGTH), generator=g)
        lengths = torch.randint(3, TITLE_LENGTH + 1, (n,), generator=g)
        ids = torch.where(torch.arange(TITLE_LENGTH) < lengths.unsqueeze(1), filler, torch.zeros_like(filler))
        slots = torch.stack([torch.randperm(3, generator=g)[:2] for _ in range(n)])  # two of the first three
        ids.scatter_(1, slots, words)
        return ids

    def _split(self, pairs: torch.Tensor, cold: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """0/1/2 (train/val/test) per interaction; cold items' interactions never train."""
        draw = torch.rand(len(pairs), generator=g)
        bounds = torch.tensor([self.fractions[0], self.fractions[0] + self.fractions[1]])
        split = torch.bucketize(draw, bounds, right=True)
        on_cold = cold[pairs[:, 1]]
        split[on_cold] = 1 + (torch.rand(int(on_cold.sum()), generator=g) < 0.5).long()
        return split

    def build(self):
        g = torch.Generator().manual_seed(self.data_seed)
        genre, item_latent, user_latent, popularity = self._tastes(g)
        pairs = self._interactions(user_latent, item_latent, popularity, g)
        cold = torch.zeros(self.items, dtype=torch.bool)
        cold[torch.randperm(self.items, generator=g)[: round(self.cold_fraction * self.items)]] = True
        split = self._split(pairs, cold, g)
        projection = torch.randn(ATTRIBUTES, ATTRIBUTES, generator=g) / math.sqrt(ATTRIBUTES)
        content = {
            "item": torch.where(cold, 0, torch.arange(1, self.items + 1)).unsqueeze(1),
            "title": self._titles(genre, g),
            "attributes": item_latent @ projection + self.noise * torch.randn(self.items, ATTRIBUTES, generator=g),
        }
        spec = self._make_spec()
        item_side = [m for m in self.modalities if m != "user"]
        catalogue = {m: content[m] for m in item_side}
        catalogue["present"] = torch.ones(self.items, len(self.modalities), dtype=torch.bool)
        catalogue["cold"] = cold
        splits = {}
        for index, name in enumerate(SPLITS):
            rows = pairs[split == index]
            splits[name] = {"user": rows[:, :1] + 1, "user_index": rows[:, 0].clone(),
                            "item_index": rows[:, 1].clone(), "label": rows[:, 1].clone(),
                            "present": torch.ones(len(rows), len(self.modalities), dtype=torch.bool)}
        return splits, spec, catalogue

    def _make_spec(self) -> DataSpec:
        shapes = {
            "user": ModalitySpec("user", "categorical", (1,), vocab_size=self.users + 1),
            "item": ModalitySpec("item", "categorical", (1,), vocab_size=self.items + 1),
            "title": ModalitySpec("title", "text", (TITLE_LENGTH,), vocab_size=1 + len(FILLER) + GENRE_WORDS * self.genres),
            "attributes": ModalitySpec("attributes", "tabular", (ATTRIBUTES,)),
        }
        return DataSpec(tuple(shapes[m] for m in self.modalities), "recommendation", 0,
                        extra={"recommendation": {"user": "user", "item": "item" if "item" in self.modalities else None}})
