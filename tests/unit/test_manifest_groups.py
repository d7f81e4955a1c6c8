"""A manifest read for task=retrieval: no label column, ``label`` = group codes from ``group_column``."""

from __future__ import annotations

import pytest
import torch
from manifest_samples import build, write_csv, write_png

from mmrun.data.manifest import ManifestDataModule
from mmrun.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")
COLOURS = ("red", "green", "blue", "grey")


def caption_rows(folder, images: int = 12, captions: int = 2, start: int = 0, split: bool = True) -> list[dict]:
    """``captions`` rows per image: the image path, a caption, the image's id (and a split)."""
    files = folder / "files"
    files.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(start, start + images):
        write_png(files / f"{i}.png", 20 * (i % 12))
        for k in range(captions):
            row = {"photo": f"files/{i}.png", "caption": f"a {COLOURS[i % 4]} picture number {i} take {k}",
                   "image_id": f"img{i}"}
            if split:
                row["split"] = ("train", "train", "val", "test")[i % 4]
            rows.append(row)
    return rows


def all_rows(datamodule, key: str) -> list:
    return [v for s in SPLITS for v in datamodule.splits[s][key].tolist()]


def image_ids(datamodule, rows: list[dict]) -> list[str]:
    """The image id of every served row, split by split, from its line in the manifest."""
    return [rows[line - 2]["image_id"] for s in SPLITS for line in datamodule.row_ids[s].tolist()]


def test_labels_are_group_codes_and_the_group_column_is_no_modality(tmp_path):
    rows = caption_rows(tmp_path)
    path = write_csv(tmp_path / "pairs.csv", rows)
    datamodule = build(path, tmp_path, task="retrieval", group_column="image_id")
    spec = datamodule.spec
    assert spec.task == "retrieval" and spec.num_outputs == 0 and spec.class_names == ()
    assert spec.modality_names == ["caption", "photo"]  # no label column needed, image_id is not a modality
    labels, ids = all_rows(datamodule, "label"), image_ids(datamodule, rows)
    assert len(labels) == 24 and datamodule.splits["train"]["label"].dtype == torch.int64
    code_of = dict(zip(ids, labels))
    assert len(set(code_of.values())) == 12  # distinct across the whole table
    assert all(code_of[i] == code for i, code in zip(ids, labels))  # the rows of one image share a code
    assert spec.extra["fitted"]["columns"]["group"] == "image_id" and spec.extra["fitted"]["label_kind"] == "retrieval"


def test_fraction_splits_keep_an_items_rows_together_and_no_group_is_one_row_each(tmp_path):
    rows = [dict(r, label="") for r in caption_rows(tmp_path, images=20, captions=3, split=False)]
    path = write_csv(tmp_path / "pairs.csv", rows)  # an empty label column: not read, so no bad rows
    grouped = build(path, tmp_path, task="retrieval", group_column="image_id", splits=[0.6, 0.2, 0.2])
    per_split = [set(grouped.splits[s]["label"].tolist()) for s in SPLITS]
    assert [len(g) for g in per_split] == [12, 4, 4] and len(set.union(*per_split)) == 20
    assert {len(grouped.splits[s]["label"]) for s in SPLITS} == {36, 12}
    single = build(path, tmp_path, task="retrieval", splits=[0.6, 0.2, 0.2])
    labels = all_rows(single, "label")
    assert len(labels) == 60 and len(set(labels)) == 60  # each row its own item
    # Without a group column image_id is an ordinary (categorical) column; the label column is never read.
    assert single.spec.modality_names == ["caption", "categorical", "photo"]


def test_an_empty_group_cell_is_a_bad_row(tmp_path):
    rows = caption_rows(tmp_path)
    rows[5]["image_id"] = ""
    path = write_csv(tmp_path / "pairs.csv", rows)
    with pytest.raises(DataError, match=r"pairs.csv has 1 bad row of 24: pairs.csv:7 image_id: empty group id"):
        build(path, tmp_path, task="retrieval", group_column="image_id")
    skipped = build(path, tmp_path, task="retrieval", group_column="image_id", on_error="skip")
    lines = [line for s in SPLITS for line in skipped.row_ids[s].tolist()]
    assert len(all_rows(skipped, "label")) == 23 and 7 not in lines and len(set(all_rows(skipped, "label"))) == 12


def test_an_unknown_group_column_is_named_with_the_columns(tmp_path):
    path = write_csv(tmp_path / "pairs.csv", caption_rows(tmp_path))
    with pytest.raises(DataError) as caught:
        build(path, tmp_path, task="retrieval", group_column="picture_id")
    message = str(caught.value)
    assert "no group column 'picture_id'" in message and "'image_id'" in message and "\n" not in message


def test_group_column_only_with_task_retrieval(tmp_path):
    for task in ("auto", "multiclass"):
        with pytest.raises(ConfigError, match="group_column=image_id only applies to task=retrieval"):
            ManifestDataModule(path=str(tmp_path / "any.csv"), task=task, group_column="image_id")
    path = write_csv(tmp_path / "pairs.csv", caption_rows(tmp_path))
    with pytest.raises(ConfigError, match="label, split or group column"):
        build(path, tmp_path, task="retrieval", group_column="image_id", columns={"text": ["caption", "image_id"]})


def test_the_cache_key_holds_the_group_column(tmp_path):
    path = write_csv(tmp_path / "pairs.csv", caption_rows(tmp_path, split=True))
    grouped = build(path, tmp_path, task="retrieval", group_column="image_id")
    single = build(path, tmp_path, task="retrieval")
    assert len(set(all_rows(grouped, "label"))) == 12 and len(set(all_rows(single, "label"))) == 24


def test_fitted_state_scores_a_new_table_with_its_own_groups(tmp_path):
    trained = build(write_csv(tmp_path / "pairs.csv", caption_rows(tmp_path)), tmp_path, task="retrieval",
                    group_column="image_id")
    fitted = trained.spec.extra["fitted"]
    new_rows = caption_rows(tmp_path, images=5, captions=3, start=30, split=False)
    new = write_csv(tmp_path / "new.csv", new_rows)
    # Saved dataset config + the checkpoint's fitted state, as mmrun eval builds it.
    scored = build(new, tmp_path, task="retrieval", group_column="image_id", fitted=fitted)
    assert scored.spec.task == "retrieval" and scored.spec.modalities == trained.spec.modalities
    labels, ids = all_rows(scored, "label"), image_ids(scored, new_rows)
    assert len(labels) == 15 and len(set(labels)) == 5
    assert all(labels[a] == labels[b] for a in range(15) for b in range(15) if ids[a] == ids[b])
    # No group column in the new table: eval refuses, predictions treat each row as its own item.
    bare = write_csv(tmp_path / "bare.csv", [{k: v for k, v in r.items() if k != "image_id"} for r in new_rows])
    with pytest.raises(DataError, match="no group column 'image_id'"):
        build(bare, tmp_path, task="retrieval", group_column="image_id", fitted=fitted)
    unlabelled = build(bare, tmp_path, task="retrieval", group_column="image_id", fitted=fitted,
                       labels_required=False)
    assert sorted(all_rows(unlabelled, "label")) == list(range(15))
