"""Batches cut by index from whole tensors: no per-sample Python, no collate.

``TensorBatchLoader`` is an iterable Lightning accepts as a dataloader. Each epoch draws one
permutation from a generator seeded by ``seed + epoch`` (so every rank of a DDP run draws the
same one), takes this rank's shard, and yields ``{key: tensor[index]}`` dicts. It is a
stateful iterable in Lightning's sense (``state_dict``/``load_state_dict``): a checkpoint
taken mid-epoch records the epoch of its order and how many batches of it were served, so a
resumed run continues after the last batch it trained on. At each epoch start
``mmrun.callbacks.resume.TrainingOrder`` hands it the trainer's epoch (``set_epoch``), so the
order follows the trainer's epoch, also after a resume from an epoch's end.
"""

from __future__ import annotations

from typing import Iterator

import torch


class TensorBatchLoader:
    """Serve dict batches from a dict of equally long tensors.

    Args:
        tensors: ``{key: tensor}`` with the sample dimension first.
        batch_size: samples per batch.
        shuffle: draw a new permutation each epoch.
        drop_last: drop the final short batch.
        seed: base seed of the per-epoch permutation.
        rank, world_size: this process's shard. Training shards (``shuffle=True``) are cut to
            equal length so every rank steps the same number of times; evaluation shards
            cover every sample exactly once.
    """

    def __init__(
        self,
        tensors: dict[str, torch.Tensor],
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.tensors = tensors
        self.num_samples = len(next(iter(tensors.values())))
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0  # the epoch whose order the next iteration draws
        self._skip = 0  # batches of that order already trained on before a resume
        self._position: tuple[int, int] | None = None  # (epoch, batches served) of the iteration under way

    def _indices(self) -> torch.Tensor:
        return self.shard_indices(self.epoch)

    def shard_indices(self, epoch: int) -> torch.Tensor:
        """The sample indices this rank visits in ``epoch``, in order."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.num_samples, generator=generator)
        else:
            order = torch.arange(self.num_samples)
        shard = order[self.rank :: self.world_size]
        if self.shuffle and self.world_size > 1:
            shard = shard[: self.num_samples // self.world_size]
        return shard

    def __len__(self) -> int:
        count = len(self._indices())
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        epoch, skip = self.epoch, self._skip
        indices = self.shard_indices(epoch)
        self.epoch, self._skip = epoch + 1, 0
        device = next(iter(self.tensors.values())).device
        indices = indices.to(device)
        stop = len(indices) - (len(indices) % self.batch_size if self.drop_last else 0)
        for served, start in enumerate(range(skip * self.batch_size, stop, self.batch_size), start=skip + 1):
            index = indices[start : start + self.batch_size]
            self._position = (epoch, served)
            yield {key: value.index_select(0, index) for key, value in self.tensors.items()}
        self._position = None

    def state_dict(self) -> dict[str, int]:
        """Where the next batch comes from: an epoch's order and the batches of it already served."""
        if self._position is not None and self._position[1] < len(self):
            return {"epoch": self._position[0], "served": self._position[1]}
        return {"epoch": self.epoch, "served": 0}

    def set_epoch(self, epoch: int) -> None:
        """Draw the next order for ``epoch`` (a mid-epoch resume of that epoch keeps its skip)."""
        if epoch != self.epoch:
            self.epoch, self._skip = epoch, 0

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self._skip = int(state["epoch"]), int(state["served"])
