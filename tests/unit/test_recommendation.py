"""Recommendation: the built-in interactions, seen-item removal, cold items, id dropout."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from mmrun.data.interactions import SyntheticInteractionsDataModule
from mmrun.errors import ConfigError
from mmrun.tasks.recommendation import RecommendationTask, csr

CONCAT = OmegaConf.create({"_target_": "mmrun.fusion.concat.ConcatFusion"})


@pytest.fixture(scope="module")
def data():
    datamodule = SyntheticInteractionsDataModule(num_users=60, num_items=90, interactions_per_user=8, cold_items=0.2)
    datamodule.setup()
    return datamodule


def task_for(datamodule, **options) -> RecommendationTask:
    dims = {m.name: 4 for m in datamodule.spec.modalities}
    task = RecommendationTask(datamodule.spec, dims, CONCAT, embed_dim=5, **options)
    task.attach_data(datamodule)
    return task


def test_cold_items_never_train_and_carry_the_unknown_id(data):
    cold = data.catalogue["cold"]
    assert int(cold.sum()) == 18  # 20% of 90
    assert not cold[data.splits["train"]["item_index"]].any()
    assert cold[torch.cat([data.splits["val"]["item_index"], data.splits["test"]["item_index"]])].any()
    ids = data.catalogue["item"].squeeze(1)
    assert (ids[cold] == 0).all() and torch.equal(ids[~cold], torch.arange(1, 91)[~cold])
    again = SyntheticInteractionsDataModule(num_users=60, num_items=90, interactions_per_user=8, cold_items=0.2)
    again.setup()
    assert torch.equal(again.splits["test"]["item_index"], data.splits["test"]["item_index"])


def test_the_built_in_data_refuses_a_model_without_users():
    with pytest.raises(ConfigError, match="must hold user"):
        SyntheticInteractionsDataModule(modalities=["item", "title"])


def test_csr_lists_each_querys_distinct_targets():
    ptr, idx = csr(torch.tensor([1, 0, 1, 1, 2]), torch.tensor([7, 3, 5, 7, 9]), 4)
    assert ptr.tolist() == [0, 1, 3, 4, 4] and idx.tolist() == [3, 5, 7, 9]


def test_seen_items_of_earlier_splits_are_removed(data):
    task = task_for(data)
    users = torch.unique(data.splits["test"]["user_index"])
    ptr, idx = task._excluded(users, "test", torch.device("cpu"))
    earlier = torch.cat([task.history["train"], task.history["val"]])
    for position, user in enumerate(users.tolist()[:10]):
        expected = sorted(set(earlier[earlier[:, 0] == user, 1].tolist()))
        assert idx[ptr[position]:ptr[position + 1]].tolist() == expected
    _, idx_val = task._excluded(users, "val", torch.device("cpu"))
    assert len(idx_val) < len(idx)  # validation removes training items only


def test_batches_get_item_content_and_ids_drop_only_beside_content(data):
    task = task_for(data, id_dropout=0.9)
    rows = {k: v[:64] for k, v in data.splits["train"].items()}
    task.train()
    batch = task.prepare_batch(rows)
    assert torch.equal(batch["title"], data.catalogue["title"][rows["item_index"]])
    assert (batch["item"] == 0).float().mean() > 0.7  # dropped at rate 0.9
    assert torch.equal(batch["user"], rows["user"])  # an id-only user side keeps its id
    task.eval()
    assert torch.equal(task.prepare_batch(rows)["item"], data.catalogue["item"][rows["item_index"]])
    ids_only = SyntheticInteractionsDataModule(num_users=60, num_items=90, interactions_per_user=8,
                                               modalities=["user", "item"])
    ids_only.setup()
    id_task = task_for(ids_only, id_dropout=0.9)
    id_task.train()
    id_rows = {k: v[:64] for k, v in ids_only.splits["train"].items()}
    assert torch.equal(id_task.prepare_batch(id_rows)["item"], ids_only.catalogue["item"][id_rows["item_index"]])


def test_ranking_metrics_for_all_warm_and_cold_items(data):
    task = task_for(data)
    assert "val/cold_ndcg@10" in task.metric_names("val") and "val/warm_hr@10" in task.metric_names("val")
    rows = data.splits["val"]
    users = torch.nn.functional.normalize(torch.randn(len(rows["user_index"]), 5), dim=1)
    task.update_metrics({"queries": users}, rows, "val")
    task.start_epoch("val", lambda batch: {name: _Pooled(batch[name]) for name in batch})
    values = task.epoch_metrics("val")
    assert sorted(values) == sorted(task.metric_names("val"))
    assert all(0.0 <= float(v) <= 1.0 for v in values.values())
    report = task.report("val")["ranking"]
    assert report["items"] == 90 and report["all"]["users"] == len(torch.unique(rows["user_index"]))


class _Pooled:
    """A stand-in encoder output: a fixed random vector per row."""

    def __init__(self, value: torch.Tensor) -> None:
        self.pooled = torch.randn(len(value), 4)
