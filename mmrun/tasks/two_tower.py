"""Two towers: each side's modalities fused, projected to a shared width and L2-normalised.

The common part of the ranking families (``retrieval``: query and target sides of a row;
``recommendation``: the user and the item). A one-modality side takes its encoder's pooled
vector; a side of several uses the configured fusion (one per side). The embeddings are
compared by cosine similarity, as in CLIP (Radford et al., ICML 2021, arXiv:2103.00020) and in
two-tower recommenders (Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus
Item Recommendations", RecSys 2019).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchmetrics
from omegaconf import DictConfig
from torch import nn
from torchmetrics.utilities import dim_zero_cat

from mmrun.data.spec import DataSpec
from mmrun.errors import ConfigError
from mmrun.fusion.budget import build_fusion
from mmrun.tasks.base import TaskFamily

log = logging.getLogger("mmrun")


def resolve_side(entries: Any, spec: DataSpec, key: str) -> list[str]:
    """The modality names a side reads: an entry names a modality, or a kind (all of that kind)."""
    if isinstance(entries, str):
        entries = [entries]
    names = spec.modality_names
    if not entries:
        raise ConfigError(f"{key} is empty; list the modalities of this side, e.g. {key}=[{names[0]}]")
    chosen: list[str] = []
    for entry in entries:
        found = [entry] if entry in names else [m.name for m in spec.modalities if m.kind == entry]
        if not found:
            raise ConfigError(f"{key} names {entry!r}, which the data lacks; its modalities are "
                              f"{', '.join(f'{m.name} ({m.kind})' for m in spec.modalities)}")
        chosen += [name for name in found if name not in chosen]
    return [name for name in names if name in chosen]  # spec order, as the present mask


class SplitCollector(torchmetrics.Metric):
    """Per-row tensors of a whole split (``fields``), gathered across ranks once (``cat``)."""

    full_state_update = False

    def __init__(self, fields: tuple[str, ...]) -> None:
        super().__init__()
        self.fields = fields
        for name in fields:
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, **parts: torch.Tensor) -> None:
        for name in self.fields:
            getattr(self, name).append(parts[name])

    def compute(self) -> dict[str, torch.Tensor]:
        return {name: dim_zero_cat(getattr(self, name)) for name in self.fields}


class TwoTowerTask(TaskFamily):
    """Builds the two sides; subclasses add the loss, the metrics and the outputs.

    Args:
        spec, dims, fusion: see ``mmrun.tasks.base``.
        sides: ``{"query": [...], "target": [...]}`` as configured (names or kinds).
        keys: the config keys of the sides, for messages (``task.query``, ``task.target``).
        embed_dim: width of the shared embedding.
        fields: what validation and test record per row for the whole-split metrics.
        rankings_top_k: best targets per query written to rankings.csv by mmrun eval and predict.
    """

    def __init__(self, spec: DataSpec, dims: dict[str, int], fusion: DictConfig, sides: dict[str, Any],
                 keys: dict[str, str], embed_dim: int, fields: tuple[str, ...], rankings_top_k: int) -> None:
        super().__init__()
        self.rankings_top_k = rankings_top_k
        self.embed_dim = embed_dim
        self.rankings: dict[str, Any] = {}  # what rankings.csv shows, kept while record_outputs is set
        self.reports: dict[str, dict[str, Any]] = {}  # split -> rows ranked and left out, for metrics.json
        self.collectors = nn.ModuleDict({"val": SplitCollector(fields), "test": SplitCollector(fields)})
        if embed_dim < 1:
            raise ConfigError(f"task.embed_dim={embed_dim} must be a positive width, e.g. 128")
        self.sides = {side: resolve_side(entries, spec, keys[side]) for side, entries in sides.items()}
        both = sorted(set(self.sides["query"]) & set(self.sides["target"]))
        if both:
            raise ConfigError(f"{both[0]} is on both sides ({keys['query']} and {keys['target']}); each side "
                              "is ranked against the other, so give each side its own modalities")
        order = spec.modality_names
        self.columns = {side: [order.index(n) for n in names] for side, names in self.sides.items()}
        self.fusions = nn.ModuleDict()
        self.projections = nn.ModuleDict()
        for side, names in self.sides.items():
            width = dims[names[0]]
            if len(names) > 1:
                self.fusions[side] = build_fusion(fusion, {n: dims[n] for n in names},
                                                  lambda width: nn.Linear(width, embed_dim))
                width = self.fusions[side].out_dim
            self.projections[side] = nn.Linear(width, embed_dim)
        if not self.fusions:
            log.info("fusion=%s is not used: each side has one modality (%s)", fusion._target_.rsplit(".", 1)[-1],
                     "; ".join(f"{keys[side]}={names}" for side, names in self.sides.items()))

    def modality_groups(self, read: list[str]) -> list[list[str]]:
        """One group per side, so that no side of a row loses all of its modalities."""
        return [list(names) for names in self.sides.values()]

    @property
    def kept_top_k(self) -> int:
        """Targets per query to keep from a ranking: only while scoring for rankings.csv."""
        return self.rankings_top_k if self.record_outputs else 0

    def report(self, split: str) -> dict[str, Any]:
        return {"ranking": self.reports.get(split, {})}

    def write_outputs(self, scoring) -> Path:
        """``rankings.csv`` in the run folder (``write_rankings``); ranks the scored rows first for predict."""
        if not self.rankings:
            scoring.trainer.test(scoring.model, dataloaders=scoring.loader, verbose=False)
        path = scoring.run_dir / "rankings.csv"
        self.write_rankings(path, scoring)
        return path

    @abstractmethod
    def write_rankings(self, path: Path, scoring) -> None:
        """Write the kept rankings (``self.rankings``) as ``mmrun.rankings`` describes."""

    def collected(self, split: str) -> dict[str, torch.Tensor] | None:
        """The rows ``self.collectors[split]`` recorded this epoch, gathered across ranks and reset;
        None when the split recorded nothing (training, or no rows)."""
        collector = self.collectors[split] if split in self.collectors else None  # noqa: SIM401 (ModuleDict has no get)
        if collector is None or collector.update_count == 0:
            return None
        data = collector.compute()
        collector.reset()
        return data

    def embed(self, side: str, encoded, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised embeddings of ``side`` and whether each row has any of its modalities."""
        names, columns = self.sides[side], self.columns[side]
        side_present = present[:, columns]
        if len(names) == 1:
            vector = encoded[names[0]].pooled
        else:
            vector = self.fusions[side]({n: encoded[n] for n in names}, side_present)
        return F.normalize(self.projections[side](vector).float(), dim=-1), side_present.any(1)

    def forward(self, encoded, batch) -> dict[str, torch.Tensor]:
        queries, query_valid = self.embed("query", encoded, batch["present"])
        targets, target_valid = self.embed("target", encoded, batch["present"])
        return {"queries": queries, "targets": targets, "query_valid": query_valid, "target_valid": target_valid}
