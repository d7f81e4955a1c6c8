"""``task=retrieval``: cross-modal retrieval between two sides of each row.

Each side (``task.query``, ``task.target``: lists of modalities) is fused with the configured
fusion (a one-modality side takes its encoder's pooled vector), projected to
``task.embed_dim`` and L2-normalised, as in CLIP (Radford et al., ICML 2021,
arXiv:2103.00020). Training contrasts the sides over the batch (``mmrun.tasks.contrastive``:
``infonce`` or ``siglip``). Validation and test rank every query against every target of the
whole split, in both directions (``mmrun.metrics.ranking``, chunked: the full similarity
matrix is never held): recall@1/5/10 (a hit when any positive is within K), mean and median
rank of the first positive, mAP, and ``r_mean``, the mean of the six recalls (the monitor).

Rows with the same ``label`` (the data's group id, e.g. ``dataset.group_column=image_id``) are
positives of each other. A side whose inputs are identical within every group (the image of
five captions) is ranked once per group, as CLIP_benchmark does for COCO and Flickr30k; a row
whose side has none of its modalities present is left out of that side.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from mmrun.data.spec import DataSpec
from mmrun.errors import ConfigError
from mmrun.tasks.contrastive import InfoNCELoss, SigLIPLoss
from mmrun.tasks.two_tower import TwoTowerTask, resolve_side

log = logging.getLogger("mmrun")
RECALL_KS = (1, 5, 10)
DIRECTIONS = ("q2t", "t2q")
LOSSES = ("infonce", "siglip")


def side_rows(valid: torch.Tensor, prints: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Rows that stand for a side: the valid ones, one per group when the side is the same
    within every group (equal input fingerprints), in their original order."""
    rows = valid.nonzero().squeeze(1)
    order = torch.argsort(groups[rows], stable=True)
    rows = rows[order]
    sorted_groups = groups[rows]
    first = torch.ones_like(sorted_groups, dtype=torch.bool)
    first[1:] = sorted_groups[1:] != sorted_groups[:-1]
    if bool(first.all()):
        return rows.sort().values
    group_start = prints[rows][first][torch.cumsum(first, 0) - 1]
    if torch.allclose(prints[rows], group_start, rtol=1e-9, atol=1e-9):
        rows = rows[first]
    return rows.sort().values


class RetrievalTask(TwoTowerTask):
    """Two sides, each fused, projected and normalised; a contrastive loss; ranking metrics.

    Args:
        spec, dims, fusion: see ``mmrun.tasks.base``.
        type: ``retrieval`` (the manifest reads groups instead of labels for it).
        query, target: the modalities of each side (names, or kinds: ``image`` = every image
            modality); a modality may not be on both sides.
        embed_dim: width of the shared embedding.
        loss: ``infonce`` (CLIP) or ``siglip``.
        temperature: starting temperature of infonce (scale 1/0.07); siglip starts at t'=10, b=-10.
        max_scale: infonce's logit-scale ceiling (100, as CLIP).
        rankings_top_k: targets per query kept for ``rankings.csv`` (``mmrun eval``).
    """

    family = "retrieval"
    monitor, monitor_mode = "val/r_mean", "max"

    def __init__(self, spec: DataSpec, dims: dict[str, int], fusion: DictConfig, type: str = "retrieval",
                 query: list[str] = ("image",), target: list[str] = ("text",), embed_dim: int = 128,
                 loss: str = "infonce", temperature: float = 0.07, max_scale: float = 100.0,
                 rankings_top_k: int = 10) -> None:
        check_pairs(spec)
        if type != "retrieval":
            raise ConfigError(f"task.type={type} does not fit task=retrieval; leave it at retrieval")
        if loss not in LOSSES:
            raise ConfigError(f"task.loss={loss} is unknown; use one of {', '.join(LOSSES)}")
        super().__init__(spec, dims, fusion, {"query": query, "target": target},
                         {"query": "task.query", "target": "task.target"}, embed_dim,
                         ("queries", "targets", "groups", "query_valid", "target_valid", "query_prints",
                          "target_prints"), rankings_top_k)
        self.criterion = InfoNCELoss(temperature, max_scale) if loss == "infonce" else SigLIPLoss()
        generator = torch.Generator().manual_seed(0)
        for m in spec.modalities:  # fixed random projections: equal inputs give equal fingerprints
            if m.name in self.sides["query"] + self.sides["target"]:
                self.register_buffer(f"print_{m.name}", torch.randn(math.prod(m.shape), generator=generator,
                                                                    dtype=torch.float64), persistent=False)

    @classmethod
    def modalities_read(cls, task_cfg, spec):
        check_pairs(spec)
        names = set(resolve_side(task_cfg.get("query", ["image"]), spec, "task.query"))
        names |= set(resolve_side(task_cfg.get("target", ["text"]), spec, "task.target"))
        return [n for n in spec.modality_names if n in names]

    # ------------------------------------------------------------- training
    def loss(self, outputs, batch) -> torch.Tensor:
        valid = outputs["query_valid"] & outputs["target_valid"]
        return self.criterion(outputs["queries"], outputs["targets"], batch["label"], valid)

    def similarity_scale(self) -> torch.Tensor:
        """The loss's learned scale of a cosine similarity (infonce's logit scale, siglip's ``t'``)."""
        return self.criterion.scale()

    # -------------------------------------------------------------- metrics
    def _fingerprint(self, side: str, batch) -> torch.Tensor:
        # .double(): a half-precision trainer converts the module's buffers too
        return torch.stack([batch[n].flatten(1).double() @ getattr(self, f"print_{n}").double()
                            for n in self.sides[side]], 1)

    def update_metrics(self, outputs, batch, split):
        if split in self.collectors:
            self.collectors[split].update(groups=batch["label"].long(), query_prints=self._fingerprint("query", batch),
                                          target_prints=self._fingerprint("target", batch), **outputs)

    def metric_names(self, split: str) -> list[str]:
        names = [f"{split}/{d}_{m}" for d in DIRECTIONS
                 for m in (*(f"recall@{k}" for k in RECALL_KS), "mean_rank", "median_rank", "map")]
        return names + [f"{split}/r_mean"]

    def epoch_metrics(self, split: str) -> dict[str, torch.Tensor]:
        from mmrun.metrics.ranking import positives_from_groups, ranking_metrics

        data = self.collected(split)
        if data is None:
            return {}
        groups = data["groups"]
        rows = {"query": side_rows(data["query_valid"], data["query_prints"], groups),
                "target": side_rows(data["target_valid"], data["target_prints"], groups)}
        vectors = {"query": data["queries"], "target": data["targets"]}
        values: dict[str, float] = {}
        report: dict[str, Any] = {}
        top_k = self.kept_top_k
        for direction, (a, b) in zip(DIRECTIONS, (("query", "target"), ("target", "query"))):
            result = ranking_metrics(vectors[a][rows[a]], vectors[b][rows[b]],
                                     positives_from_groups(groups[rows[a]], groups[rows[b]]),
                                     hit_ks=RECALL_KS, top_k=top_k)
            for k in RECALL_KS:
                values[f"{split}/{direction}_recall@{k}"] = result.metrics[f"hit@{k}"]
            for name in ("mean_rank", "median_rank", "map"):
                values[f"{split}/{direction}_{name}"] = result.metrics[name]
            report[direction] = {"queries": len(rows[a]), "candidates": len(rows[b]), "evaluated": result.queries,
                                 "without_positive": result.skipped}
            if result.skipped and split == "test":
                log.warning("%s %s: %d of %d queries have no positive in the split and were left out",
                            split, direction, result.skipped, len(rows[a]))
            if top_k:
                self.rankings[direction] = {"queries": rows[a], "targets": rows[b], "result": result,
                                            "query_groups": groups[rows[a]], "target_groups": groups[rows[b]]}
        values[f"{split}/r_mean"] = sum(values[f"{split}/{d}_recall@{k}"] for d in DIRECTIONS for k in RECALL_KS) / 6
        self.reports[split] = report
        return {name: torch.tensor(float(value)) for name, value in values.items()}

    def write_rankings(self, path: Path, scoring) -> None:
        """Each query's best targets, both directions, by manifest row (``mmrun.rankings``)."""
        from mmrun.rankings import write_rankings

        write_rankings(path, self.rankings, scoring.row_ids)


def check_pairs(spec: DataSpec) -> None:
    """Retrieval reads rows as pairs with group ids: data made for it (``spec.task`` retrieval)."""
    if spec.task != "retrieval":
        raise ConfigError(f"task=retrieval needs paired data, but this dataset holds {spec.task} labels; use "
                          "the built-in dataset=pairs, or dataset=manifest (each row a pair; "
                          "dataset.group_column marks the rows of one item)")
