"""Predictions without labels: the manifest read with labels_required=False, and predictions.csv's columns."""

from __future__ import annotations

import pytest
import torch
from manifest_samples import build, make_manifest, make_rows, write_csv

from mmrun.data.manifest import ManifestDataModule
from mmrun.errors import ConfigError, DataError
from mmrun.predictions import prediction_table

def test_without_labels_every_row_is_read_with_the_fitted_preprocessing(tmp_path):
    fitted = build(make_manifest(tmp_path, 40), tmp_path).spec.extra["fitted"]
    rows = make_rows(tmp_path, 6, split=False, start=100)
    labelled = build(write_csv(tmp_path / "labelled.csv", rows), tmp_path, fitted=fitted)
    absent = write_csv(tmp_path / "absent.csv", [{k: v for k, v in r.items() if k != "label"} for r in rows])
    empty = write_csv(tmp_path / "empty.csv", [dict(r, label="") for r in rows])
    for table in (absent, empty):
        scored = build(table, tmp_path, fitted=fitted, labels_required=False)
        for split, tensors in labelled.splits.items():
            assert torch.equal(scored.row_ids[split], labelled.row_ids[split])
            for key, value in tensors.items():
                expected = torch.zeros_like(value) if key == "label" else value
                assert torch.equal(scored.splits[split][key], expected), (table.name, split, key)
    with pytest.raises(DataError, match="bad row"):  # an empty label cell is still a bad row for eval
        build(empty, tmp_path, fitted=fitted)
    with pytest.raises(DataError, match="no label column 'label'.*mmrun predict ckpt_path=.* dataset.path="):
        build(absent, tmp_path, fitted=fitted)


def test_labels_are_optional_only_with_a_checkpoints_fitted_state(tmp_path):
    with pytest.raises(ConfigError, match="fitted"):
        ManifestDataModule(path=str(tmp_path / "any.csv"), labels_required=False)


def test_prediction_rows_without_labels_per_task():
    header, rows = prediction_table("binary", torch.tensor([0.2, 0.9]), None, ("no", "yes"))
    assert header == ["predicted", "prob_no", "prob_yes"] and rows[1] == ["yes", "0.100000", "0.900000"]
    header, rows = prediction_table("multiclass", torch.tensor([[0.1, 0.7, 0.2]]), None, ("a", "b", "c"))
    assert header == ["predicted", "prob_a", "prob_b", "prob_c"] and rows[0][0] == "b"
    header, rows = prediction_table("multilabel", torch.tensor([[0.7, 0.1, 0.9]]), None, ("a", "b", "c"))
    assert header == ["predicted", "prob_a", "prob_b", "prob_c"] and rows[0][0] == "a|c"
    header, rows = prediction_table("regression", torch.tensor([1.5, -2.25]), None, ())
    assert header == ["predicted"] and rows == [["1.5"], ["-2.25"]]
