"""Captioning through the CLI: the built-in scenes, and a manifest of images with three captions
each; train, then ``mmrun eval`` writes captions.csv with every item's references."""

from __future__ import annotations

import csv
import json

from conftest import read_metrics, run_dirs, run_mmrun
from manifest_samples import TINY_DATA, write_csv, write_png

QUICK = ["trainer.max_epochs=1", "trainer.accelerator=cpu", "progress=plain"]
COLOURS = ("red", "green", "blue", "grey")


def captions_csv(folder) -> list[dict[str, str]]:
    (path,) = list(folder.rglob("captions.csv"))
    return list(csv.DictReader(path.open()))


def test_builtin_captioning_trains_with_its_baseline_and_eval_writes_captions(tmp_path):
    result = run_mmrun(["train", "task=captioning", "dataset.size=120", "dataset.captions_per_item=2",
                        "task.beam_size=3", *QUICK], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path / "outputs")
    metrics = read_metrics(run_dir)
    assert metrics["task"] == "captioning" and metrics["monitor"] == "val/cider"
    assert {"test/bleu4", "test/rouge_l", "test/cider"} <= set(metrics["test"])
    assert metrics["captioning"]["decoding"] == "beam 3" and metrics["captioning"]["references"] == 2 * 36
    assert metrics["baseline"]["best"] in ("most frequent caption", "nearest neighbour")
    evaluated = run_mmrun(["eval", f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", "accelerator=cpu"], tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    lines = captions_csv(tmp_path / "outputs")
    assert len(lines) == 36 and all(len(line["references"].split(" | ")) == 2 for line in lines)
    assert all(float(line["cider"]) >= 0 for line in lines)


def test_a_manifest_of_images_with_three_captions_each(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    rows = []
    for image in range(24):
        write_png(files / f"{image}.png", 60 * (image % 4))
        split = "train" if image < 16 else "val" if image < 20 else "test"
        for wording in ("a {} square", "the {} picture", "{} colour"):
            rows.append({"image_id": f"img{image}", "photo": f"files/{image}.png", "split": split,
                         "caption": wording.format(COLOURS[image % 4])})
    manifest = write_csv(tmp_path / "captions.csv", rows)
    result = run_mmrun(["train", "task=captioning", "dataset=manifest", f"dataset.path={manifest}",
                        "dataset.group_column=image_id", "task.target=caption",
                        f"dataset.cache_dir={tmp_path / 'cache'}", *TINY_DATA, *QUICK], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path / "outputs")
    metrics = read_metrics(run_dir)
    assert metrics["captioning"]["items"] == 4 and metrics["captioning"]["references"] == 12  # all three count
    evaluated = run_mmrun(["eval", f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", "accelerator=cpu"], tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    lines = captions_csv(tmp_path / "outputs")
    (eval_file,) = list((tmp_path / "outputs").rglob("eval_metrics.json"))
    assert json.loads(eval_file.read_text())["captioning"]["references"] == 12
    # the test items' first rows (manifest lines: header = 1), each with its three captions
    assert [int(line["row"]) for line in lines] == [2 + 3 * image for image in range(20, 24)]
    assert lines[0]["references"] == "a red square | the red picture | red colour"

    # New images without captions: mmrun predict captions them; mmrun eval has nothing to score against.
    fresh = write_csv(tmp_path / "new.csv", [{"photo": f"files/{image}.png"} for image in range(4)])
    checkpoint = f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}"
    refused = run_mmrun(["eval", checkpoint, f"dataset.path={fresh}", "accelerator=cpu"], tmp_path)
    assert refused.returncode == 2 and "has no caption column 'caption'" in refused.stderr
    assert "mmrun predict" in refused.stderr and "Traceback" not in refused.stderr
    predicted = run_mmrun(["predict", checkpoint, f"dataset.path={fresh}", "accelerator=cpu",
                           "hydra.run.dir=predicted"], tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    lines = captions_csv(tmp_path / "predicted")
    assert [line["row"] for line in lines] == ["2", "3", "4", "5"]
    assert all(line["generated"] and not line["references"] and not line["cider"] for line in lines)
