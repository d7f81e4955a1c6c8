"""Distilling a retrieval student (``task=retrieval +distill=kd``): the similarity-distribution
loss against a hand computation, the teacher reading its own sides, its cached embeddings, its
ranking metrics on the test split, and the refusals."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import compose_train, save_untrained_checkpoint, without_run_nodes
from mmrun.distill.distiller import CACHED
from mmrun.distill.losses import similarity_kd
from mmrun.distill.run import Distillation
from mmrun.distill.teacher import retrieval_outputs
from mmrun.errors import DistillationError
from mmrun.model import MultimodalModule

PAIRS = ["task=retrieval", "dataset.size=200", "dataset.batch_size=32", "scheduler=none",
         "encoder.image.channels=[4,8]"]


def pairs(rows: int, width: int, seed: int, scale: float) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    valid = torch.ones(rows, dtype=torch.bool)
    return {"queries": F.normalize(torch.randn(rows, width, generator=generator), dim=-1),
            "targets": F.normalize(torch.randn(rows, width, generator=generator), dim=-1),
            "query_valid": valid, "target_valid": valid.clone(), "scale": torch.tensor(scale)}


def test_similarity_kd_matches_a_hand_computation():
    student, teacher, temperature = pairs(3, 4, 0, 10.0), pairs(3, 4, 1, 20.0), 2.0

    def rows_kl(s_scores, t_scores):  # mean over rows of KL(softmax(t / T) || softmax(s / T))
        total = 0.0
        for s_row, t_row in zip(s_scores, t_scores, strict=True):
            p = [math.exp(v / temperature) for v in t_row]
            q = [math.exp(v / temperature) for v in s_row]
            p, q = [v / sum(p) for v in p], [v / sum(q) for v in q]
            total += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
        return total / len(s_scores)

    def scores(side):
        return (side["scale"] * side["queries"] @ side["targets"].T).tolist()

    s, t = scores(student), scores(teacher)
    transpose = lambda m: [list(r) for r in zip(*m, strict=True)]  # noqa: E731
    expected = temperature**2 * (rows_kl(s, t) + rows_kl(transpose(s), transpose(t))) / 2
    assert similarity_kd(student, teacher, temperature).item() == pytest.approx(expected, rel=1e-5)
    assert similarity_kd(teacher, teacher, temperature).item() == pytest.approx(0.0, abs=1e-6)


def test_similarity_kd_leaves_out_rows_either_model_cannot_embed():
    student, teacher = pairs(4, 4, 0, 10.0), pairs(4, 4, 1, 10.0)
    teacher["target_valid"] = torch.tensor([True, True, True, False])
    kept = {key: value[:3] if value.dim() else value for key, value in student.items()}
    kept_teacher = {key: value[:3] if value.dim() else value for key, value in teacher.items()}
    assert similarity_kd(student, teacher, 4.0).item() == pytest.approx(
        similarity_kd(kept, kept_teacher, 4.0).item(), rel=1e-6)
    teacher["query_valid"] = torch.zeros(4, dtype=torch.bool)
    assert similarity_kd(student, teacher, 4.0).item() == 0.0


@pytest.fixture(scope="module")
def retrieval_teacher(tmp_path_factory) -> Path:
    """A retrieval teacher whose query side is image and audio (the student's: image only)."""
    return save_untrained_checkpoint(tmp_path_factory.mktemp("teacher") / "best.ckpt",
                                     [*PAIRS, "task.query=[image,audio]"])


def retrieval_student(teacher: Path, *overrides: str, cache_dir: Path | None = None):
    cfg = without_run_nodes(compose_train([*PAIRS, "+distill=kd", f"distill.teacher={teacher}", *overrides]))
    distillation = Distillation(cfg.distill)
    datamodule = distillation.build_datamodule(cfg.dataset, cfg.task)
    model = MultimodalModule(cfg, datamodule.spec)
    distillation.attach(model, datamodule, "val/r_mean", torch.device("cpu"), str(cache_dir) if cache_dir else None)
    return model, datamodule, distillation


def test_a_retrieval_student_learns_from_the_teachers_similarities(retrieval_teacher, tmp_path):
    model, datamodule, distillation = retrieval_student(retrieval_teacher, cache_dir=tmp_path)
    assert model.modalities == ["image", "text"] and distillation.teacher.modalities == ["audio", "image", "text"]
    assert distillation.cache == "computed"
    batch = next(iter(datamodule.train_dataloader()))
    forward = distillation.teacher(batch).pairs  # the teacher's own sides: image and audio -> text
    for key in ("queries", "targets", "query_valid", "target_valid"):
        assert torch.allclose(batch[CACHED + key].float(), forward[key].float(), atol=1e-5)
    teacher_state = {k: v.clone() for k, v in distillation.teacher.model.state_dict().items()}
    model.train()
    outputs = model(batch)
    label = model.label_loss(outputs, batch)
    loss, terms = model.distiller(label, outputs, batch)
    student_pairs = retrieval_outputs(outputs, model.task.similarity_scale()).pairs
    expected = similarity_kd(student_pairs, forward, 4.0)  # distill.temperature's default
    assert terms["kd"].item() == pytest.approx(expected.item(), rel=1e-4) and terms["kd"].item() > 0
    assert loss.item() == pytest.approx(0.5 * label.item() + 0.5 * terms["kd"].item(), rel=1e-5)  # alpha 0.5
    terms["kd"].backward()  # the term alone reaches the student's encoders and its own logit scale
    assert model.encoders["image"].parameters().__next__().grad.abs().sum() > 0
    assert model.task.criterion.log_scale.grad.abs() > 0
    assert all(torch.equal(v, distillation.teacher.model.state_dict()[k]) for k, v in teacher_state.items())
    measured = distillation.teacher_test(datamodule)
    assert 0.0 <= measured["test/r_mean"] <= 1.0 and "test/q2t_recall@1" in measured


def test_retrieval_refuses_feature_losses_and_a_prediction_teacher(retrieval_teacher, tmp_path):
    with pytest.raises(DistillationError, match=r"^distill\.losses=\['hint'\]: hint compares a prediction model's "
                                                r"fused vectors; a retrieval student distils .*distill\.losses=\[kd\]$"):
        retrieval_student(retrieval_teacher, "distill.losses=[hint]")
    with pytest.raises(DistillationError, match=r"^distill\.teacher ranks \['audio', 'image'\] against \['text'\] but "
                                                r"the student ranks \['text'\] against \['image'\]; give"):
        retrieval_student(retrieval_teacher, "task.query=[text]", "task.target=[image]")
    predictor = save_untrained_checkpoint(tmp_path / "predictor.ckpt",
                                          ["dataset.size=120", "encoder.image.channels=[4,8]"])
    with pytest.raises(DistillationError, match=r"^distill\.teacher is a multiclass model but the student is a "
                                                r"retrieval task; use a teacher trained for the student's task$"):
        retrieval_student(predictor)
