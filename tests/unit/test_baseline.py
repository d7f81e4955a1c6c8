"""The classical baseline: per-modality features, the candidates, selection and scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmrun.baseline import run_baseline
from mmrun.baseline import run as baseline_run
from mmrun.baseline.features import (build_blocks, dense_view, id_counts, image_features, linear_view,
                                     logmel_features, sequence_features, standardise, waveform_features)
from mmrun.baseline.models import Candidate
from mmrun.data.spec import DataSpec, ModalitySpec
from mmrun.tasks.objectives import build_objective

SPLIT_SIZES = {"train": 400, "val": 200, "test": 200}


def tabular_data(task: str, signal: float = 3.0, shuffle: bool = False, num_classes: int = 4, seed: int = 0,
                 sizes: dict[str, int] = SPLIT_SIZES):
    """Splits with a ``tabular`` and a ``text`` modality whose first columns carry the label."""
    g = torch.Generator().manual_seed(seed)
    splits = {}
    for split, n in sizes.items():
        x = torch.randn(n, 8, generator=g)
        text = torch.randint(1, 20, (n, 6), generator=g)
        text[:, 4:] = 0
        if task == "regression":
            label = x[:, 0] + 0.5 * x[:, 1] + 0.1 * torch.randn(n, generator=g)
        elif task == "multilabel":
            bits = torch.randint(0, 2, (n, 3), generator=g)
            x[:, :3] += signal * (2 * bits.float() - 1)
            label = bits.float()
        else:
            label = torch.randint(0, num_classes, (n,), generator=g)
            x[:, 0] += signal * label.float()
            text[:, 0] = 20 + label  # a word per class
        if shuffle:
            label = label[torch.randperm(n, generator=g)]
        splits[split] = {"tabular": x, "text": text, "label": label, "present": torch.ones(n, 2, dtype=torch.bool)}
    outputs = {"multiclass": num_classes, "binary": 1, "multilabel": 3, "regression": 1}[task]
    spec = DataSpec((ModalitySpec("tabular", "tabular", (8,)), ModalitySpec("text", "text", (6,), 20 + num_classes)),
                    task, outputs)
    return splits, spec


def metric_names(task, prefix: str) -> set[str]:
    return {f"{prefix}/{name}" for name in task.metrics().keys()}


# ---------------------------------------------------------------- features


def test_image_audio_and_sequence_feature_shapes():
    assert image_features(torch.randn(5, 3, 32, 32)).shape == (5, 3 * 8 * 8)
    assert image_features(torch.randn(5, 1, 4, 6)).shape == (5, 1 * 4 * 6)  # never upsampled
    pooled = image_features(torch.arange(16.0).view(1, 1, 4, 4).repeat(1, 1, 4, 4))  # 16x16 -> 8x8
    assert pooled.shape == (1, 64) and pooled[0, 0] == pytest.approx((0 + 1 + 4 + 5) / 4)
    assert logmel_features(torch.randn(5, 64, 100)).shape == (5, 64 * 5)
    assert waveform_features(torch.randn(5, 512)).shape == (5, 64 + 1)
    assert image_features(torch.randn(0, 3, 32, 32)).shape == (0, 192)


def test_waveform_features_find_the_frequency():
    t = torch.arange(512) / 512
    low, high = torch.sin(2 * torch.pi * 10 * t), torch.sin(2 * torch.pi * 50 * t)
    features = waveform_features(torch.stack([low, high]))
    bands = features[:, :-1]  # 64 bands over 257 bins: bin b in band b * 64 // 257
    assert bands[0].argmax() == 10 * 64 // 257 and bands[1].argmax() == 50 * 64 // 257


def test_sequence_features_ignore_padding_steps():
    x = torch.zeros(2, 4, 3)
    x[0, :2] = torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])  # two real steps, two padding
    x[1, 0] = torch.tensor([1.0, 1.0, 1.0])
    features = sequence_features(x)
    assert features.shape == (2, 6)
    np.testing.assert_allclose(features[0], [2, 3, 4, 1, 1, 1])
    np.testing.assert_allclose(features[1], [1, 1, 1, 0, 0, 0])
    flat = torch.randn(3, 7)
    np.testing.assert_allclose(sequence_features(flat), flat.numpy())


def test_id_counts_ignore_padding_and_count_repeats():
    counts = id_counts(torch.tensor([[3, 3, 1, 0, 0], [2, 0, 0, 0, 0]]), vocab_size=5)
    assert sp.issparse(counts) and counts.shape == (2, 5)
    np.testing.assert_array_equal(counts.toarray(), [[0, 1, 0, 2, 0], [0, 0, 1, 0, 0]])


def two_split_spec(kind: str, shape: tuple[int, ...], vocab: int | None = None):
    return DataSpec((ModalitySpec("m", kind, shape, vocab),), "multiclass", 2)


def splits_of(train: torch.Tensor, val: torch.Tensor, test: torch.Tensor | None = None):
    test = val if test is None else test
    return {s: {"m": t, "label": torch.zeros(len(t), dtype=torch.long),
                "present": torch.ones(len(t), 1, dtype=torch.bool)}
            for s, t in (("train", train), ("val", val), ("test", test))}


def test_tfidf_ignores_padding():
    train = torch.tensor([[1, 2, 0, 0], [2, 3, 0, 0], [1, 1, 3, 0]])
    padded = torch.tensor([[1, 2, 0, 0], [2, 3, 0, 0]])
    unpadded = torch.tensor([[1, 2, 2, 2], [2, 3, 3, 3]])[:, :2]  # the same words without padding
    blocks = build_blocks(splits_of(train, padded, unpadded), two_split_spec("text", (4,), vocab=4))
    (block,) = blocks
    assert block.sparse and block.dim == 3  # ids 1, 2, 3: padding is not a word
    np.testing.assert_allclose(block.splits["val"].toarray(), block.splits["test"].toarray())
    rows = block.splits["train"].toarray()
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0)  # l2-normalised TF-IDF rows
    assert rows[2, 0] > rows[2, 2]  # id 1 twice in row 2 outweighs id 3 once


def test_categorical_is_one_hot_over_the_ids_seen_in_training():
    train = torch.tensor([[1, 4], [2, 4], [1, 5], [0, 5]])  # two columns in one id space; 0 = unknown
    test = torch.tensor([[2, 5], [3, 4]])  # id 3 never seen in training
    (block,) = build_blocks(splits_of(train, test), two_split_spec("categorical", (2,), vocab=6))
    assert block.sparse and block.dim == 4  # ids 1, 2, 4, 5
    np.testing.assert_array_equal(block.splits["train"].toarray(), [[1, 0, 1, 0], [0, 1, 1, 0], [1, 0, 0, 1],
                                                                    [0, 0, 0, 1]])
    np.testing.assert_array_equal(block.splits["test"].toarray(), [[0, 1, 0, 1], [0, 0, 1, 0]])


def test_dense_blocks_are_standardised_on_training_rows_and_absent_rows_are_zero():
    splits, spec = tabular_data("multiclass")
    splits["train"]["tabular"] = splits["train"]["tabular"] * 5 + 3
    splits["val"]["present"][:10, 0] = False
    splits["val"]["tabular"][:10] = 0
    original = splits["train"]["tabular"].clone()
    blocks = {b.name: b for b in build_blocks(splits, spec)}
    train = blocks["tabular"].splits["train"]
    np.testing.assert_allclose(train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(0), 1, atol=1e-4)
    assert np.all(blocks["tabular"].splits["val"][:10] == 0)
    assert "present" in blocks and blocks["present"].dim == 2  # a modality is sometimes absent
    assert torch.equal(splits["train"]["tabular"], original)  # the data is not modified in place
    assert "present" not in {b.name for b in build_blocks(*tabular_data("multiclass"))}


def test_non_finite_cells_become_the_training_mean():
    x = np.array([[1, np.nan], [3, 2], [5, np.inf]], dtype=np.float32)
    out = standardise({"train": x, "val": x[:1], "test": x[:1]}, {s: np.ones(n, bool) for s, n in
                                                                  (("train", 3), ("val", 1), ("test", 1))})
    assert np.isfinite(out["train"]).all()
    np.testing.assert_allclose(out["train"][:, 0], [-1.2247449, 0, 1.2247449], rtol=1e-6)
    assert out["train"][0, 1] == 0 and out["train"][2, 1] == 0 and out["val"][0, 1] == 0


def test_views_are_dense_for_narrow_blocks_and_reduce_wide_ones():
    splits, spec = tabular_data("multiclass")
    blocks = build_blocks(splits, spec)
    linear = linear_view(blocks, seed=0)
    assert isinstance(linear["train"], np.ndarray) and linear["train"].shape == (400, 8 + 23)
    g = torch.Generator().manual_seed(0)
    wide = {s: {"m": torch.randn(n, 300, generator=g), "label": torch.zeros(n, dtype=torch.long),
                "present": torch.ones(n, 1, dtype=torch.bool)} for s, n in SPLIT_SIZES.items()}
    dense = dense_view(build_blocks(wide, two_split_spec("features", (300,))), seed=0)
    assert dense["train"].shape == (400, 32) and dense["test"].shape == (200, 32)


# ---------------------------------------------------------------- run_baseline


def test_multiclass_separable_is_learned_and_keys_match_the_task():
    splits, spec = tabular_data("multiclass")
    task = build_objective("multiclass", spec)
    result = run_baseline(splits, spec, task, seed=0)
    assert result["best"] in ("logistic_regression", "hist_gradient_boosting")
    assert result["monitor"] == "val/acc"
    assert set(result["val"]) == metric_names(task, "val") and set(result["test"]) == metric_names(task, "test")
    assert result["test"]["test/acc"] > 0.9 and result["val"]["val/auroc"] > 0.95
    assert set(result["candidates"]) == {"logistic_regression", "hist_gradient_boosting"}
    logistic = result["candidates"]["logistic_regression"]
    assert logistic["params"]["C"] in (0.01, 0.1, 1.0, 10.0) and len(logistic["grid"]) == 4
    best_val = max(c["val"]["val/acc"] for c in result["candidates"].values())
    assert result["val"]["val/acc"] == best_val  # selected on validation
    assert result["features"] == {"tabular": 8, "text": 23}
    assert result["train_rows"] == 400 and result["subsampled"] is False
    json.dumps(result, allow_nan=False)  # plain JSON


def test_shuffled_labels_give_chance_accuracy():
    splits, spec = tabular_data("multiclass", shuffle=True)
    result = run_baseline(splits, spec, build_objective("multiclass", spec), seed=0)
    assert 0.1 < result["test"]["test/acc"] < 0.4  # chance is 0.25 with four classes
    assert result["test"]["test/auroc"] < 0.62


def test_binary_with_one_logit_and_with_two_outputs():
    splits, spec = tabular_data("binary", num_classes=2)
    one = build_objective("binary", spec)
    two = build_objective("multiclass", spec)  # binary labels trained as two-class multiclass
    assert one.num_outputs == 1 and two.num_outputs == 2
    first = run_baseline(splits, spec, one, seed=0)
    second = run_baseline(splits, spec, two, seed=0)
    assert set(first["test"]) == {"test/acc", "test/f1", "test/auroc"}
    assert set(second["test"]) == {"test/acc", "test/f1_macro", "test/auroc"}
    assert first["test"]["test/acc"] > 0.9
    assert first["test"]["test/acc"] == pytest.approx(second["test"]["test/acc"], abs=1e-6)
    assert first["test"]["test/auroc"] == pytest.approx(second["test"]["test/auroc"], abs=1e-4)


def test_multilabel():
    splits, spec = tabular_data("multilabel")
    task = build_objective("multilabel", spec)
    result = run_baseline(splits, spec, task, seed=0)
    assert result["monitor"] == "val/map"
    assert set(result["val"]) == metric_names(task, "val")
    assert result["test"]["test/map"] > 0.9 and result["test"]["test/f1_macro"] > 0.8


def test_regression():
    splits, spec = tabular_data("regression")
    task = build_objective("regression", spec)
    result = run_baseline(splits, spec, task, seed=0)
    assert set(result["candidates"]) == {"ridge", "hist_gradient_boosting"}
    assert result["monitor"] == "val/mse" and result["monitor_mode"] == "min"
    assert set(result["test"]) == metric_names(task, "test")
    assert result["best"] == "ridge"  # the target is linear in the features
    assert result["test"]["test/r2"] > 0.95 and result["test"]["test/mse"] < 0.05
    assert result["val"]["val/mse"] == min(c["val"]["val/mse"] for c in result["candidates"].values())


def test_same_inputs_and_seed_give_the_same_numbers():
    splits, spec = tabular_data("multiclass", signal=0.7)
    task = build_objective("multiclass", spec)

    def numbers(result):
        return {name: (c["val"], c["test"], c["params"]) for name, c in result["candidates"].items()}

    first = run_baseline(splits, spec, task, seed=3)
    second = run_baseline(splits, spec, task, seed=3)
    assert numbers(first) == numbers(second) and first["best"] == second["best"]


def test_training_rows_above_the_limit_are_subsampled_with_stratification():
    splits, spec = tabular_data("multiclass", num_classes=4)
    labels = splits["train"]["label"]
    rows = baseline_run.choose_train_rows(labels, "multiclass", seed=0, max_rows=100)
    assert len(rows) == 100 and len(set(rows.tolist())) == 100
    full = torch.bincount(labels, minlength=4).numpy() / len(labels)
    sub = np.bincount(labels[torch.as_tensor(rows)].numpy(), minlength=4) / 100
    np.testing.assert_allclose(sub, full, atol=0.011)  # class shares kept (stratified)
    assert np.array_equal(rows, baseline_run.choose_train_rows(labels, "multiclass", seed=0, max_rows=100))
    assert baseline_run.choose_train_rows(labels, "multiclass", seed=0, max_rows=400) is None
    result = run_baseline(splits, spec, build_objective("multiclass", spec), seed=0, max_train_rows=100)
    assert result["subsampled"] is True and result["train_rows"] == 100 and result["train_rows_total"] == 400


def test_a_class_missing_from_training_still_scores():
    splits, spec = tabular_data("multiclass", num_classes=3)
    keep = splits["train"]["label"] < 2
    splits["train"] = {k: v[keep] for k, v in splits["train"].items()}
    result = run_baseline(splits, spec, build_objective("multiclass", spec), seed=0)
    assert "error" not in result
    assert 0.5 < result["test"]["test/acc"] < 0.8  # class 2 (a third of the rows) is never predicted


def test_a_failing_candidate_is_recorded_not_raised(monkeypatch):
    real = baseline_run.candidates

    def with_a_broken_one(kind, seed, train_rows):
        def broken(params):
            raise RuntimeError("no such solver")

        return [Candidate("broken", "linear", [{}], broken), *real(kind, seed, train_rows)]

    monkeypatch.setattr(baseline_run, "candidates", with_a_broken_one)
    splits, spec = tabular_data("multiclass")
    result = run_baseline(splits, spec, build_objective("multiclass", spec), seed=0)
    assert result["candidates"]["broken"] == {"error": "RuntimeError: no such solver"}
    assert result["best"] != "broken" and result["test"]["test/acc"] > 0.9


def test_every_candidate_failing_returns_an_error():
    splits, spec = tabular_data("multiclass")
    splits["train"]["label"] = torch.zeros_like(splits["train"]["label"])  # one class: nothing to fit
    result = run_baseline(splits, spec, build_objective("multiclass", spec), seed=0)
    assert "every candidate failed" in result["error"] and "best" not in result
    assert set(result["candidates"]) == {"logistic_regression", "hist_gradient_boosting"}
    assert all("error" in c for c in result["candidates"].values())
    json.dumps(result, allow_nan=False)


def test_synthetic_data_with_every_built_in_modality_and_missing_ones():
    from mmrun.data.synthetic import SyntheticDataModule

    data = SyntheticDataModule(size=600, missing_rate=0.2)
    data.setup()
    task = build_objective(data.spec.task, data.spec)
    result = run_baseline(data.splits, data.spec, task, seed=0)
    assert result["features"] == {"audio": 65, "image": 192, "tabular": 16, "text": 32, "present": 4}
    assert result["test"]["test/acc"] > 0.5  # chance is 0.25; one modality alone gives at most 0.5


def test_the_runs_own_monitor_selects_when_the_baseline_has_it():
    splits, spec = tabular_data("regression")
    task = build_objective("regression", spec)
    by_r2 = run_baseline(splits, spec, task, seed=0, monitor="val/r2", monitor_mode="max")
    assert by_r2["monitor"] == "val/r2" and by_r2["monitor_mode"] == "max"
    assert by_r2["val"]["val/r2"] == max(c["val"]["val/r2"] for c in by_r2["candidates"].values())
    grid = by_r2["candidates"]["ridge"]["grid"]
    assert by_r2["candidates"]["ridge"]["val"]["val/r2"] == max(point["val/r2"] for point in grid)
    by_loss = run_baseline(splits, spec, task, seed=0, monitor="val/loss", monitor_mode="min")
    assert by_loss["monitor"] == "val/mse" and by_loss["monitor_mode"] == "min"  # no loss: the task's own


def test_only_the_labelled_training_rows_are_fitted():
    """dataset.label_fraction: the rows without a usable label never reach the baseline."""
    splits, spec = tabular_data("multiclass")
    labelled = torch.zeros(400, dtype=torch.bool)
    labelled[::4] = True
    train = splits["train"]
    scrambled = torch.randint(0, 4, (400,), generator=torch.Generator().manual_seed(1))
    train["label"] = torch.where(labelled, train["label"], scrambled)
    train["labelled"] = labelled
    result = run_baseline(splits, spec, build_objective("multiclass", spec), seed=0)
    assert result["train_rows"] == 100 and result["test"]["test/acc"] > 0.85  # the scrambled labels are unread
    capped = run_baseline(splits, spec, build_objective("multiclass", spec), seed=0, max_train_rows=50)
    assert capped["train_rows"] == 50
