"""Knowledge distillation (``+distill``): the losses against hand computations, the teacher
frozen, in eval mode, fed its own modalities and absent from the student's checkpoint, the
teacher-output cache, the one-line refusals, ``dataset.label_fraction`` and the report section."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from conftest import compose_train, save_untrained_checkpoint, without_run_nodes
from mmrun.checkpoint import load_checkpoint, model_from_checkpoint
from mmrun.config_check import check_config
from mmrun.distill.distiller import CACHED_LOGITS
from mmrun.distill.losses import RKD, kd_loss
from mmrun.distill.run import Distillation, gap_recovered, scratch_value
from mmrun.distill.teacher import Outputs
from mmrun.distill.twin import finished, stopped_twin, twin_config, twin_overrides, wants_twin
from mmrun.errors import CheckpointError, ConfigError, DistillationError
from mmrun.model import DISTILLER_KEY, MultimodalModule

TINY = ["dataset.size=120", "dataset.batch_size=32", "scheduler=none", "encoder.image.channels=[4,8]"]


def save_teacher(path: Path, overrides: list[str]) -> Path:
    """An mmrun checkpoint of an untrained model, as mmrun train writes it."""
    return save_untrained_checkpoint(path, [*TINY, *overrides])


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory) -> Path:
    return save_teacher(tmp_path_factory.mktemp("teacher") / "best.ckpt", [])


def student(teacher: Path, *overrides: str, cache_dir: Path | None = None):
    """The distilled image-only student of ``teacher``, its datamodule and its distillation."""
    cfg = without_run_nodes(compose_train([*TINY, "dataset.modalities=[image]", "+distill=kd", f"distill.teacher={teacher}",
                               "distill.cache_teacher=false", *overrides]))
    distillation = Distillation(cfg.distill)
    datamodule = distillation.build_datamodule(cfg.dataset, cfg.task)
    model = MultimodalModule(cfg, datamodule.spec)
    distillation.attach(model, datamodule, "val/acc", torch.device("cpu"), str(cache_dir) if cache_dir else None)
    return model, datamodule, distillation


# ------------------------------------------------------------------------------------------ losses
def test_kd_loss_matches_a_hand_computation():
    s, t, temperature = [1.0, 0.0, -1.0], [0.0, 2.0, 0.0], 2.0

    def softmax(z):
        e = [math.exp(v / temperature) for v in z]
        return [v / sum(e) for v in e]

    p, q = softmax(t), softmax(s)
    expected = temperature**2 * sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    got = kd_loss(torch.tensor([s]), torch.tensor([t]), "multiclass", temperature)
    assert got.item() == pytest.approx(expected, rel=1e-5)

    # binary / multilabel: the Bernoulli KL of each label, averaged, times T^2
    def sigmoid(z):
        return 1 / (1 + math.exp(-z / temperature))

    def bernoulli_kl(p, q):
        return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))

    kl = [bernoulli_kl(sigmoid(b), sigmoid(a)) for a, b in zip(s, t, strict=True)]
    got = kd_loss(torch.tensor([s]), torch.tensor([t]), "multilabel", temperature)
    assert got.item() == pytest.approx(temperature**2 * sum(kl) / len(kl), rel=1e-5)
    assert kd_loss(torch.tensor([[1.0]]), torch.tensor([[3.0]]), "regression", temperature).item() == pytest.approx(4.0)
    same = kd_loss(torch.tensor([t]), torch.tensor([t]), "multiclass", temperature)
    assert same.item() == pytest.approx(0.0, abs=1e-6)


def test_rkd_compares_relations_not_coordinates():
    torch.manual_seed(0)
    teacher = torch.randn(6, 5)
    loss = RKD("multiclass", 5, 5, 1.0)
    same_shape = 3.0 * teacher + 1.0  # scaled and shifted: the same distances (relative) and angles
    assert loss(Outputs(teacher, same_shape), Outputs(teacher, teacher)).item() == pytest.approx(0.0, abs=1e-5)
    other = torch.randn(6, 5)
    assert loss(Outputs(teacher, other), Outputs(teacher, teacher)).item() > 0.01


def test_gap_recovered_and_the_scratch_reference(tmp_path):
    assert gap_recovered(0.7, 0.5, 0.9) == pytest.approx(0.5)
    assert gap_recovered(0.4, 0.5, 0.9) == pytest.approx(-0.25)
    assert gap_recovered(0.7, None, 0.9) is None and gap_recovered(0.7, 0.9, 0.9) is None
    (tmp_path / "metrics.json").write_text(json.dumps({"test": {"test/acc": 0.45}}))
    assert scratch_value(str(tmp_path), "test/acc") == 0.45 and scratch_value(0.5, "test/acc") == 0.5
    with pytest.raises(ConfigError, match=r"^distill\.scratch=.* is not a finished run with test/mse"):
        scratch_value(str(tmp_path), "test/mse")

    assert scratch_value("train", "test/acc") is None  # left on a scratch run itself


def test_the_scratch_twin_is_the_run_without_its_teacher_in_its_own_folder(tmp_path):
    cfg = compose_train(["+distill=kd", "distill.teacher=t.ckpt", "logger=tensorboard", "+analysis=robustness"])
    assert cfg.distill.scratch == "train" and wants_twin(cfg)
    twin = twin_config(cfg, tmp_path / "run" / "scratch")
    assert list(twin.distill.losses) == [] and twin.distill.scratch is None and not wants_twin(twin)
    assert twin.logger == {} and twin.analysis is None and twin.distill.teacher == "t.ckpt"
    assert twin.callbacks.model_checkpoint.dirpath == f"{tmp_path}/run/scratch/checkpoints"
    assert OmegaConf.to_container(cfg.callbacks, resolve=False)["model_checkpoint"]["dirpath"] == (
        "${mmrun.run_path:checkpoints}")  # the run's own config is left as it was
    assert twin_overrides(["+distill=kd", "distill.losses=[kd,hint]", "seed=2"]) == [
        "+distill=kd", "seed=2", "distill.losses=[]"]
    with open_dict(cfg):
        cfg.distill.losses = []
    assert not wants_twin(cfg)  # a scratch run trains no twin of itself
    assert not finished(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "completed"}))
    assert finished(tmp_path)

    # A twin stopped mid-training resumes from its own last.ckpt; resume=<run> finds it.
    run = tmp_path / "run"
    assert stopped_twin(run) is None and twin.resume is None
    (run / "scratch" / "checkpoints").mkdir(parents=True)
    (run / "scratch" / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert stopped_twin(run) == run / "scratch" / "checkpoints" / "last.ckpt"
    assert twin_config(cfg, run / "scratch").resume == str(run / "scratch" / "checkpoints" / "last.ckpt")
    (run / "scratch" / "metrics.json").write_text(json.dumps({"status": "completed"}))
    assert stopped_twin(run) is None


# ------------------------------------------------------------------------------------------ teacher
def test_the_teacher_reads_its_own_modalities_and_the_student_only_its_own(teacher_path):
    model, datamodule, distillation = student(teacher_path)
    seen = {}
    distillation.teacher.model.register_forward_pre_hook(lambda module, args: seen.update(args[0]))
    batch = next(iter(datamodule.train_dataloader()))
    assert list(model.encoders) == ["image"] and datamodule.spec.modality_names == ["image"]
    assert "text" not in batch and batch["present"].shape[1] == 1 and "teacher.text" in batch
    model.train()
    outputs = model(batch)
    loss, terms = model.distiller(model.label_loss(outputs, batch), outputs, batch)
    assert set(seen) >= {"audio", "image", "tabular", "text"} and seen["present"].shape[1] == 4
    assert torch.equal(seen["text"], batch["teacher.text"]) and torch.equal(seen["image"], batch["image"])
    assert set(terms) == {"kd"} and terms["kd"].item() > 0 and loss.requires_grad


def test_the_teacher_stays_frozen_in_eval_mode_and_out_of_the_student_checkpoint(teacher_path, tmp_path):
    import pytorch_lightning as pl

    teacher_copy = tmp_path / "teacher.ckpt"
    teacher_copy.write_bytes(teacher_path.read_bytes())
    model, datamodule, distillation = student(teacher_copy, "distill.losses=[kd,hint]")
    teacher = distillation.teacher.model
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    adapter = model.distiller.losses["hint"].adapter.weight.clone()
    image = model.encoders["image"].state_dict()
    image = {k: v.clone() for k, v in image.items()}
    trainer = pl.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1)
    trainer.fit(model, datamodule=datamodule)
    model.train()  # what Lightning does at every epoch start
    assert not teacher.training and all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not torch.equal(adapter, model.distiller.losses["hint"].adapter.weight)  # the hint adapter trained
    assert any(not torch.equal(image[k], v) for k, v in model.encoders["image"].state_dict().items())

    trainer.save_checkpoint(tmp_path / "student.ckpt")
    teacher_copy.unlink()  # the student's checkpoint needs no teacher
    saved = load_checkpoint(tmp_path / "student.ckpt")
    assert all(k.startswith(("encoders.image.", "task.")) for k in saved["state_dict"])
    assert set(saved[DISTILLER_KEY]["state_dict"]) == {"distiller.losses.hint.adapter.weight",
                                                       "distiller.losses.hint.adapter.bias"}
    rebuilt = model_from_checkpoint(saved).eval()
    batch = next(iter(datamodule.val_dataloader()))
    assert torch.allclose(rebuilt(batch), model.eval()(batch))
    assert model.count_parameters() == rebuilt.count_parameters()


def test_cached_teacher_outputs_equal_a_forward_pass_and_are_read_back(teacher_path, tmp_path):
    _, datamodule, distillation = student(teacher_path, "distill.cache_teacher=true", cache_dir=tmp_path)
    assert distillation.cache == "computed"
    batch = next(iter(datamodule.train_dataloader()))
    assert torch.allclose(batch[CACHED_LOGITS], distillation.teacher(batch).logits, atol=1e-5)
    _, _, again = student(teacher_path, "distill.cache_teacher=true", cache_dir=tmp_path)
    assert again.cache == "read"


# ------------------------------------------------------------------------------------------ refusals
def test_a_missing_or_foreign_teacher_is_refused_naming_distill_teacher(tmp_path):
    with pytest.raises(CheckpointError, match=r"^distill\.teacher=.*does not exist; pass"):
        student(tmp_path / "nope.ckpt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError) as caught:
        student(tmp_path / "foreign.ckpt")
    message = str(caught.value)
    assert message.startswith("distill.teacher: ") and "ckpt_path" not in message and "\n" not in message


def test_a_teacher_for_another_task_is_refused(tmp_path):
    other = save_teacher(tmp_path / "multilabel.ckpt", ["dataset.task=multilabel"])
    with pytest.raises(DistillationError, match=r"^distill\.teacher predicts multilabel .* but the student predicts "
                                                r"multiclass"):
        student(other)


def test_a_teacher_modality_the_data_lacks_is_refused(teacher_path, tmp_path):
    checkpoint = torch.load(teacher_path, weights_only=True)
    for modality in checkpoint["mmrun"]["spec"]["modalities"]:
        if modality["name"] == "audio":
            modality["name"] = "speech"
    checkpoint["state_dict"] = {k.replace("encoders.audio.", "encoders.speech."): v
                                for k, v in checkpoint["state_dict"].items()}
    torch.save(checkpoint, tmp_path / "speech.ckpt")
    with pytest.raises(DistillationError, match=r"^the data cannot also serve the teacher's modalities .*speech"):
        student(tmp_path / "speech.ckpt")


def test_a_student_of_another_family_and_bad_options_are_refused(teacher_path):
    _, datamodule, distillation = student(teacher_path)
    recommendation = SimpleNamespace(task=SimpleNamespace(family="recommendation"))
    with pytest.raises(DistillationError, match=r"^\+distill compares a prediction model's logits or a retrieval "
                                                r"model's similarities, but the student is a recommendation task"):
        distillation.attach(recommendation, datamodule, "val/ndcg@10", torch.device("cpu"), None)
    for override, refusal in [("distill.temperature=0", r"^distill\.temperature=0 must be a positive number"),
                              ("distill.losses=[kd,crd]", r"^distill\.losses=\[kd,crd\] must be a list of kd, hint"),
                              ("distill.alpha=1.5", r"^distill\.alpha=1.5 must be")]:
        with pytest.raises(ConfigError, match=refusal):
            check_config(compose_train(["+distill=kd", "distill.teacher=t.ckpt", override]), "train")
    with pytest.raises(ConfigError, match=r"^distill\.weights\.hint=-1 must be a number >= 0"):
        check_config(compose_train(["+distill=hint", "distill.teacher=t.ckpt", "distill.weights.hint=-1"]), "train")


# ------------------------------------------------------------------------------------------ label fraction
def test_label_fraction_keeps_the_data_and_trains_on_a_fraction_of_the_labels():
    from mmrun.data.synthetic import SyntheticDataModule

    full, part = SyntheticDataModule(size=200), SyntheticDataModule(size=200, label_fraction=0.25)
    full.setup(), part.setup()
    labelled = part.splits["train"]["labelled"]
    assert labelled.sum().item() == 40 and "labelled" not in part.splits["val"]
    assert torch.equal(full.splits["train"]["image"], part.splits["train"]["image"])
    model = MultimodalModule(without_run_nodes(compose_train([*TINY, "task.label_smoothing=0"])), part.spec)
    batch = {k: v[:64] for k, v in part.splits["train"].items()}
    logits = model(batch)
    mask = batch["labelled"]
    expected = torch.nn.functional.cross_entropy(logits[mask], batch["label"][mask])
    assert torch.allclose(model.label_loss(logits, batch), expected)


# ------------------------------------------------------------------------------------------ report
def write_run(folder: Path, losses: str, seed: int, acc: float, teacher: float) -> None:
    folder.mkdir(parents=True)
    role = "scratch" if losses == "[]" else "distilled"
    summary = {"status": "completed", "monitor": "val/acc", "monitor_mode": "max", "seed": seed,
               "best_val": {"val/acc": acc}, "test": {"test/acc": acc},
               "overrides": [f"distill.losses={losses}", f"seed={seed}"],
               "distill": {"role": role, "losses": {} if role == "scratch" else {"kd": 1.0},
                           "student_modalities": ["image"], "teacher_test": {"test/acc": teacher}}}
    (folder / "metrics.json").write_text(json.dumps(summary))


def test_the_report_pairs_scratch_and_distilled_seeds_with_the_gap_recovered(tmp_path):
    from mmrun.sweep.distill import distill_rows, markdown
    from mmrun.sweep.runs import find_runs
    from mmrun.sweep.table import build

    for seed, scratch, distilled in [(1, 0.4, 0.6), (2, 0.5, 0.6), (3, 0.5, 0.7)]:
        write_run(tmp_path / f"s{seed}", "[]", seed, scratch, 0.9)
        write_run(tmp_path / f"d{seed}", "[kd]", seed, distilled, 0.9)
    (row,) = distill_rows(build(find_runs([tmp_path])))
    assert (row.student, row.losses) == ("[image]", "kd")
    assert row.gap.mean == pytest.approx((0.2 / 0.5 + 0.1 / 0.4 + 0.2 / 0.4) / 3) and row.gap.ci_low is not None
    assert row.scratch.mean == pytest.approx(1.4 / 3) and row.teacher.mean == pytest.approx(0.9)
    assert row.versus_scratch.pairs == 3
    line = "| [image] | kd | 0.4667 ± 0.0577 | 0.6333 ± 0.0577 | 0.9000 ± 0.0000 | 0.3833 ± 0.1258 |"
    assert line in markdown([row], "test/acc")
