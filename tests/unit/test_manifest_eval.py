"""Evaluation on new data: dataset overrides and predictions.csv."""

from __future__ import annotations

import csv

import pytest
import torch
from omegaconf import OmegaConf

from mmrun.errors import ConfigError
from mmrun.eval_data import dataset_config
from mmrun.predictions import prediction_table, write_predictions


def test_dataset_overrides_merge_onto_the_checkpoint_config_and_unknown_keys_are_refused():
    saved = {"_target_": "mmrun.data.manifest.ManifestDataModule", "path": "train.csv", "on_error": "raise"}
    merged, changed = dataset_config(saved, OmegaConf.create({"path": "new.csv", "on_error": None}))
    assert merged.path == "new.csv" and merged.on_error == "raise" and changed == {"path": "new.csv"}
    synthetic = {"_target_": "mmrun.data.synthetic.SyntheticDataModule", "size": 100}
    with pytest.raises(ConfigError, match="dataset.path does not apply to this checkpoint's dataset"):
        dataset_config(synthetic, OmegaConf.create({"path": "new.csv"}))


def test_prediction_rows_per_task():
    header, rows = prediction_table("binary", torch.tensor([0.2, 0.9]), torch.tensor([0, 0]), ("no", "yes"))
    assert header == ["label", "predicted", "prob_no", "prob_yes"]
    assert rows[1][:3] == ["no", "yes", "0.100000"]
    header, rows = prediction_table("multilabel", torch.tensor([[0.7, 0.1, 0.9]]), torch.tensor([[1.0, 1.0, 0.0]]),
                                    ("a", "b", "c"))
    assert rows[0][:2] == ["a|b", "a|c"] and len(header) == 5
    header, rows = prediction_table("regression", torch.tensor([1.5]), torch.tensor([2.0]), ())
    assert header == ["label", "predicted"] and rows == [["2", "1.5"]]


def test_predictions_file_is_sorted_by_row(tmp_path):
    probabilities = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]])
    write_predictions(tmp_path / "predictions.csv", "multiclass", probabilities, torch.tensor([1, 0, 1]),
                      torch.tensor([7, 3, 5]), ("a", "b"))
    lines = list(csv.DictReader((tmp_path / "predictions.csv").open()))
    assert [line["row"] for line in lines] == ["3", "5", "7"]
    assert [line["predicted"] for line in lines] == ["a", "a", "b"] and lines[2]["label"] == "b"
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.csv"]
