"""``task=recommendation``: a two-tower recommender over users and an item catalogue with content.

The user side (``task.user``: the user id and the user features, such as an age or a
country) and the item side (``task.item``: the item id and content such as a title, an image,
numbers) are each fused,
projected and L2-normalised (``mmrun.tasks.two_tower``). Training is the in-batch sampled
softmax of two-tower recommenders (Yi et al., "Sampling-Bias-Corrected Neural Modeling for
Large Corpus Item Recommendations", RecSys 2019): each interaction's item against the batch's
other items. Item ids (and user ids, when the user side has features) are dropped to the
unknown id at rate ``task.id_dropout`` while training, so that content and features learn to
stand alone (DropoutNet: Volkovs et al., NeurIPS 2017): cold items, which never appear in
training, and users new at ``mmrun eval`` have only the unknown id.

Validation and test rank the **whole catalogue** for every user of the split, with the items
of the user's earlier splits removed (train for validation; train and validation for test), as
Microsoft Recommenders and Cornac do: NDCG@10, HR@10, Recall@20 and MRR (``mmrun.metrics.ranking``).
The same metrics are reported for warm items (positives and candidates: items seen in
training) and cold items (positives and candidates: items never seen in training), where only
content can rank. The monitor is ``val/ndcg@10``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from mmrun.data.spec import DataSpec
from mmrun.errors import ConfigError
from mmrun.tasks.contrastive import InfoNCELoss
from mmrun.tasks.two_tower import TwoTowerTask, resolve_side

SPLIT_ORDER = ("train", "val", "test")
SUBSETS = ("", "warm_", "cold_")  # all items, items seen in training, items never seen in training


def csr(query_of: torch.Tensor, targets: torch.Tensor, queries: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR ``(ptr, idx)`` of the distinct ``targets`` of each query position ``query_of``."""
    pairs = torch.unique(torch.stack([query_of, targets], 1), dim=0)  # sorted by query, then target
    counts = torch.bincount(pairs[:, 0], minlength=queries)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)]), pairs[:, 1].contiguous()


class RecommendationTask(TwoTowerTask):
    """Users x items, two towers, sampled softmax, full-catalogue ranking (module docstring).

    Args:
        spec, dims, fusion: see ``mmrun.tasks.base``.
        type: ``recommendation``.
        user: the user side's modalities (names or kinds); null = the user id and every user
            feature of the data.
        item: the item side's modalities; null = every modality of the data but the user's.
        embed_dim: width of the shared embedding.
        temperature, max_scale: the softmax's learned logit scale (start 1/temperature, ceiling).
        id_dropout: the rate at which training rows see the unknown item id, and the unknown user
            id (each only when its side has other modalities besides the id).
        k: the cut-off of NDCG and HR; recall_k: the cut-off of Recall.
        rankings_top_k: items per user written to rankings.csv by mmrun eval.
    """

    family = "recommendation"
    monitor, monitor_mode = "val/ndcg@10", "max"

    def __init__(self, spec: DataSpec, dims: dict[str, int], fusion: DictConfig, type: str = "recommendation",
                 user: list[str] | None = None, item: list[str] | None = None, embed_dim: int = 64,
                 temperature: float = 0.07, max_scale: float = 100.0, id_dropout: float = 0.5, k: int = 10,
                 recall_k: int = 20, rankings_top_k: int = 10) -> None:
        check_interactions(spec)
        if type != "recommendation":
            raise ConfigError(f"task.type={type} does not fit task=recommendation; leave it at recommendation")
        if not 0.0 <= id_dropout < 1.0:
            raise ConfigError(f"task.id_dropout={id_dropout} must be a rate in [0, 1)")
        super().__init__(spec, dims, fusion, {"query": user_side(user, spec), "target": item_side(user, item, spec)},
                         {"query": "task.user", "target": "task.item"}, embed_dim, ("users", "user_index", "item_index"),
                         rankings_top_k)
        users = set(user_modalities(spec))
        misplaced = sorted((set(self.sides["query"]) - users) | (set(self.sides["target"]) & users))
        if misplaced:
            raise ConfigError(f"{misplaced} on the wrong side: task.user reads the user id and user features "
                              f"({sorted(users)}), task.item the item id and item content")
        self.criterion = InfoNCELoss(temperature, max_scale, symmetric=False)
        ids = {"query": spec.extra["recommendation"]["user"], "target": spec.extra["recommendation"].get("item")}
        # An id is dropped only beside other modalities of its side: an id-only side would lose its only input.
        self.dropped_ids = [name for side, name in ids.items()
                            if name in self.sides[side] and set(self.sides[side]) - {name}]
        self.id_dropout = id_dropout
        self.ids = {name for name in ids.values() if name}
        self.k, self.recall_k = k, recall_k
        self.monitor = f"val/ndcg@{k}"
        self.encode_batch_size = 1024
        self.items: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # split -> (embeddings, valid)
        self.catalogue: dict[str, torch.Tensor] = {}
        self.user_features: dict[str, torch.Tensor] = {}
        self.resident: tuple[torch.device, torch.dtype] | None = None  # where catalogue and features are
        self.history: dict[str, torch.Tensor] = {}  # split -> [N, 2] (user index, item index)
        self.scored = {"val": "val", "test": "test"}
        self.names: dict[str, list] = {}

    @classmethod
    def modalities_read(cls, task_cfg, spec):
        check_interactions(spec)
        user = task_cfg.get("user")
        names = set(user_side(user, spec)) | set(item_side(user, task_cfg.get("item"), spec))
        return [n for n in spec.modality_names if n in names]

    # ----------------------------------------------------------------- data
    def attach_data(self, datamodule, split: str = "test") -> None:
        self.catalogue = dict(datamodule.catalogue)
        self.user_features = {name: datamodule.user_features[name] for name in self.sides["query"]
                              if name in datamodule.user_features}
        self.resident = None
        self.encode_batch_size = datamodule.eval_batch_size
        self.history = {name: torch.stack([rows["user_index"], rows["item_index"]], 1).cpu()
                        for name, rows in datamodule.splits.items()}
        self.scored["test"] = split
        self.names = {"user": list(getattr(datamodule, "user_names", []) or []),
                      "item": list(getattr(datamodule, "item_names", []) or [])}

    def _catalogue(self, device: torch.device) -> dict[str, torch.Tensor]:
        """The catalogue on ``device``, floating content in the model's dtype; the user features
        move with it (moved once, kept)."""
        dtype = self.projections["target"].weight.dtype
        if self.catalogue and self.resident != (device, dtype):
            self.catalogue, self.user_features = (
                {key: value.to(device, dtype=dtype if value.is_floating_point() else None) for key, value in part.items()}
                for part in (self.catalogue, self.user_features))
            self.resident = (device, dtype)
        return self.catalogue

    def prepare_batch(self, batch):
        if not self.catalogue:
            raise ConfigError("task=recommendation reads items from the dataset's catalogue; use an "
                              "interactions dataset (dataset=interactions)")
        catalogue = self._catalogue(batch["item_index"].device)
        batch = {**batch, **{name: catalogue[name].index_select(0, batch["item_index"])
                             for name in self.sides["target"]},
                 **{name: values.index_select(0, batch["user_index"]) for name, values in self.user_features.items()}}
        if self.training and self.id_dropout > 0:
            for name in reversed(self.dropped_ids):  # the item id first: the same draws as without user features
                dropped = torch.rand(batch[name].shape[0], 1, device=batch[name].device) < self.id_dropout
                batch[name] = batch[name].masked_fill(dropped, 0)
        return batch

    def modality_groups(self, read: list[str]) -> list[list[str]]:
        """Per side, the modalities ``model.modality_dropout`` may drop: never the ids. The user id
        is what the user side is built on, and ids have their own ``task.id_dropout``, after which
        the item side keeps at least one content modality."""
        return [[name for name in names if name not in self.ids] for names in super().modality_groups(read)]

    # ------------------------------------------------------------- training
    def loss(self, outputs, batch) -> torch.Tensor:
        valid = outputs["query_valid"] & outputs["target_valid"]
        return self.criterion(outputs["queries"], outputs["targets"], batch["item_index"], valid)

    # -------------------------------------------------------------- metrics
    def update_metrics(self, outputs, batch, split):
        if split in self.collectors:
            self.collectors[split].update(users=outputs["queries"], user_index=batch["user_index"],
                                          item_index=batch["item_index"])

    def _metric_keys(self) -> list[str]:
        return [f"ndcg@{self.k}", f"hr@{self.k}", f"recall@{self.recall_k}", "mrr"]

    def metric_names(self, split: str) -> list[str]:
        subsets = SUBSETS if bool(self.catalogue.get("cold", torch.zeros(1)).any()) else SUBSETS[:1]
        return [f"{split}/{subset}{key}" for subset in subsets for key in self._metric_keys()]

    @torch.no_grad()
    def start_epoch(self, split: str, encode) -> None:
        """Encode the whole catalogue with the weights this epoch evaluates (the EMA's, when on)."""
        if split not in self.collectors or not self.catalogue:
            return
        device = self.projections["target"].weight.device
        catalogue = self._catalogue(device)
        step = self.encode_batch_size
        parts, valid = [], []
        for start in range(0, len(catalogue["present"]), step):
            batch = {name: catalogue[name][start:start + step] for name in self.sides["target"]}
            vectors, present = self.embed("target", encode(batch), catalogue["present"][start:start + step])
            parts.append(vectors)
            valid.append(present)
        self.items[split] = (torch.cat(parts), torch.cat(valid))

    def epoch_metrics(self, split: str) -> dict[str, torch.Tensor]:
        from mmrun.metrics.ranking import ranking_metrics

        data = self.collected(split)
        if data is None:
            return {}
        users, query_of = torch.unique(data["user_index"], return_inverse=True)
        first = torch.full((len(users),), len(query_of), dtype=torch.long, device=query_of.device)
        first.scatter_reduce_(0, query_of, torch.arange(len(query_of), device=query_of.device), reduce="amin")
        queries = data["users"][first]
        items, rankable = self.items.pop(split)
        positives = csr(query_of, data["item_index"], len(users))
        excluded = self._excluded(users, self.scored[split], queries.device)
        cold = self._catalogue(queries.device)["cold"]
        values, report = {}, {}
        top_k = self.kept_top_k
        # An item with none of its item-side modalities present has no embedding to rank.
        for subset, candidates in zip(SUBSETS, (rankable, rankable & ~cold, rankable & cold)):
            if subset and not bool(candidates.any()):
                continue
            result = ranking_metrics(queries, items, positives, excluded=excluded, candidates=candidates,
                                     hit_ks=(self.k,), recall_ks=(self.recall_k,), ndcg_ks=(self.k,),
                                     top_k=top_k if not subset else 0)
            for key in self._metric_keys():
                source = key.replace("hr@", "hit@")
                values[f"{split}/{subset}{key}"] = result.metrics[source]
            report[subset.rstrip("_") or "all"] = {"users": result.queries, "users_without_positive": result.skipped}
            if top_k and not subset:
                self.rankings = {"users": users.cpu(), "result": result, "positives": positives,
                                 "cold": cold.cpu()}
        self.reports[split] = {"items": len(items), "items_without_content": int((~rankable).sum()), **report}
        return {name: torch.tensor(float(value)) for name, value in values.items()}

    def _excluded(self, users: torch.Tensor, scored: str, device) -> tuple[torch.Tensor, torch.Tensor]:
        """CSR of the items each user met in the splits before the scored one."""
        earlier = SPLIT_ORDER[: SPLIT_ORDER.index(scored)] if scored in SPLIT_ORDER else ()
        seen = torch.cat([self.history[s] for s in earlier]) if earlier else torch.zeros(0, 2, dtype=torch.long)
        seen = seen.to(device)
        position = torch.full((int(max(users.max(), seen[:, 0].max() if len(seen) else 0)) + 1,), -1,
                              dtype=torch.long, device=device)
        position[users] = torch.arange(len(users), device=device)
        seen = seen[position[seen[:, 0]] >= 0]
        return csr(position[seen[:, 0]], seen[:, 1], len(users))

    def write_rankings(self, path: Path, scoring) -> None:
        """Each user's best items of the catalogue, by the data's ids (``mmrun.rankings``)."""
        from mmrun.rankings import write_user_rankings

        write_user_rankings(path, self.rankings, self.names)


def user_modalities(spec: DataSpec) -> list[str]:
    """The data's user modalities: the user id and the user features (``mmrun.data.user_features``)."""
    return [spec.extra["recommendation"]["user"], *spec.extra["recommendation"].get("user_features", [])]


def user_side(user: Any, spec: DataSpec) -> list[str]:
    """The user side: as configured (names or kinds), or the user id and every user feature."""
    return resolve_side(user_modalities(spec) if user is None else user, spec, "task.user")


def item_side(user: Any, item: Any, spec: DataSpec) -> list[str]:
    """The item side: as configured (names or kinds), or every modality that is not the user's."""
    if item is not None:
        return resolve_side(item, spec, "task.item")
    users = set(user_side(user, spec)) | set(user_modalities(spec))
    return [name for name in spec.modality_names if name not in users]


def check_interactions(spec: DataSpec) -> None:
    """Recommendation reads user-item interactions and an item catalogue (``spec.task`` recommendation)."""
    if spec.task != "recommendation":
        raise ConfigError(f"task=recommendation needs interaction data, but this dataset holds {spec.task} "
                          "labels; use the built-in dataset=interactions, or dataset=interactions_manifest "
                          "(interactions.csv with user and item columns, plus dataset.items=items.csv)")
