import pytest
import torch

from mmrun.data.synthetic import ALL_MODALITIES, SyntheticDataModule, bit_masks, parity
from mmrun.errors import ConfigError


def test_shapes_and_spec(tiny_data):
    train = tiny_data.splits["train"]
    spec = tiny_data.spec
    assert spec.modality_names == sorted(ALL_MODALITIES)
    for m in spec.modalities:
        assert tuple(train[m.name].shape[1:]) == m.shape
    assert train["present"].shape == (len(train["label"]), 4)
    assert spec.task == "multiclass" and spec.num_outputs == 4
    sizes = [len(tiny_data.splits[s]["label"]) for s in ("train", "val", "test")]
    assert sizes == [160, 20, 20]


def test_deterministic_by_data_seed():
    a, b, c = (SyntheticDataModule(size=100, data_seed=s) for s in (1, 1, 2))
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.splits["train"]["image"], b.splits["train"]["image"])
    assert not torch.equal(a.splits["train"]["image"], c.splits["train"]["image"])


def test_each_view_is_one_bit_and_views_determine_the_class():
    masks = bit_masks(2)
    assert masks == {"image": 1, "text": 2, "audio": 3, "tabular": 1}
    y = torch.arange(4)
    views = torch.stack([parity(y, masks[m]) for m in ("image", "text", "audio")], 1)
    # every single view splits the 4 classes into two halves (at most 50% accuracy) ...
    for column in range(3):
        assert sorted(views[:, column].tolist()) == [0, 0, 1, 1]
    # ... while image + text together identify every class.
    assert len({tuple(row[:2].tolist()) for row in views}) == 4


def test_missing_rate_zero_fills_and_keeps_one_modality():
    dm = SyntheticDataModule(size=2000, missing_rate=0.5)
    dm.setup()
    train = dm.splits["train"]
    present = train["present"]
    assert present.any(1).all()
    assert 0.4 < (~present).float().mean() < 0.6
    image_absent = ~present[:, dm.modalities.index("image")]
    assert image_absent.any() and train["image"][image_absent].abs().sum() == 0


def test_subset_and_variants():
    dm = SyntheticDataModule(size=100, modalities=["text", "image"])
    assert dm.spec.modality_names == ["image", "text"]
    regression = SyntheticDataModule(size=100, task="regression")
    assert regression.spec.task == "regression" and regression.splits["train"]["label"].dtype == torch.float32
    multilabel = SyntheticDataModule(size=100, task="multilabel", num_classes=8)
    assert multilabel.spec.task == "multilabel" and multilabel.spec.num_outputs == 3
    assert SyntheticDataModule(size=100, num_classes=2).spec.task == "binary"


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"modalities": ["video"]}, "dataset.modalities"),
        ({"task": "ranking"}, "dataset.task"),
        ({"num_classes": 1}, "num_classes"),
        ({"splits": [0.5, 0.5, 0.5]}, "dataset.splits"),
    ],
)
def test_bad_options_are_refused(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        SyntheticDataModule(size=100, **kwargs)


def test_null_modalities_means_all_four():
    from mmrun.data.synthetic import ALL_MODALITIES, SyntheticDataModule

    datamodule = SyntheticDataModule(size=40, batch_size=8, modalities=None)
    datamodule.setup()
    assert datamodule.spec.modality_names == sorted(ALL_MODALITIES)
