"""ManifestDataModule: tensors and spec, bad rows, missing modalities, cache, fitted state."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from manifest_samples import build, make_manifest, make_rows, write_csv

from mmrun.data import files, prepared
from mmrun.data.manifest import ManifestDataModule
from mmrun.data.spec import DataSpec
from mmrun.errors import DataError

def test_inferred_manifest_gives_the_contracted_tensors(tmp_path):
    datamodule = build(make_manifest(tmp_path, 40), tmp_path)
    spec = datamodule.spec
    assert [(m.name, m.kind, m.shape) for m in spec.modalities] == [
        ("caption", "text", (5,)), ("image", "image", (3, 16, 16)), ("sound", "audio", (16, 51)),
        ("tabular", "tabular", (1,))]
    assert spec.task == "binary" and spec.class_names == ("cat", "dog")
    train = datamodule.splits["train"]
    assert {k: len(v) for k, v in train.items()} == {k: 24 for k in ("caption", "image", "sound", "tabular", "label", "present")}
    assert train["caption"].dtype == torch.long and train["image"].dtype == torch.float32
    assert train["present"].all() and train["label"].tolist() == [i % 2 for i in range(40) if i % 10 < 6]
    assert datamodule.row_ids["test"].tolist() == [i + 2 for i in range(40) if i % 10 >= 8]
    assert train["image"].mean((0, 2, 3)).abs().max() < 1e-4  # standardised with training statistics
    json.dumps(spec.extra)  # the fitted state is plain JSON, safe for weights-only checkpoints
    restored = DataSpec.from_dict(spec.to_dict())
    assert restored.extra["fitted"]["classes"] == ["cat", "dog"]


def test_fitted_state_prepares_new_data_like_the_training_data(tmp_path):
    manifest = make_manifest(tmp_path, 40)
    trained = build(manifest, tmp_path)
    again = build(manifest, tmp_path, fitted=trained.spec.extra["fitted"])
    for split in ("train", "val", "test"):
        for key, value in trained.splits[split].items():
            assert torch.equal(value, again.splits[split][key]), (split, key)
    other = tmp_path / "other"
    new = write_csv(tmp_path / "new.csv", [dict(r, caption="a small unseen word") for r in make_rows(other, 6, False)])
    rows = [dict(r, image=f"other/{r['image']}", sound=f"other/{r['sound']}") for r in csv.DictReader(new.open())]
    write_csv(new, rows)
    scored = build(new, tmp_path, fitted=trained.spec.extra["fitted"])
    assert scored.spec.modalities == trained.spec.modalities
    assert sum(len(scored.splits[s]["label"]) for s in ("train", "val", "test")) == 6
    vocab = trained.spec.extra["fitted"]["preprocess"]["caption"]["vocab"]
    assert "unseen" not in vocab and (scored.splits["train"]["caption"] == 1).any()  # unknown token id


def bad_manifest(tmp_path):
    rows = make_rows(tmp_path, 40)
    files_dir = tmp_path / "files"
    (files_dir / "3.png").unlink()  # missing image
    (files_dir / "5.png").write_bytes((files_dir / "5.png").read_bytes()[:60])  # corrupt PNG
    data = (files_dir / "7.wav").read_bytes()
    (files_dir / "7.wav").write_bytes(data[: len(data) // 2])  # truncated WAV
    rows[9]["caption"] = ""  # empty text
    rows[18]["label"] = "bird"  # a validation label never seen in training
    rows[11]["weight"] = "heavy"  # not a number
    return write_csv(tmp_path / "manifest.csv", rows)


def test_bad_rows_stop_with_one_message_naming_each(tmp_path):
    with pytest.raises(DataError) as caught:
        build(bad_manifest(tmp_path), tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "has 6 bad rows of 40" in message
    for where in ("manifest.csv:5 image: file 'files/3.png' not found", "manifest.csv:7 image: 'files/5.png': corrupt",
                  "manifest.csv:9 sound: 'files/7.wav': truncated audio", "manifest.csv:11 caption: empty text",
                  "manifest.csv:13 weight: 'heavy' is not a number",
                  "manifest.csv:20 label: label 'bird' never appears in the training rows"):
        assert where in message
    assert "dataset.on_error=skip" in message


def test_skip_drops_bad_rows_and_allow_missing_keeps_absent_modalities(tmp_path):
    manifest = bad_manifest(tmp_path)
    skipped = build(manifest, tmp_path, on_error="skip")
    kept = sum(len(skipped.splits[s]["label"]) for s in ("train", "val", "test"))
    assert kept == 34
    lenient = build(manifest, tmp_path, on_error="skip", allow_missing=True)
    rows = torch.cat([lenient.row_ids[s] for s in ("train", "val", "test")]).tolist()
    assert 5 in rows and 11 in rows and 7 not in rows  # missing image, empty text kept; corrupt PNG still bad
    train = lenient.splits["train"]
    index = lenient.row_ids["train"].tolist().index(5)
    names = lenient.spec.modality_names
    assert train["present"][index].tolist() == [name != "image" for name in names]
    assert train["image"][index].abs().sum() == 0


def test_skipped_rows_file_inside_a_hydra_run(tmp_path, monkeypatch):
    from mmrun.data import validation

    monkeypatch.setattr(validation, "run_folder", lambda: tmp_path / "run")
    build(bad_manifest(tmp_path), tmp_path, on_error="skip")
    lines = list(csv.reader((tmp_path / "run" / "skipped_rows.csv").open()))
    assert lines[0][:2] == ["line", "problems"] and [r[0] for r in lines[1:]] == ["5", "7", "9", "11", "13", "20"]
    assert lines[1][2] == "files/3.png"


def fail_if_called(message):
    def fail(*args, **kwargs):
        raise AssertionError(message)

    return fail


def test_second_build_decodes_nothing(tmp_path, monkeypatch):
    manifest = make_manifest(tmp_path, 20)
    first = build(manifest, tmp_path)
    monkeypatch.setattr(files, "_decode_all", fail_if_called("decoded again despite the cache"))
    second = build(manifest, tmp_path)
    assert torch.equal(first.splits["train"]["sound"], second.splits["train"]["sound"])
    other_split = build(manifest, tmp_path, split_column=None, split_seed=3)  # prepared anew from decoded files
    assert len(other_split.splits["train"]["label"]) == 16
    renamed = [{("photo" if k == "image" else k): v for k, v in row.items()} for row in csv.DictReader(manifest.open())]
    photo = build(write_csv(tmp_path / "renamed.csv", renamed), tmp_path)  # same files under another column name
    assert torch.equal(photo.splits["train"]["photo"], first.splits["train"]["image"])
    (tmp_path / "files" / "0.png").write_bytes((tmp_path / "files" / "1.png").read_bytes())  # a changed file
    with pytest.raises(AssertionError, match="decoded again"):
        build(manifest, tmp_path)
    assert {p.suffix for p in (tmp_path / "cache").iterdir()} == {".pt"}  # no temporary files left


def test_second_build_loads_the_prepared_data(tmp_path, monkeypatch):
    manifest = make_manifest(tmp_path, 20)
    original = manifest.read_bytes()
    first = build(manifest, tmp_path)
    monkeypatch.setattr(ManifestDataModule, "_prepare", fail_if_called("prepared again despite the cache"))
    second = build(manifest, tmp_path)
    assert second.spec == first.spec
    for split in ("train", "val", "test"):
        assert torch.equal(second.row_ids[split], first.row_ids[split])
        assert first.splits[split].keys() == second.splits[split].keys()
        assert all(torch.equal(first.splits[split][k], second.splits[split][k]) for k in first.splits[split])
    for changed in ({"text": {"max_length": 3}}, {"split_seed": 5, "split_column": None}, {"task": "multiclass"}):
        with pytest.raises(AssertionError, match="prepared again"):
            build(manifest, tmp_path, **changed)
    rows = list(csv.DictReader(manifest.open()))
    rows[0]["caption"] = "a different caption"
    write_csv(manifest, rows)  # the same files, one changed cell
    with pytest.raises(AssertionError, match="prepared again"):
        build(manifest, tmp_path)
    manifest.write_bytes(original)
    build(manifest, tmp_path)  # the first manifest again: its entry is still there
    (tmp_path / "files" / "2.wav").write_bytes((tmp_path / "files" / "3.wav").read_bytes())
    with pytest.raises(AssertionError, match="prepared again"):
        build(manifest, tmp_path)  # a file it names changed


def test_a_cached_build_writes_its_skipped_rows_again(tmp_path, monkeypatch):
    from mmrun.data import validation

    manifest = bad_manifest(tmp_path)
    monkeypatch.setattr(validation, "run_folder", lambda: tmp_path / "run1")
    first = build(manifest, tmp_path, on_error="skip")
    monkeypatch.setattr(ManifestDataModule, "_prepare", fail_if_called("prepared again despite the cache"))
    monkeypatch.setattr(validation, "run_folder", lambda: tmp_path / "run2")
    second = build(manifest, tmp_path, on_error="skip")
    assert torch.equal(first.row_ids["train"], second.row_ids["train"])
    written = [(tmp_path / run / "skipped_rows.csv").read_text() for run in ("run1", "run2")]
    assert written[0] == written[1] and written[0].count("\n") == 7  # header + 6 bad rows


def test_file_fingerprints_survive_packing():
    fingerprints = [["/data/a.png", 10, 1_700_000_000_123_456_789, 1_700_000_000_987_654_321],  # stat
                    ["/data/b.png", "0f" * 16], ["/data/missing.wav", None]]  # content hash, no such file
    for files_read in (fingerprints, []):
        made = prepared.PreparedManifest({}, DataSpec((), "binary", 1), {}, None, files_read)
        assert prepared.PreparedManifest.from_payload(made.to_payload()).files == files_read


def test_fraction_split_forced_regression_and_multilabel(tmp_path):
    manifest = make_manifest(tmp_path, 40, split=False)
    datamodule = build(manifest, tmp_path, splits=[0.5, 0.25, 0.25], split_seed=3)
    assert [len(datamodule.splits[s]["label"]) for s in ("train", "val", "test")] == [20, 10, 10]
    other_seed = build(manifest, tmp_path, splits=[0.5, 0.25, 0.25], split_seed=4)
    assert not torch.equal(datamodule.row_ids["train"], other_seed.row_ids["train"])
    rows = make_rows(tmp_path, 40)
    for i, row in enumerate(rows):
        row["label"] = f"{i % 3}.5"
    numbers = build(write_csv(tmp_path / "numbers.csv", rows), tmp_path)
    assert numbers.spec.task == "regression" and numbers.splits["train"]["label"].dtype == torch.float32
    for i, row in enumerate(rows):
        row["label"] = "a|b" if i % 2 else "b"
    multi = build(write_csv(tmp_path / "multi.csv", rows), tmp_path)
    assert multi.spec.task == "multilabel" and multi.splits["train"]["label"].shape == (24, 2)
    forced = build(manifest, tmp_path, task="multiclass")
    assert forced.spec.task == "binary"  # two classes; tasks.py trains them as multiclass when asked


def test_categorical_columns_for_a_recommender(tmp_path):
    rows = [{"user": f"u{i % 4}", "item": f"i{i % 7}", "rating": str(i % 5 + 0.5), "split": ("train", "val", "test")[i % 3]}
            for i in range(60)]
    datamodule = build(write_csv(tmp_path / "ratings.csv", rows), tmp_path, label_column="rating",
                       columns={"categorical": ["user", "item"]})
    (modality,) = datamodule.spec.modalities
    assert (modality.name, modality.kind, modality.shape, modality.vocab_size) == ("categorical", "categorical", (2,), 12)
    assert datamodule.spec.task == "regression"
    ids = datamodule.splits["train"]["categorical"]
    assert ids[:, 0].max() <= 4 and ids[:, 1].min() >= 5  # one id space, item ids after user ids


def test_augmentation_touches_training_batches_only(tmp_path):
    from types import SimpleNamespace

    datamodule = build(make_manifest(tmp_path, 20), tmp_path, augment={"noise": 0.5})
    batch = {k: v.clone() for k, v in datamodule.splits["train"].items()}
    datamodule.trainer = SimpleNamespace(training=False)
    assert torch.equal(datamodule.on_after_batch_transfer(dict(batch), 0)["image"], batch["image"])
    datamodule.trainer = SimpleNamespace(training=True)
    augmented = datamodule.on_after_batch_transfer(dict(batch), 0)
    assert not torch.equal(augmented["image"], batch["image"]) and torch.equal(augmented["sound"], batch["sound"])
