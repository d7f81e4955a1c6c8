"""InteractionsManifestDataModule: the interactions contract from user tables, cold items, errors, fitted state."""

from __future__ import annotations

import csv
import json
import logging

import pytest
import torch

from mmrun.data.interactions_manifest import InteractionsManifestDataModule, per_user_split
from mmrun.data.spec import DataSpec
from mmrun.errors import ConfigError, DataError

GENRES = ("rock", "jazz", "folk")
USERS, ITEMS, PER_USER = 12, 20, 6


def write_csv(path, rows, columns=None):
    columns = columns or list(rows[0])
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def item_rows(count=ITEMS):
    return [{"item": f"i{i}", "title": f"a {GENRES[i % 3]} song number {i}", "price": str(1.5 * i),
             "genre": GENRES[i % 3]} for i in range(count)]


def interaction_rows(users=USERS, per_user=PER_USER, items=ITEMS):
    return [{"user": f"u{u}", "item": f"i{(3 * u + 2 * k) % items}"} for u in range(users) for k in range(per_user)]


def tables(tmp_path, interactions=None, items=None):
    return (write_csv(tmp_path / "interactions.csv", interactions or interaction_rows()),
            write_csv(tmp_path / "items.csv", items or item_rows()))


def build(path, items=None, **options):
    options.setdefault("cache", False)
    datamodule = InteractionsManifestDataModule(path=str(path), items=str(items) if items else None, **options)
    datamodule.setup()
    return datamodule


def read_rows(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_contract_keys_shapes_dtypes_and_ids(tmp_path):
    interactions, items = tables(tmp_path)
    dm = build(interactions, items)
    spec = dm.spec
    assert spec.task == "recommendation"
    assert spec.extra["recommendation"] == {"user": "user", "item": "item", "user_features": []}
    assert [(m.name, m.kind) for m in spec.modalities] == [
        ("categorical", "categorical"), ("item", "categorical"), ("tabular", "tabular"), ("title", "text"),
        ("user", "categorical")]
    by_name = {m.name: m for m in spec.modalities}
    assert by_name["user"].vocab_size == USERS + 1 and by_name["item"].vocab_size == ITEMS + 1
    assert by_name["categorical"].vocab_size == 1 + len(GENRES)

    rows = read_rows(interactions)
    total = 0
    for split, data in dm.splits.items():
        n = len(data["label"])
        total += n
        assert set(data) == {"user", "user_index", "item_index", "label", "present"}
        assert data["user"].shape == (n, 1) and data["user"].dtype == torch.long
        assert data["user_index"].shape == data["item_index"].shape == (n,)
        assert torch.equal(data["label"], data["item_index"])
        assert torch.equal(data["user"][:, 0], data["user_index"] + 1)
        assert data["present"].shape == (n, 5) and data["present"].dtype == torch.bool and data["present"].all()
        for line, user, item in zip(dm.row_ids[split].tolist(), data["user_index"].tolist(),
                                    data["item_index"].tolist()):
            assert (dm.user_names[user], dm.item_names[item]) == (rows[line - 2]["user"], rows[line - 2]["item"])
    assert total == USERS * PER_USER

    catalogue = dm.catalogue
    assert dm.item_names == [r["item"] for r in item_rows()]  # catalogue order = the item table's order
    assert dm.user_names == [f"u{u}" for u in range(USERS)]
    assert catalogue["item"].shape == (ITEMS, 1) and catalogue["title"].shape[0] == ITEMS
    assert catalogue["tabular"].shape == (ITEMS, 1) and catalogue["categorical"].shape == (ITEMS, 1)
    assert catalogue["present"].shape == (ITEMS, 5) and catalogue["cold"].dtype == torch.bool
    trained = torch.zeros(ITEMS, dtype=torch.bool)
    trained[dm.splits["train"]["item_index"]] = True
    assert torch.equal(catalogue["cold"], ~trained)
    assert torch.equal(catalogue["item"][:, 0], torch.where(trained, torch.arange(1, ITEMS + 1), 0))
    json.dumps(spec.extra)  # plain JSON, safe in a weights-only checkpoint
    assert DataSpec.from_dict(spec.to_dict()).extra["fitted"]["item_ids"] == dm.item_names


def test_each_users_rows_split_by_the_fractions():
    users = torch.arange(50).repeat_interleave(10)
    split = per_user_split(users, 50, (0.8, 0.1, 0.1), torch.Generator().manual_seed(0))
    counts = torch.stack([torch.bincount(users[split == s], minlength=50) for s in range(3)], 1)
    assert (counts == torch.tensor([8, 1, 1])).all()
    odd = per_user_split(torch.zeros(5, dtype=torch.long), 1, (0.5, 0.25, 0.25), torch.Generator().manual_seed(1))
    assert sorted(torch.bincount(odd, minlength=3).tolist()) in ([1, 1, 3], [1, 2, 2])


def test_cold_items_are_held_out_of_training_with_the_unknown_id(tmp_path):
    rows = item_rows(ITEMS + 2)  # two items nobody interacts with: cold as well
    interactions, items = tables(tmp_path, items=rows)
    dm = build(interactions, items, cold_items=0.25, split_seed=3)
    interacted = {r["item"] for r in interaction_rows()}
    cold = dm.catalogue["cold"]
    cold_names = {dm.item_names[i] for i in cold.nonzero().flatten().tolist()}
    assert {"i20", "i21"} <= cold_names
    held = cold_names & interacted
    assert len(held) >= round(0.25 * len(interacted))
    assert (dm.catalogue["item"][cold] == 0).all() and (dm.catalogue["item"][~cold] > 0).all()
    assert not cold[dm.splits["train"]["item_index"]].any()  # no training row uses a cold item
    on_cold = [int(cold[dm.splits[s]["item_index"]].sum()) for s in ("val", "test")]
    assert min(on_cold) > 0 and sum(on_cold) == sum(1 for r in interaction_rows() if r["item"] in held)
    again = build(interactions, items, cold_items=0.25, split_seed=3)
    assert torch.equal(again.catalogue["cold"], cold)  # seeded


def test_split_column_is_followed(tmp_path):
    rows = [dict(r, split=("train", "train", "train", "train", "val", "test")[k % 6])
            for k, r in enumerate(interaction_rows())]
    interactions, items = tables(tmp_path, interactions=rows)
    dm = build(interactions, items)
    for split in ("train", "val", "test"):
        assert dm.row_ids[split].tolist() == [k + 2 for k, r in enumerate(rows) if r["split"] == split]


def test_one_table_mode_reads_item_content_from_the_interactions(tmp_path):
    content = {r["item"]: r for r in item_rows()}
    rows = [dict(r, **{k: v for k, v in content[r["item"]].items() if k != "item"}) for r in interaction_rows()]
    write_csv(tmp_path / "one.csv", rows)
    interactions, items = tables(tmp_path)
    one = build(tmp_path / "one.csv")
    two = build(interactions, items)
    assert one.spec.modalities == two.spec.modalities
    first_seen = list(dict.fromkeys(r["item"] for r in rows))
    assert one.item_names == first_seen
    order = torch.tensor([two.item_names.index(name) for name in one.item_names])
    for key in ("tabular", "categorical", "item", "cold"):
        expected = two.catalogue[key][order]
        if key == "item":  # ids follow each table's own order
            expected = torch.where(two.catalogue["cold"][order], 0, torch.arange(1, len(order) + 1)).unsqueeze(1)
        assert torch.equal(one.catalogue[key], expected), key


def test_id_only_model_and_modalities_without_user(tmp_path):
    interactions, items = tables(tmp_path)
    dm = build(interactions, items, modalities=["user", "item"])
    assert dm.spec.modality_names == ["item", "user"] and set(dm.catalogue) == {"item", "present", "cold"}
    assert build(interactions, modalities=None).spec.modality_names == ["item", "user"]  # no content columns
    with pytest.raises(ConfigError, match=r"dataset.modalities=\['item', 'title'\] lacks user"):
        InteractionsManifestDataModule(path=str(interactions), modalities=["item", "title"])
    with pytest.raises(ConfigError, match="names \\['poster'\\], which the data lacks"):
        build(interactions, items, modalities=["user", "poster"])


@pytest.mark.parametrize("column, key", [("user", "user_column"), ("item", "item_column")])
def test_missing_id_column_lists_the_columns(tmp_path, column, key):
    rows = [{("who" if column == "user" else "user"): r["user"], ("what" if column == "item" else "item"): r["item"]}
            for r in interaction_rows()]
    interactions, items = tables(tmp_path, interactions=rows)
    with pytest.raises(DataError) as caught:
        build(interactions, items)
    message = str(caught.value)
    assert f"interactions.csv has no {column} id column {column!r} (dataset.{key})" in message
    assert "its columns are" in message and "\n" not in message


def test_unknown_item_stops_or_is_skipped_and_counted(tmp_path, caplog):
    rows = interaction_rows()
    rows[4] = {"user": "u0", "item": "zzz"}
    interactions, items = tables(tmp_path, interactions=rows)
    with pytest.raises(DataError) as caught:
        build(interactions, items)
    message = str(caught.value)
    assert "interactions.csv:6 item: item 'zzz' is not in the item table items.csv" in message
    assert "dataset.on_error=skip" in message and "\n" not in message
    with caplog.at_level(logging.WARNING, logger="mmrun"):
        dm = build(interactions, items, on_error="skip")
    assert sum(len(s["label"]) for s in dm.splits.values()) == len(rows) - 1
    assert "skipped 1 bad row(s) of 72 in interactions.csv" in caplog.text


@pytest.mark.parametrize("column", ["user", "item"])
def test_empty_id_cell_is_a_bad_row(tmp_path, column):
    rows = interaction_rows()
    rows[7] = dict(rows[7], **{column: ""})
    interactions, items = tables(tmp_path, interactions=rows)
    with pytest.raises(DataError, match=f"interactions.csv:9 {column}: empty {column} id"):
        build(interactions, items)


def test_item_table_errors(tmp_path):
    rows = item_rows()
    rows[2] = dict(rows[2], item="i0")
    interactions, items = tables(tmp_path, items=rows)
    with pytest.raises(DataError, match=r"items.csv:4 repeats item id 'i0' of line 2; give every item one row"):
        build(interactions, items)
    rows[2] = dict(rows[2], item="")
    write_csv(items, rows)
    with pytest.raises(DataError, match=r"items.csv:4 has an empty 'item' cell"):
        build(interactions, items)
    with pytest.raises(DataError, match=r"dataset.items='.*nope.csv' does not exist .*dataset.items=null"):
        build(interactions, tmp_path / "nope.csv")
    write_csv(items, [{"id": r["item"], "title": r["title"]} for r in item_rows()])
    with pytest.raises(DataError, match=r"items.csv has no item id column 'item' \(dataset.item_column"):
        build(interactions, items)


def test_bad_item_content_stops_or_skips_the_item_and_its_interactions(tmp_path):
    rows = item_rows()
    rows[3] = dict(rows[3], price="cheap")
    interactions, items = tables(tmp_path, items=rows)
    with pytest.raises(DataError, match=r"^item table: items.csv has 1 bad row of 20: items.csv:5 price: 'cheap'"):
        build(interactions, items)
    dm = build(interactions, items, on_error="skip")
    assert "i3" not in dm.item_names and len(dm.item_names) == ITEMS - 1
    dropped = sum(1 for r in interaction_rows() if r["item"] == "i3")
    assert sum(len(s["label"]) for s in dm.splits.values()) == USERS * PER_USER - dropped


def test_fitted_state_maps_known_ids_and_makes_new_ones_unknown(tmp_path):
    interactions, items = tables(tmp_path)
    trained = build(interactions, items, cold_items=0.1)
    fitted = json.loads(json.dumps(trained.spec.extra["fitted"]))  # as it comes out of a checkpoint
    again = build(interactions, items, cold_items=0.1, fitted=fitted)  # mmrun eval on the training data
    for split in ("train", "val", "test"):
        for key, value in trained.splits[split].items():
            assert torch.equal(value, again.splits[split][key]), (split, key)

    new_items = write_csv(tmp_path / "new_items.csv", [*item_rows(), {"item": "i_new", "title": "a brand new song",
                                                                      "price": "3", "genre": "rock"}])
    new = write_csv(tmp_path / "new.csv", [{"user": "u3", "item": "i5"}, {"user": "stranger", "item": "i5"},
                                           {"user": "u3", "item": "i_new"}, {"user": "u0", "item": "i1"}])
    scored = build(new, new_items, fitted=fitted, split_column=None, splits=[0.5, 0.25, 0.25])
    assert [(m.name, m.kind, m.shape, m.vocab_size) for m in scored.spec.modalities] == [
        (m.name, m.kind, m.shape, m.vocab_size) for m in trained.spec.modalities]
    assert scored.user_names[:USERS] == trained.user_names and scored.user_names[USERS:] == ["stranger"]
    assert scored.item_names[:ITEMS] == trained.item_names and scored.item_names[ITEMS:] == ["i_new"]
    rows = {}
    for split in scored.splits.values():
        for user, index, item in zip(split["user"][:, 0].tolist(), split["user_index"].tolist(),
                                     split["item_index"].tolist()):
            rows[(scored.user_names[index], scored.item_names[item])] = (user, index, item)
    assert rows[("u3", "i5")] == (trained.user_names.index("u3") + 1, trained.user_names.index("u3"), 5)
    assert rows[("stranger", "i5")][0] == 0 and rows[("stranger", "i5")][1] == USERS
    assert rows[("u3", "i_new")][2] == ITEMS
    catalogue = scored.catalogue
    assert catalogue["cold"][ITEMS] and catalogue["item"][ITEMS, 0] == 0
    assert torch.equal(catalogue["cold"][:ITEMS], trained.catalogue["cold"])
    assert torch.equal(catalogue["item"][:ITEMS], trained.catalogue["item"])
    assert torch.equal(catalogue["title"][:ITEMS], trained.catalogue["title"])  # the training vocabulary


def test_prepared_result_is_cached_until_a_table_changes(tmp_path, caplog):
    interactions, items = tables(tmp_path)
    first = build(interactions, items, cache=True, cache_dir=str(tmp_path / "cache"))
    with caplog.at_level(logging.INFO, logger="mmrun"):
        second = build(interactions, items, cache=True, cache_dir=str(tmp_path / "cache"))
    assert "data cache hit for interactions.csv" in caplog.text
    assert second.item_names == first.item_names and torch.equal(second.catalogue["title"], first.catalogue["title"])
    assert torch.equal(second.splits["test"]["item_index"], first.splits["test"]["item_index"])
    write_csv(items, [dict(r, price="1") for r in item_rows()])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mmrun"):
        third = build(interactions, items, cache=True, cache_dir=str(tmp_path / "cache"))
    assert "data cache hit" not in caplog.text and not torch.equal(third.catalogue["tabular"],
                                                                   first.catalogue["tabular"])


def test_image_content_resolves_against_the_item_table_and_missing_files_are_reported(tmp_path):
    from manifest_samples import write_png

    folder = tmp_path / "catalogue"
    (folder / "covers").mkdir(parents=True)
    rows = []
    for i, row in enumerate(item_rows()):
        write_png(folder / "covers" / f"{i}.png", 40 * (i % 3))
        rows.append({"item": row["item"], "cover": f"covers/{i}.png"})
    (folder / "covers" / "4.png").unlink()
    items = write_csv(folder / "items.csv", rows)
    interactions = write_csv(tmp_path / "interactions.csv", interaction_rows())
    options = {"image": {"size": [8, 8], "channels": "rgb"}}
    with pytest.raises(DataError, match=r"items.csv:6 cover: file 'covers/4.png' not found"):
        build(interactions, items, **options)
    dm = build(interactions, items, allow_missing=True, **options)
    assert dm.spec.modality_names == ["cover", "item", "user"]
    assert dm.catalogue["cover"].shape == (ITEMS, 3, 8, 8) and dm.catalogue["cover"].dtype == torch.float32
    column = dm.spec.modality_names.index("cover")
    assert dm.catalogue["present"][:, column].tolist() == [i != 4 for i in range(ITEMS)]
    for split in dm.splits.values():  # each interaction's present row is its item's
        assert torch.equal(split["present"], dm.catalogue["present"][split["item_index"]])
