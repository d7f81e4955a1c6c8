"""``task=captioning``: teacher forcing, the memory, items and their references, the refusals,
a training step reaching every condition encoder, whole-split metrics and the baseline."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from conftest import compose_train, without_run_nodes
from mmrun.errors import ConfigError
from mmrun.model import MultimodalModule
from mmrun.tasks.captioning import caption_items

TINY = ["task=captioning", "dataset.size=60", "dataset.batch_size=16", "scheduler=none", "encoder.image.channels=[4,8]",
        "dataset.captions_per_item=2"]


def built(*overrides: str):
    cfg = without_run_nodes(compose_train([*TINY, *overrides]))
    datamodule = instantiate(cfg.dataset)
    datamodule.setup()
    return MultimodalModule(cfg, datamodule.spec), datamodule


@pytest.fixture(scope="module")
def captioner():
    return built()


def test_teacher_forcing_shifts_in_a_start_token_and_ends_with_the_end_token(captioner):
    task = captioner[0].task
    assert task.max_length == 15  # the pairs captions' padded length (14) + the end token
    captions = torch.tensor([[5, 6, 7] + [0] * 11, list(range(4, 18))])  # short; a full 14 words
    inputs, targets = task.teacher_forcing(captions)
    assert inputs.shape == targets.shape == (2, 15)
    assert inputs[0, :4].tolist() == [task.bos, 5, 6, 7] and targets[0, :5].tolist() == [5, 6, 7, task.eos, 0]
    assert targets[1, 13:].tolist() == [17, task.eos]  # 14 words fit with their end token
    short, datamodule = built("task.max_length=3")
    short = short.task
    inputs, targets = short.teacher_forcing(captions)
    assert inputs[1].tolist() == [short.bos, 4, 5] and targets[1].tolist() == [4, 5, 6]  # cut: no end token
    short.attach_data(datamodule)
    rows = len(datamodule.splits["train"]["text"])
    assert short.training_captions == {"count": rows, "cut": rows, "empty": 0}  # every caption has 3+ words


def test_items_are_groups_captioned_once_against_all_their_captions():
    groups = torch.tensor([3, 3, 1, 1, 2])
    references = torch.tensor([[4, 0], [5, 0], [6, 7], [0, 0], [8, 0]])
    items = caption_items(groups, references, lambda ids: " ".join(str(i) for i in ids.tolist() if i))
    assert items["first"].tolist() == [0, 2, 4]
    assert items["references"] == [["4", "5"], ["6 7"], ["8"]]  # a row without a caption is no reference


def test_a_training_step_reaches_every_condition_encoder_and_the_memory_masks_absence(captioner):
    model, datamodule = captioner
    assert model.modalities == ["audio", "image"]  # the caption (text) is written, not encoded
    batch = next(iter(datamodule.train_dataloader()))
    model.train()
    outputs = model(batch)
    loss = model.task.loss(outputs, batch)
    loss.backward()
    assert torch.isfinite(loss)
    for name in ("audio", "image"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoders[name].parameters())
    batch = {**batch, "present": batch["present"].clone()}
    batch["present"][:, 1] = False  # no image anywhere
    memory_mask = model(batch)["memory_mask"]
    audio_tokens = model.encoders["audio"](batch["audio"]).tokens.shape[1]
    assert memory_mask[:, 0].all() and memory_mask[:, 1 : 1 + audio_tokens].all()  # summary and audio tokens
    assert not memory_mask[:, 1 + audio_tokens :].any()  # the image's tokens are masked out


def test_whole_split_metrics_and_the_baseline(captioner):
    from mmrun.baseline.captioning import caption_baseline

    model, datamodule = captioner
    model.eval()
    task = model.task
    with torch.no_grad():
        for batch in datamodule.loader("val"):
            task.update_metrics(model(batch), batch, "val")
    metrics = task.epoch_metrics("val")
    assert set(metrics) == {"val/bleu1", "val/bleu2", "val/bleu3", "val/bleu4", "val/rouge_l", "val/cider"}
    assert all(0.0 <= float(v) <= 10.0 for v in metrics.values())
    report = task.report("val")["captioning"]
    items = len(datamodule.splits["val"]["label"].unique())
    assert report == {"decoding": "greedy", "items": items, "scored_items": items, "references": 2 * items,
                      "training_captions": {}}  # attach_data was not called here
    baseline = caption_baseline(datamodule.splits, datamodule.spec, task, seed=0, monitor="val/cider",
                                monitor_mode="max")
    assert baseline["best"] in ("most frequent caption", "nearest neighbour")
    assert baseline["test"]["test/cider"] >= 0 and "val/cider" in baseline["val"]


@pytest.mark.parametrize("override, message", [
    ("task.target=image", r"^task\.target=image is image, not text: captioning writes a text column"),
    ("task.target=caption", r"^task\.target=caption is not a modality of the data"),
    ("task.condition=[text]", r"^text is both the caption \(task\.target\) and a condition"),
    ("task.condition=[video]", r"^task\.condition names 'video', which the data lacks"),
    ("task.decoding=sample", r"^task\.decoding=sample is unknown"),
    ("task.metrics=[bleu]", r"^task\.metrics=\['bleu'\] must list some of .* including cider"),
])
def test_bad_captioning_options_are_one_line_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        built(override)


def test_a_decoder_for_a_task_without_one_is_refused():
    cfg = without_run_nodes(compose_train(["decoder=gru", "dataset.size=60"]))
    datamodule = instantiate(cfg.dataset)
    datamodule.setup()
    with pytest.raises(ConfigError, match=r"^decoder=gru is for task=captioning; prediction tasks have no decoder"):
        MultimodalModule(cfg, datamodule.spec)
