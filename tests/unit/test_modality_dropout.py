"""model.modality_dropout (ModDrop): whole modalities dropped from training samples via ``present``."""

import pytest
import torch
from conftest import compose_train

from mmrun.data.interactions import SyntheticInteractionsDataModule
from mmrun.errors import ConfigError
from mmrun.modality_dropout import ModalityDropout, build_modality_dropout
from mmrun.model import MultimodalModule

ORDER = ["image", "text", "audio", "tabular"]


def _batch(rows: int = 20000, present: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "image": torch.rand(rows, 3, 2, 2, generator=generator) + 1.0,  # never 0: a zero means dropped
        "text": torch.randint(1, 9, (rows, 5), generator=generator),
        "audio": torch.rand(rows, 7, generator=generator) + 1.0,
        "tabular": torch.rand(rows, 4, generator=generator) + 1.0,
        "label": torch.zeros(rows, dtype=torch.long),
        "present": torch.ones(rows, len(ORDER), dtype=torch.bool) if present is None else present,
    }


def _dropout(value, groups=(ORDER,)) -> ModalityDropout:
    return build_modality_dropout(value, [list(g) for g in groups], ORDER).train()


def _check_fill(before: dict, after: dict) -> None:
    """Dropped entries are zero-filled, kept ones untouched; nothing becomes present."""
    assert not (after["present"] & ~before["present"]).any()
    for column, name in enumerate(ORDER):
        dropped = before["present"][:, column] & ~after["present"][:, column]
        flat = after[name].flatten(1)
        assert (flat[dropped] == 0).all()
        torch.testing.assert_close(after[name][~dropped], before[name][~dropped])


def test_rate_zero_changes_nothing_and_draws_no_random_numbers():
    batch = _batch(100)
    state = torch.get_rng_state()
    assert _dropout(0.0)(batch) is batch
    assert _dropout({"image": 0.0})(batch) is batch
    assert torch.equal(torch.get_rng_state(), state)  # a run with rate 0 trains exactly as one without


def test_rate_drops_about_p_of_the_present_entries_zero_filled():
    torch.manual_seed(0)
    batch = _batch()
    out = _dropout(0.3)(batch)
    dropped = (~out["present"]).float().mean(0)
    # p, less the rare draws that would drop all four (p^4 / 4 of the entries are kept back)
    torch.testing.assert_close(dropped, torch.full((4,), 0.3 - 0.3**4 / 4), atol=0.012, rtol=0)
    _check_fill(batch, out)
    assert out["label"] is batch["label"]


def test_never_all_of_a_sample_and_absent_modalities_stay_absent():
    torch.manual_seed(0)
    present = torch.rand(5000, 4) < 0.7
    present[:50] = False  # samples with nothing: nothing to keep
    batch = _batch(5000, present)
    out = _dropout(0.95)(batch)
    had = present.any(1)
    assert out["present"][had].any(1).all()
    assert not out["present"][~had].any()
    assert (out["present"].sum(1)[had] == 1).float().mean() > 0.8  # mostly one left: the rule, not luck
    _check_fill(batch, out)


def test_each_group_keeps_one_and_modalities_outside_groups_are_never_dropped():
    torch.manual_seed(0)
    batch = _batch(4000)
    out = _dropout(0.9, groups=(["image", "text"], ["audio"]))(batch)  # tabular in no group
    assert out["present"][:, :2].any(1).all()
    assert out["present"][:, 2:].all()  # audio alone in its group; tabular never droppable
    assert (~out["present"][:, :2]).any()


def test_eval_mode_never_drops():
    batch = _batch(100)
    assert _dropout(0.5).eval()(batch) is batch


def test_per_modality_rates():
    torch.manual_seed(0)
    batch = _batch()
    out = _dropout({"image": 0.5, "audio": 0.2})(batch)
    dropped = (~out["present"]).float().mean(0)
    torch.testing.assert_close(dropped, torch.tensor([0.5, 0.0, 0.2, 0.0]), atol=0.012, rtol=0)
    _check_fill(batch, out)


def test_the_seed_decides_the_draws():
    batch = _batch(500)
    runs = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        runs.append(_dropout(0.4)(batch)["present"])
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


@pytest.mark.parametrize("value, message", [
    (1.0, r"^model\.modality_dropout=1\.0 must be auto, a rate in \[0, 1\)"),
    (-0.1, r"^model\.modality_dropout=-0\.1 must be"),
    (True, r"^model\.modality_dropout=True must be"),
    ("high", r"^model\.modality_dropout=high must be"),
    ({"image": 1.5}, r"^model\.modality_dropout\.image=1\.5 must be a rate in \[0, 1\)"),
    ({"video": 0.2}, (r"^model\.modality_dropout names 'video', which this run cannot drop; its droppable "
                      r"modalities are image, text, audio, tabular$")),
])
def test_bad_values_are_refused_in_one_line(value, message):
    with pytest.raises(ConfigError, match=message) as caught:
        _dropout(value)
    assert "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def synthetic(small_data):
    return small_data


def test_the_module_drops_in_training_steps_only(synthetic):
    model = MultimodalModule(compose_train(["model.modality_dropout={image: 0.6, text: 0.3}"]), synthetic.spec)
    assert sorted(model.modality_dropout.names) == ["image", "text"]
    assert model.modality_dropout.groups == [[0, 1, 2, 3]]  # prediction: one group of every modality read
    seen = []
    model.task.forward = lambda encoded, batch: seen.append(batch["present"].clone()) or torch.zeros(1)
    batch = next(iter(synthetic.train_dataloader()))
    torch.manual_seed(0)
    model.train()(batch)
    model.eval()(batch)
    given, names = batch["present"], synthetic.spec.modality_names  # audio, image, tabular, text
    rated = [names.index("image"), names.index("text")]
    kept = [names.index("audio"), names.index("tabular")]
    assert (seen[0] <= given).all() and not torch.equal(seen[0][:, rated], given[:, rated])
    assert torch.equal(seen[0][:, kept], given[:, kept]) and torch.equal(seen[1], given)
    with pytest.raises(ConfigError, match="its droppable modalities are audio, image, tabular, text"):
        MultimodalModule(compose_train(["model.modality_dropout={video: 0.3}"]), synthetic.spec)


def test_recommendation_drops_item_content_per_side_but_never_the_ids():
    data = SyntheticInteractionsDataModule(num_users=40, num_items=60, genres=3, interactions_per_user=4,
                                           batch_size=64)
    data.setup()
    model = MultimodalModule(compose_train(["dataset=interactions", "task=recommendation",
                                            "model.modality_dropout=0.9"]), data.spec)
    model.task.attach_data(data)
    names = data.spec.modality_names
    assert [[names[c] for c in group] for group in model.modality_dropout.groups] == [["attributes", "title"]]
    assert set(model.modality_dropout.names) == {"attributes", "title"}
    with pytest.raises(ConfigError, match="droppable modalities are attributes, title$"):
        MultimodalModule(compose_train(["dataset=interactions", "task=recommendation",
                                        "model.modality_dropout={user: 0.5}"]), data.spec)
    model.train()
    torch.manual_seed(0)
    batch = model.modality_dropout(model.task.prepare_batch(next(iter(data.train_dataloader()))))
    content = [names.index("attributes"), names.index("title")]
    ids = [names.index("user"), names.index("item")]
    assert batch["present"][:, content].any(1).all() and not batch["present"][:, content].all()
    assert batch["present"][:, ids].all()
    dropped_title = ~batch["present"][:, names.index("title")]
    assert (batch["title"][dropped_title] == 0).all()  # gathered item content is zero-filled too


def test_auto_is_a_quarter_for_prediction_and_off_for_the_other_families(synthetic):
    model = MultimodalModule(compose_train([]), synthetic.spec)
    assert model.modality_dropout.names and float(model.modality_dropout.rate.max()) == 0.25
    for family in ("retrieval", "recommendation", "captioning"):
        assert not build_modality_dropout("auto", [list(ORDER)], ORDER, family).names
    assert _dropout(0.0).names == []
