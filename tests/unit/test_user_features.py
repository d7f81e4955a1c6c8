"""User features of recommendation data: a user table or user columns, fitted state, the user tower."""

from __future__ import annotations

import json

import pytest
import torch
from test_interactions_manifest import ITEMS, USERS, build, interaction_rows, tables, write_csv
from test_recommendation import task_for

from mmrun.errors import ConfigError, DataError

COUNTRIES = ("fr", "de", "it")


def user_rows(count=USERS):
    return [{"user": f"u{u}", "age": str(20 + 3 * u), "country": COUNTRIES[u % 3],
             "bio": f"likes {COUNTRIES[u % 3]} music and long walks number {u}"} for u in range(count)]


def with_users(tmp_path, users=None, **options):
    interactions, items = tables(tmp_path)
    users_table = write_csv(tmp_path / "users.csv", users or user_rows())
    return build(interactions, items, users=str(users_table), **options), users_table


def test_a_user_table_becomes_user_modalities_fitted_on_training_users(tmp_path):
    data, _ = with_users(tmp_path)
    spec = data.spec
    assert spec.extra["recommendation"]["user_features"] == ["user_bio", "user_categorical", "user_tabular"]
    kinds = {m.name: m.kind for m in spec.modalities}
    assert kinds["user_bio"] == "text" and kinds["user_tabular"] == "tabular" and kinds["title"] == "text"
    features = data.user_features
    assert set(features) == {"user_bio", "user_categorical", "user_tabular"}
    assert all(len(values) == USERS for values in features.values())
    ages = torch.tensor([20.0 + 3 * int(name[1:]) for name in data.user_names])
    trained = torch.unique(data.splits["train"]["user_index"])
    standardised = (ages - ages[trained].mean()) / ages[trained].std(unbiased=False)
    assert torch.allclose(features["user_tabular"][:, 0], standardised, atol=1e-4)
    # user features are not item content: the catalogue holds the items' modalities only
    assert not set(features) & set(data.catalogue)
    for split in data.splits.values():
        assert split["present"].all()


def test_users_missing_from_the_table_stop_or_have_absent_features(tmp_path):
    partial = user_rows()[: USERS - 2]  # u10 and u11 have no row
    with pytest.raises(DataError, match="user 'u10' is not in the user table users.csv; add it there, or set "
                                        "dataset.allow_missing=true"):
        with_users(tmp_path, partial)
    data, _ = with_users(tmp_path, partial, allow_missing=True)
    columns = [m.name for m in data.spec.modalities]
    for split in data.splits.values():
        absent = torch.tensor([data.user_names[i] in ("u10", "u11") for i in split["user_index"].tolist()])
        for name in ("user_bio", "user_categorical", "user_tabular"):
            assert torch.equal(split["present"][:, columns.index(name)], ~absent)
        assert split["present"][:, columns.index("title")].all()


def test_a_bad_user_row_is_skipped_with_its_interactions(tmp_path):
    users = user_rows()
    users[4]["age"] = "old"
    with pytest.raises(DataError, match="user table: users.csv has 1 bad row"):
        with_users(tmp_path, users)
    data, _ = with_users(tmp_path, users, on_error="skip")
    assert "u4" not in data.user_names
    assert sum(len(split["user_index"]) for split in data.splits.values()) == USERS * 6 - 6


def test_user_columns_of_the_interactions_table_are_not_item_content(tmp_path):
    profile = {row["user"]: row for row in user_rows()}
    rows = [{**row, "age": profile[row["user"]]["age"], "title": f"song {row['item']} of a great band"}
            for row in interaction_rows()]
    interactions = write_csv(tmp_path / "one.csv", rows)
    data = build(interactions, user_columns={"tabular": ["age"]})
    names = [m.name for m in data.spec.modalities]
    assert names == ["item", "title", "user", "user_tabular"]
    assert data.spec.extra["recommendation"]["user_features"] == ["user_tabular"]
    assert data.user_features["user_tabular"].shape == (USERS, 1)
    with pytest.raises(ConfigError, match=r"dataset.user_columns names \['item'\], the id or split column"):
        build(interactions, user_columns={"categorical": ["item"]})


def test_modalities_pick_user_features_and_bad_tables_are_refused(tmp_path):
    data, users = with_users(tmp_path, modalities=["user", "item", "user_tabular"])
    assert [m.name for m in data.spec.modalities] == ["item", "user", "user_tabular"]
    assert set(data.user_features) == {"user_tabular"}
    interactions, items = tables(tmp_path)
    write_csv(tmp_path / "ids.csv", [{"user": f"u{u}"} for u in range(USERS)])
    with pytest.raises(DataError, match="ids.csv has no user feature column"):
        build(interactions, items, users=str(tmp_path / "ids.csv"))
    write_csv(tmp_path / "photos.csv", [{"user": f"u{u}", "photo": f"u{u}.png"} for u in range(USERS)])
    with pytest.raises(ConfigError, match=r"user feature column\(s\) \['photo'\] hold images or audio"):
        build(interactions, items, users=str(tmp_path / "photos.csv"))
    write_csv(tmp_path / "renamed.csv", [{"person": f"u{u}", "age": "3"} for u in range(USERS)])
    with pytest.raises(DataError, match="renamed.csv has no user id column 'user'"):
        build(interactions, items, users=str(tmp_path / "renamed.csv"))
    with pytest.raises(DataError, match="dataset.users='nowhere.csv' does not exist"):
        build(interactions, items, users="nowhere.csv")


def test_a_checkpoint_reads_new_users_with_the_training_preprocessing(tmp_path):
    data, users = with_users(tmp_path)
    fitted = json.loads(json.dumps(data.spec.extra["fitted"]))
    new_users = write_csv(tmp_path / "new_users.csv", [*user_rows(), {"user": "stranger", "age": "41",
                                                                      "country": "de", "bio": "likes de music"}])
    new = write_csv(tmp_path / "new.csv", [{"user": "stranger", "item": "i5"}, {"user": "u3", "item": "i1"}])
    items = tmp_path / "items.csv"
    scored = build(new, items, users=str(new_users), fitted=fitted, split_column=None, splits=[0.5, 0.25, 0.25])
    stranger = scored.user_names.index("stranger")
    assert stranger == USERS and len(scored.user_features["user_tabular"]) == USERS + 1
    state = fitted["user_features"]["preprocess"]["user_tabular"]
    age = scored.user_features["user_tabular"][stranger, 0].item()
    ages = torch.tensor([20.0 + 3 * int(name[1:]) for name in data.user_names])
    trained = torch.unique(data.splits["train"]["user_index"])
    assert age == pytest.approx(((41 - ages[trained].mean()) / ages[trained].std(unbiased=False)).item(), abs=1e-4)
    assert state  # the training statistics travel in the checkpoint
    assert scored.user_features["user_categorical"][stranger, 0] == data.user_features["user_categorical"][
        data.user_names.index("u1"), 0]  # de, the category of u1 in training


def test_the_user_tower_reads_each_rows_user_features(tmp_path):
    data, _ = with_users(tmp_path)
    task = task_for(data).eval()
    assert task.sides["query"] == ["user", "user_bio", "user_categorical", "user_tabular"]
    assert task.sides["target"] == [m.name for m in data.spec.modalities if not m.name.startswith("user")]
    split = data.splits["train"]
    batch = task.prepare_batch({key: value[:7] for key, value in split.items()})
    for name, values in data.user_features.items():
        assert torch.equal(batch[name], values[split["user_index"][:7]])
    assert torch.equal(batch["user"], split["user"][:7])  # ids drop in training only
    dropping = task_for(data, id_dropout=0.9)
    dropping.train()
    trained = dropping.prepare_batch({key: value[:64] for key, value in split.items()})
    assert (trained["user"] == 0).float().mean() > 0.7  # beside features the user id drops too (DropoutNet)
    only_id = task_for(data, user=["user"])
    assert only_id.sides["query"] == ["user"] and not set(only_id.sides["target"]) & set(data.user_features)
    with pytest.raises(ConfigError, match=r"\['user_tabular'\] on the wrong side"):
        task_for(data, user=["user"], item=["item", "user_tabular"])
    with pytest.raises(ConfigError, match=r"\['title'\] on the wrong side"):
        task_for(data, user=["user", "title"])
    assert ITEMS == len(data.catalogue["cold"])


def test_a_user_side_of_features_alone_leaves_the_user_id_off_both_sides(tmp_path):
    data, _ = with_users(tmp_path)
    task = task_for(data, user=["user_tabular", "user_categorical"])
    assert task.sides["query"] == ["user_categorical", "user_tabular"]
    assert "user" not in task.sides["target"] and "item" in task.sides["target"]
