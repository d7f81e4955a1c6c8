import torch

from mmrun.data.loader import TensorBatchLoader


def _tensors(n=10):
    return {"x": torch.arange(n), "label": torch.arange(n) * 10}


def test_batches_are_index_slices_and_cover_everything():
    loader = TensorBatchLoader(_tensors(), batch_size=4)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert torch.equal(torch.cat([b["x"] for b in batches]), torch.arange(10))
    assert all(torch.equal(b["label"], b["x"] * 10) for b in batches)


def test_shuffle_changes_each_epoch_and_is_seeded():
    first = TensorBatchLoader(_tensors(), batch_size=10, shuffle=True, seed=3)
    second = TensorBatchLoader(_tensors(), batch_size=10, shuffle=True, seed=3)
    e1, e2 = next(iter(first))["x"], next(iter(first))["x"]
    assert not torch.equal(e1, e2)
    assert torch.equal(e1, next(iter(second))["x"])
    assert sorted(e1.tolist()) == list(range(10))


def test_drop_last():
    loader = TensorBatchLoader(_tensors(), batch_size=4, drop_last=True)
    assert len(loader) == 2 and [len(b["x"]) for b in loader] == [4, 4]


def test_ranks_get_disjoint_equal_training_shards():
    shards = [
        torch.cat([b["x"] for b in TensorBatchLoader(_tensors(11), 3, shuffle=True, seed=0, rank=r, world_size=2)])
        for r in (0, 1)
    ]
    assert len(shards[0]) == len(shards[1]) == 5
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def test_evaluation_shards_cover_every_sample_once():
    seen = [
        b["x"] for r in range(3) for b in TensorBatchLoader(_tensors(11), 4, rank=r, world_size=3)
    ]
    assert sorted(torch.cat(seen).tolist()) == list(range(11))
