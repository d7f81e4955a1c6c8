"""A Lightning datamodule over in-memory split tensors."""

from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch

from mmrun.data.loader import TensorBatchLoader
from mmrun.data.spec import DataSpec
from mmrun.errors import ConfigError

SPLITS = ("train", "val", "test")
log = logging.getLogger("mmrun")


class TensorDataModule(pl.LightningDataModule):
    """Base for datasets held as ``{split: {key: tensor}}``; subclasses implement ``build``.

    ``build`` returns the split tensors and the ``DataSpec``; it runs once per process.

    Args:
        batch_size: training batch size (per process under DDP).
        eval_batch_size: validation/test batch size; defaults to ``batch_size``.
        seed: base seed of the per-epoch shuffling.
        on_device: keep the tensors on the training GPU: ``auto``, true or false.
        device_memory_fraction: with ``auto``, the share of free GPU memory they may take.
    """

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        seed: int = 0,
        on_device: bool | str = "auto",
        device_memory_fraction: float = 0.5,
    ) -> None:
        super().__init__()
        if on_device not in (True, False, "auto"):
            raise ConfigError(f"dataset.on_device={on_device!r} must be auto, true or false")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.seed = seed
        self.on_device = on_device
        self.device_memory_fraction = device_memory_fraction
        self.splits: dict[str, dict[str, torch.Tensor]] | None = None
        self._spec: DataSpec | None = None

    def build(self) -> tuple[dict[str, dict[str, torch.Tensor]], DataSpec]:
        raise NotImplementedError  # each dataset defines how its tensors are made

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.splits, self._spec = self.build()

    @property
    def spec(self) -> DataSpec:
        self.setup()
        assert self._spec is not None
        return self._spec

    def replace_data(self, splits: dict[str, dict[str, torch.Tensor]], spec: DataSpec) -> None:
        """Serve ``splits`` described by ``spec`` from now on (distillation narrows the data to the
        student's view, ``mmrun.distill.inputs``)."""
        self.splits, self._spec = splits, spec

    def split_size(self, split: str) -> int:
        self.setup()
        return len(self.splits[split]["label"])

    def _data_device(self) -> torch.device | None:
        """The accelerator to keep the tensors on, or None to leave them in host memory.

        ``on_device=auto`` moves them when the training device is a GPU and all splits fit in
        ``device_memory_fraction`` of its free memory; batches are then cut on the GPU.
        """
        trainer = self.trainer
        if trainer is None or self.on_device is False:
            return None
        device = trainer.strategy.root_device
        if device.type != "cuda":
            return None
        if self.on_device == "auto":
            needed = sum(t.numel() * t.element_size() for split in self.splits.values() for t in split.values())
            free, _ = torch.cuda.mem_get_info(device)
            if needed > self.device_memory_fraction * free:
                log.info("data (%.1f GB) stays in host memory: more than %.0f%% of free GPU memory",
                         needed / 1e9, 100 * self.device_memory_fraction)
                return None
        return device

    def _loader(self, split: str, shuffle: bool, seed_offset: int = 0) -> TensorBatchLoader:
        self.setup()
        device = self._data_device()
        if device is not None and next(iter(self.splits[split].values())).device != device:
            self.splits[split] = {k: v.to(device, non_blocking=True) for k, v in self.splits[split].items()}
        trainer = self.trainer
        rank = trainer.global_rank if trainer is not None else 0
        world = trainer.world_size if trainer is not None else 1
        return TensorBatchLoader(
            self.splits[split],
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle,
            seed=self.seed + seed_offset,
            rank=rank,
            world_size=world,
        )

    def train_dataloader(self) -> TensorBatchLoader:
        loader = self._loader("train", shuffle=True)
        if loader.world_size > 1:
            shard = loader.shard_indices(epoch=0)
            log.info("rank %d of %d trains on %d of %d samples per epoch (epoch-0 shard starts %s)",
                     loader.rank, loader.world_size, len(shard), loader.num_samples, shard[:5].tolist())
        return loader

    def val_dataloader(self) -> TensorBatchLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> TensorBatchLoader:
        return self._loader("test", shuffle=False)

    def loader(self, split: str) -> TensorBatchLoader:
        """An evaluation loader over any split (used by ``mmrun eval split=...``)."""
        return self._loader(split, shuffle=False)
