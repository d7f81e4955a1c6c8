"""Reading manifests, inferring column roles and label tasks."""

from __future__ import annotations

import json

import pytest
import torch

from mmrun.data import labels
from mmrun.data.columns import infer_kind, plan_columns
from mmrun.data.table import read_table
from mmrun.errors import ConfigError, DataError


def write(path, text):
    path.write_text(text)
    return path


def test_csv_rows_keep_their_line_numbers_and_empty_cells_are_none(tmp_path):
    table = read_table(write(tmp_path / "m.csv", 'a,b\n1,"two\nlines"\n\n3,\n'))
    assert table.columns == ["a", "b"]
    assert table.rows == [{"a": "1", "b": "two\nlines"}, {"a": "3", "b": None}]
    assert table.lines == [2, 5]
    assert table.where(1, "b") == "m.csv:5 b"


def test_jsonl_keeps_types_and_unions_columns(tmp_path):
    lines = [{"label": ["a", "b"], "x": 1.5}, {"label": "c", "text": "hi"}]
    table = read_table(write(tmp_path / "m.jsonl", "\n".join(json.dumps(r) for r in lines)))
    assert table.columns == ["label", "x", "text"]
    assert table.rows[0]["label"] == ["a", "b"] and table.rows[1]["x"] is None


def test_parquet_manifest(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1.0, None], "label": ["a", "b"]}), tmp_path / "m.parquet")
    table = read_table(tmp_path / "m.parquet")
    assert table.rows == [{"x": 1.0, "label": "a"}, {"x": None, "label": "b"}] and table.lines == [1, 2]


@pytest.mark.parametrize(
    "text, message",
    [("a,b\n1,2,3\n", "m.csv:2: 3 cells but the header has 2"), ("a,a\n1,2\n", "twice"), ("a\n", "no data rows")],
)
def test_malformed_csv_is_a_data_error(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_table(write(tmp_path / "m.csv", text))


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="unknown extension"):
        read_table(write(tmp_path / "m.xlsx", "x"))
    with pytest.raises(DataError, match="does not exist"):
        read_table(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    "name, values, kind",
    [
        ("photo", ["a.png", "b.JPG", "c.webp"], "image"),
        ("clip", ["a.wav", "b.flac"], "audio"),
        ("age", ["1", "2.5", "-3"], "tabular"),
        ("age", [1, 2.5, True], "tabular"),
        ("colour", ["red", "blue", "red", "red"], "categorical"),
        ("user_id", ["1", "2", "1"], "categorical"),
        ("id", ["1", "2", "3"], None),
        ("file", ["x1", "x2", "x3"], None),
        ("caption", ["a red ball", "two dogs play outside", "sky"], "text"),
        ("empty", [], None),
    ],
)
def test_kind_inference(name, values, kind):
    assert infer_kind(name, values) == kind


def test_plan_infers_roles_and_groups_numeric_columns(tmp_path):
    table = read_table(write(tmp_path / "m.csv", "photo,age,price,caption,label,split\n"
                             "a.png,1,2,a long text here,x,train\nb.png,3,4,more words in it,y,val\n"))
    plan = plan_columns(table, None, "label", "auto", None)
    assert [(m.name, m.kind, m.columns) for m in plan.modalities] == [
        ("caption", "text", ("caption",)), ("photo", "image", ("photo",)), ("tabular", "tabular", ("age", "price"))]
    assert plan.split == "split" and plan.label == "label"
    explicit = plan_columns(table, {"image": "photo", "tabular": ["price"]}, "label", None, None)
    assert [(m.name, m.columns) for m in explicit.modalities] == [("photo", ("photo",)), ("tabular", ("price",))]
    assert explicit.split is None and "caption" in explicit.ignored
    only = plan_columns(table, None, "label", "auto", ["photo"])
    assert [m.name for m in only.modalities] == ["photo"]


def test_plan_errors_name_the_column_and_the_fix(tmp_path):
    table = read_table(write(tmp_path / "m.csv", "photo,target\na.png,x\n"))
    with pytest.raises(DataError, match="no label column 'label'.*dataset.label_column"):
        plan_columns(table, None, "label", "auto", None)
    with pytest.raises(DataError, match="no column 'pic' \\(dataset.columns.image\\)"):
        plan_columns(table, {"image": "pic"}, "target", "auto", None)
    with pytest.raises(ConfigError, match="unknown kind"):
        plan_columns(table, {"video": "photo"}, "target", "auto", None)
    with pytest.raises(DataError, match="no split column 'fold'"):
        plan_columns(table, None, "target", "fold", None)
    with pytest.raises(ConfigError, match="dataset.modalities"):
        plan_columns(table, None, "target", "auto", ["text"])


@pytest.mark.parametrize(
    "values, requested, kind",
    [
        (["cat", "dog"], "auto", "classification"),
        (["1", "2", "3"], "auto", "classification"),
        (["0.5", "1.25"], "auto", "regression"),
        (["a|b", "c"], "auto", "multilabel"),
        ([["a"], ["b", "c"]], "auto", "multilabel"),
        (["1", "2"], "regression", "regression"),
    ],
)
def test_label_kind(values, requested, kind):
    assert labels.infer_kind(values, requested) == kind


def test_classes_sort_numerically_and_unseen_labels_are_problems():
    assert labels.fit_classes(["10", "9", "1"], "classification") == ["1", "9", "10"]
    target, problems = labels.encode(["9", "10", None, "11"], "classification", ["1", "9", "10"])
    assert target[:2].tolist() == [1, 2]
    assert problems[2] == "missing label" and "never appears in the training rows" in problems[3]
    multi, problems = labels.encode(["a|c", "b"], "multilabel", ["a", "b", "c"])
    assert multi.tolist() == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]] and not problems
    values, problems = labels.encode(["1.5", "x"], "regression", [])
    assert values[0] == pytest.approx(1.5) and "not a number" in problems[1]
    assert labels.spec_task("classification", ["a", "b"]) == ("binary", 1)
    assert labels.spec_task("multilabel", ["a", "b", "c"]) == ("multilabel", 3)
    assert isinstance(target, torch.Tensor)
