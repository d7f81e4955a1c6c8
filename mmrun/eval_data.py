"""The data ``mmrun eval`` and ``mmrun predict`` score: the checkpoint's dataset, optionally new data.

``eval.yaml``'s ``dataset`` node (also predict's) lists the dataset keys an evaluation may
change (``path``, ``on_error``, ...); the non-null ones are merged onto the dataset config
saved in the checkpoint, and a key that the checkpoint's dataset does not have is refused.
A datamodule that fitted preprocessing on its training rows (vocabulary, statistics, class
names) stored it in ``spec.extra["fitted"]``; it is handed back as ``fitted=...`` so new
data is prepared exactly as the training data was; ``labels_required=False`` (``mmrun
predict``) lets it read a table without labels. ``split=all`` scores every row (all splits
together).
"""

from __future__ import annotations

from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mmrun.data.spec import DataSpec
from mmrun.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")


def dataset_config(saved: dict[str, Any], changes: DictConfig | None) -> tuple[DictConfig, dict[str, Any]]:
    """The checkpoint's dataset config with the set (non-null) ``dataset.*`` keys of eval on top."""
    data_cfg = OmegaConf.create(saved)
    given = {k: v for k, v in (OmegaConf.to_container(changes) if changes else {}).items() if v is not None}
    unknown = sorted(set(given) - set(data_cfg.keys()))
    if unknown:
        target = str(data_cfg.get("_target_", "?")).rsplit(".", 1)[-1]
        keys = ", ".join(k for k in data_cfg.keys() if not str(k).startswith("_"))
        raise ConfigError(
            f"dataset.{unknown[0]} does not apply to this checkpoint's dataset ({target}); its keys are {keys}"
        )
    return OmegaConf.merge(data_cfg, given), given


def build_datamodule(data_cfg: DictConfig, spec: DataSpec, labels_required: bool = True):
    """Instantiate the dataset, with the checkpoint's fitted preprocessing when it has one.

    ``labels_required=False`` reaches only a dataset with fitted preprocessing (a manifest):
    the others hold labels anyway, which predictions leave unread.
    """
    fitted = spec.extra.get("fitted")
    if fitted:
        datamodule = instantiate(data_cfg, _partial_=True)(fitted=fitted, labels_required=labels_required)
    else:
        datamodule = instantiate(data_cfg)
    datamodule.setup("test")
    got = [(m.name, m.kind, tuple(m.shape)) for m in datamodule.spec.modalities]
    want = [(m.name, m.kind, tuple(m.shape)) for m in spec.modalities]
    if got != want:
        raise DataError(f"the evaluated data gives modalities {got} but the checkpoint's model expects {want}")
    return datamodule


def split_tensors(datamodule, split: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The tensors of ``split`` (``all``: every split) and each sample's row id.

    Row ids are the datamodule's ``row_ids`` (a manifest's line numbers) when it has them,
    else positions in the evaluated tensors.
    """
    names = SPLITS if split == "all" else (split,)
    tensors = {k: torch.cat([datamodule.splits[s][k].cpu() for s in names]) for k in datamodule.splits[names[0]]}
    row_ids = getattr(datamodule, "row_ids", None)
    if row_ids:
        return tensors, torch.cat([row_ids[s] for s in names])
    return tensors, torch.arange(len(tensors["label"]))  # position in the split (train, val, test for all)
