"""The retrieval task: contrastive losses against hand computations, sides, groups, metrics."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from mmrun.data.spec import DataSpec, ModalitySpec
from mmrun.encoders.base import single_token
from mmrun.errors import ConfigError
from mmrun.tasks.contrastive import InfoNCELoss, SigLIPLoss
from mmrun.tasks.retrieval import RetrievalTask, side_rows
from mmrun.tasks.two_tower import resolve_side

EYE = torch.eye(2)
ALL = torch.ones(2, dtype=torch.bool)
SPEC = DataSpec((ModalitySpec("audio", "audio", (8,)), ModalitySpec("photo", "image", (1, 2, 2)),
                 ModalitySpec("text", "text", (3,), vocab_size=9)), "retrieval", 0)
CONCAT = OmegaConf.create({"_target_": "mmrun.fusion.concat.ConcatFusion"})


def test_infonce_matches_a_hand_computation():
    loss = InfoNCELoss(temperature=1.0)(EYE, EYE, torch.tensor([0, 1]), ALL)
    # logits [[1, 0], [0, 1]]: each row's cross-entropy is log(1 + e^-1), in both directions
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)


def test_infonce_spreads_the_target_over_several_positives():
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    loss = InfoNCELoss(temperature=1.0)(q, q, torch.tensor([0, 0, 1]), torch.ones(3, dtype=torch.bool))
    # rows 0, 1: logits [1, 1, 0], target [1/2, 1/2, 0]; row 2: logits [0, 0, 1], target [0, 0, 1]
    first = -math.log(math.e / (2 * math.e + 1))
    last = -math.log(math.e / (math.e + 2))
    assert loss.item() == pytest.approx((2 * first + last) / 3, abs=1e-6)


def test_infonce_starts_at_clip_scale_and_is_clamped_at_100():
    loss = InfoNCELoss()
    assert loss.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        loss.log_scale.fill_(10.0)
    assert loss.scale().item() == pytest.approx(100.0, rel=1e-6)


def test_siglip_matches_a_hand_computation_and_starts_as_the_paper():
    loss = SigLIPLoss(temperature=1.0, bias=0.0)(EYE, EYE, torch.tensor([0, 1]), ALL)
    # logits I; two positive pairs at 1, two negative pairs at 0; divided by the 2 rows
    expected = -(2 * math.log(1 / (1 + math.exp(-1))) + 2 * math.log(0.5)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    default = SigLIPLoss()
    assert default.log_temperature.exp().item() == pytest.approx(10.0) and default.bias.item() == -10.0


@pytest.mark.parametrize("criterion", [InfoNCELoss(temperature=0.5), SigLIPLoss(temperature=2.0, bias=-1.0)])
def test_rows_without_their_side_take_no_part(criterion):
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(5, 4, generator=g), dim=1)
    t = torch.nn.functional.normalize(torch.randn(5, 4, generator=g), dim=1)
    groups = torch.arange(5)
    valid = torch.tensor([True, True, False, True, True])
    masked = criterion(q, t, groups, valid)
    subset = criterion(q[valid], t[valid], groups[valid], torch.ones(4, dtype=torch.bool))
    assert masked.item() == pytest.approx(subset.item(), abs=1e-6)


def test_sides_take_names_or_kinds_and_refuse_bad_choices():
    assert resolve_side(["image"], SPEC, "task.query") == ["photo"]
    assert resolve_side(["text", "audio"], SPEC, "task.query") == ["audio", "text"]
    with pytest.raises(ConfigError, match="task.query names 'tabular', which the data lacks"):
        resolve_side(["tabular"], SPEC, "task.query")
    with pytest.raises(ConfigError, match="task.target is empty"):
        resolve_side([], SPEC, "task.target")
    with pytest.raises(ConfigError, match="photo is on both sides"):
        RetrievalTask(SPEC, {"audio": 4, "photo": 4, "text": 4}, CONCAT, query=["image"], target=["photo"])


def test_retrieval_refuses_data_that_holds_class_labels():
    spec = DataSpec(SPEC.modalities, "multiclass", 3)
    with pytest.raises(ConfigError, match="task=retrieval needs paired data.*dataset=pairs"):
        RetrievalTask.modalities_read(OmegaConf.create({"query": ["image"], "target": ["text"]}), spec)


def test_a_side_identical_within_its_groups_is_ranked_once_per_group():
    groups = torch.tensor([3, 3, 5, 5, 5, 7])
    valid = torch.ones(6, dtype=torch.bool)
    same = torch.tensor([[1.0], [1.0], [2.0], [2.0], [2.0], [4.0]])
    assert side_rows(valid, same, groups).tolist() == [0, 2, 5]
    varied = torch.tensor([[1.0], [1.5], [2.0], [2.0], [2.0], [4.0]])
    assert side_rows(valid, varied, groups).tolist() == [0, 1, 2, 3, 4, 5]
    valid[0] = False
    assert side_rows(valid, same, groups).tolist() == [1, 2, 5]


def _batch(n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    return {"audio": torch.randn(n, 8, generator=g), "photo": torch.randn(n, 1, 2, 2, generator=g),
            "text": torch.randint(1, 9, (n, 3), generator=g), "label": torch.arange(n),
            "present": torch.ones(n, 3, dtype=torch.bool)}


def test_the_task_trains_both_sides_and_ranks_the_whole_split():
    dims = {"audio": 4, "photo": 4, "text": 4}
    task = RetrievalTask(SPEC, dims, CONCAT, query=["audio", "image"], target=["text"], embed_dim=6)
    g = torch.Generator().manual_seed(1)
    batch = _batch(10, g)
    encoded = {name: single_token(torch.randn(10, 4, generator=g, requires_grad=True)) for name in dims}
    outputs = task(encoded, batch)
    assert outputs["queries"].shape == (10, 6) and torch.allclose(outputs["queries"].norm(dim=1), torch.ones(10))
    task.loss(outputs, batch).backward()
    assert all(encoded[name].pooled.grad.abs().sum() > 0 for name in dims)
    assert task.criterion.log_scale.grad is not None
    # perfect embeddings: every query's own row is its best target, in both directions
    for start in (0, 5):
        part = {k: v[start:start + 5] for k, v in batch.items()}
        vectors = torch.eye(10)[start:start + 5]
        task.update_metrics({"queries": vectors, "targets": vectors, "query_valid": torch.ones(5, dtype=torch.bool),
                             "target_valid": torch.ones(5, dtype=torch.bool)}, part, "val")
    values = task.epoch_metrics("val")
    assert sorted(values) == sorted(task.metric_names("val"))
    assert values["val/r_mean"].item() == 1.0 and values["val/t2q_median_rank"].item() == 1.0
    assert task.report("val")["ranking"]["q2t"] == {"queries": 10, "candidates": 10, "evaluated": 10,
                                                    "without_positive": 0}
    assert task.epoch_metrics("val") == {}  # reset after computing
