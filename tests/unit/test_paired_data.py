"""PairedShapesDataModule: the built-in retrieval data (dataset=pairs)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from mmrun.config_check import conf_dir
from mmrun.data.paired import (ALL_MODALITIES, ATTRIBUTES, SOUND, TOKEN, VISUAL, VOCABULARY, WORDS,
                               PairedShapesDataModule, combination)
from mmrun.data.tensor_datamodule import SPLITS
from mmrun.errors import ConfigError


@pytest.fixture(scope="module")
def pairs():
    datamodule = PairedShapesDataModule(size=300, captions_per_item=3, splits=[0.6, 0.2, 0.2])
    datamodule.setup()
    return datamodule


def test_spec_shapes_and_groups(pairs):
    spec = pairs.spec
    assert spec.task == "retrieval" and spec.num_outputs == 0 and spec.class_names == ()
    assert spec.modality_names == sorted(ALL_MODALITIES)
    assert {m.name: m.shape for m in spec.modalities} == {"audio": (512,), "image": (3, 32, 32), "text": (14,)}
    assert spec.modalities[2].vocab_size == len(VOCABULARY) and VOCABULARY[0] == "<pad>"
    rows = {s: len(pairs.splits[s]["label"]) for s in SPLITS}
    assert rows == {"train": 540, "val": 180, "test": 180}  # 180/60/60 items x 3 captions
    for split, tensors in pairs.splits.items():
        assert tensors["label"].dtype == torch.int64 and tensors["present"].shape == (rows[split], 3)
        assert tensors["present"].all() and tensors["text"].dtype == torch.int64
        assert (tensors["text"][:, 0] != 0).all() and tensors["text"].max() < len(VOCABULARY)
    labels = [set(pairs.splits[s]["label"].tolist()) for s in SPLITS]
    assert not (labels[0] & labels[1]) and not (labels[0] & labels[2]) and not (labels[1] & labels[2])
    assert sum(map(len, labels)) == 300  # one group per item, each in one split


def test_rows_of_an_item_share_image_audio_and_label_but_not_the_caption(pairs):
    test = pairs.splits["test"]
    label = test["label"].view(-1, 3)
    assert (label == label[:, :1]).all()
    for key in ("image", "audio"):
        values = test[key].view(-1, 3, *test[key].shape[1:])
        assert torch.equal(values[:, 1], values[:, 0]) and torch.equal(values[:, 2], values[:, 0])
    captions = test["text"].view(-1, 3, test["text"].shape[1])
    differ = (captions[:, 0] != captions[:, 1]).any(1) | (captions[:, 0] != captions[:, 2]).any(1)
    assert differ.float().mean() > 0.95
    # Different items have different images.
    assert not torch.equal(test["image"][0], test["image"][3])


def test_deterministic_by_data_seed():
    a, b, c = (PairedShapesDataModule(size=60, data_seed=s) for s in (1, 1, 2))
    for datamodule in (a, b, c):
        datamodule.setup()
    for key in ("image", "audio", "text", "label"):
        assert torch.equal(a.splits["train"][key], b.splits["train"][key])
    assert not torch.equal(a.splits["train"]["image"], c.splits["train"]["image"])
    assert not torch.equal(a.splits["train"]["text"], c.splits["train"]["text"])
    # More captions per item leave the images alone.
    more = PairedShapesDataModule(size=60, data_seed=1, captions_per_item=2)
    more.setup()
    assert torch.equal(more.splits["train"]["image"][::2], a.splits["train"]["image"])


def test_captions_name_every_attribute_and_only_the_image_shows_visual_ones(pairs):
    attributes = pairs.attributes["test"]
    captions = pairs.splits["test"]["text"][::3]  # one caption per item
    for item in range(len(captions)):
        words = {VOCABULARY[i] for i in captions[item].tolist() if i}
        for name in ATTRIBUTES:
            said = {value for value, synonyms in enumerate(WORDS[name]) if words & set(synonyms)}
            assert said == {int(attributes[name][item])}, (item, name, words)


def test_renderers_read_only_their_own_attributes():
    from mmrun.data.paired import render_audio, render_images

    base = {name: torch.zeros(4, dtype=torch.long) for name in ATTRIBUTES}
    sound_only = dict(base, pitch=torch.tensor([0, 1, 2, 4]), rhythm=torch.tensor([0, 1, 2, 0]))
    visual_only = dict(base, shape=torch.tensor([0, 1, 2, 3]), colour=torch.tensor([0, 5, 2, 1]))
    seed = torch.Generator().manual_seed
    # Changing the sound attributes leaves the images untouched, bit for bit, and vice versa.
    assert torch.equal(render_images(sound_only, 0.3, seed(0)), render_images(base, 0.3, seed(0)))
    assert torch.equal(render_audio(visual_only, 0.3, seed(0)), render_audio(base, 0.3, seed(0)))
    assert not torch.equal(render_images(visual_only, 0.3, seed(0)), render_images(base, 0.3, seed(0)))
    assert not torch.equal(render_audio(sound_only, 0.3, seed(0)), render_audio(base, 0.3, seed(0)))


def test_image_alone_or_audio_alone_cannot_tell_the_items_apart_but_both_can():
    datamodule = PairedShapesDataModule()  # the defaults of conf/dataset/pairs.yaml
    attributes = datamodule.attributes["test"]
    items = len(attributes["shape"])
    assert 500 <= items <= 1000

    def shared(names):  # the share of test items that another test item matches on ``names``
        code = combination(attributes, names)
        return ((code[:, None] == code[None, :]).sum(1) > 1).float().mean().item()

    # Most images, and every sound, fit another item too; the image and sound together rarely do.
    assert shared(VISUAL) > 0.6 and shared(SOUND) == 1.0 and shared(ATTRIBUTES) < 0.12
    # The captions tell apart items that differ only in sound, which their images cannot.
    visual = combination(attributes, VISUAL)
    whole = combination(attributes, ATTRIBUTES)
    same_look = (visual[:, None] == visual[None, :]) & (whole[:, None] != whole[None, :])
    i, j = same_look.nonzero()[0].tolist()
    text = datamodule.splits["test"]["text"]
    assert not torch.equal(text[i], text[j])


def test_config_file_matches_the_class_defaults():
    cfg = OmegaConf.load(conf_dir() / "dataset" / "pairs.yaml")
    assert cfg._target_ == "mmrun.data.paired.PairedShapesDataModule"
    defaults = PairedShapesDataModule()
    assert (cfg.size, cfg.captions_per_item, cfg.noise, list(cfg.splits)) == (
        defaults.size, defaults.captions_per_item, defaults.noise, list(defaults.fractions))


def test_subset_of_modalities():
    datamodule = PairedShapesDataModule(size=40, modalities=["text", "image"])
    assert datamodule.spec.modality_names == ["image", "text"]
    assert set(datamodule.splits["val"]) == {"image", "text", "label", "present"}
    assert PairedShapesDataModule(size=40, modalities=None).spec.modality_names == list(ALL_MODALITIES)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"modalities": ["tabular"]}, "dataset.modalities"),
        ({"modalities": []}, "dataset.modalities"),
        ({"captions_per_item": 0}, "dataset.captions_per_item"),
        ({"captions_per_item": 1.5}, "dataset.captions_per_item"),
        ({"noise": -0.1}, "dataset.noise"),
        ({"size": 10}, "dataset.size"),
        ({"splits": [0.5, 0.5, 0.5]}, "dataset.splits"),
        ({"splits": [0.98, 0.01, 0.01], "size": 100}, "at least 2"),
    ],
)
def test_bad_arguments_are_refused(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        PairedShapesDataModule(**{"size": 100, **kwargs})


def test_vocabulary_words_are_unique_and_attribute_words_never_overlap():
    assert len(set(VOCABULARY)) == len(VOCABULARY) == len(TOKEN)
    attribute_words = [w for values in WORDS.values() for synonyms in values for w in synonyms]
    assert len(set(attribute_words)) == len(attribute_words)
