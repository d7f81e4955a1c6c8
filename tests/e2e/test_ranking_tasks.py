"""Retrieval and recommendation through the CLI: train, eval's rankings.csv, groups, bad sides."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import read_metrics, run_dirs, run_mmrun
from manifest_samples import TINY_DATA, write_csv, write_png

QUICK = ["trainer.max_epochs=2", "trainer.accelerator=cpu", "progress=plain"]
WORDS = ("red", "green", "blue", "dark", "pale", "round")


def rankings(folder) -> list[dict[str, str]]:
    (path,) = list(folder.rglob("rankings.csv"))
    return list(csv.DictReader(path.open()))


def train_and_eval(tmp_path, train_args, eval_args=()):
    result = run_mmrun(["train", *train_args, *QUICK], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path / "outputs")
    evaluated = run_mmrun(["eval", f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", "accelerator=cpu",
                           *eval_args], tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    (eval_file,) = list((tmp_path / "outputs").rglob("eval_metrics.json"))
    return read_metrics(run_dir), json.loads(eval_file.read_text()), rankings(eval_file.parent)


def test_retrieval_with_five_captions_per_image_counts_any_caption_as_a_hit(tmp_path):
    """A manifest of 12 images x 5 captions grouped by image_id: images are ranked once each."""
    files = tmp_path / "files"
    files.mkdir()
    rows = []
    for image in range(12):
        write_png(files / f"{image}.png", 20 * image)
        split = "train" if image < 6 else "val" if image < 9 else "test"
        for caption in range(5):
            rows.append({"image_id": f"img{image}", "photo": f"files/{image}.png", "split": split,
                         "caption": f"{WORDS[image % 6]} {WORDS[(image + caption) % 6]} thing {image}"})
    manifest = write_csv(tmp_path / "pairs.csv", rows)
    metrics, evaluation, lines = train_and_eval(
        tmp_path, ["task=retrieval", "dataset=manifest", f"dataset.path={manifest}", "dataset.group_column=image_id",
                   f"dataset.cache_dir={tmp_path / 'cache'}", *TINY_DATA])
    assert metrics["task"] == "retrieval" and metrics["monitor"] == "val/r_mean"
    # test split: 3 images (ranked once each) and their 15 captions
    assert metrics["ranking"]["q2t"] == {"queries": 3, "candidates": 15, "evaluated": 3, "without_positive": 0}
    assert metrics["ranking"]["t2q"]["queries"] == 15 and metrics["ranking"]["t2q"]["candidates"] == 3
    # caption -> images: 3 candidates, so the image is within 5; image -> captions: 5 positives among
    # 15 candidates, so the first hit is at rank 11 at worst (one positive per caption could be 15th)
    assert metrics["test"]["test/t2q_recall@5"] == 1.0 and evaluation["metrics"]["test/t2q_recall@5"] == 1.0
    assert metrics["test"]["test/q2t_mean_rank"] <= 11
    image_rows = [line for line in lines if line["direction"] == "q2t"]
    assert len(image_rows) == 3 * 10 and {line["rank"] for line in image_rows} == {str(k) for k in range(1, 11)}
    for line in image_rows:  # a hit is a caption of the same image (manifest lines: header = 1)
        assert line["positive"] == str(int((int(line["query_row"]) - 2) // 5 == (int(line["target_row"]) - 2) // 5))


def test_builtin_retrieval_trains_and_eval_ranks_both_directions(tmp_path):
    metrics, evaluation, lines = train_and_eval(
        tmp_path, ["task=retrieval", "task.query=[image,audio]", "dataset.size=120", "task.loss=siglip"])
    test = metrics["test"]
    assert {f"test/{d}_recall@{k}" for d in ("q2t", "t2q") for k in (1, 5, 10)} <= set(test)
    assert test["test/r_mean"] == pytest.approx(sum(test[f"test/{d}_recall@{k}"] for d in ("q2t", "t2q")
                                                    for k in (1, 5, 10)) / 6)
    assert evaluation["metrics"]["test/r_mean"] == pytest.approx(test["test/r_mean"], abs=1e-6)
    assert metrics["ranking"]["q2t"]["candidates"] == 36  # 30% of 120 items
    assert {line["direction"] for line in lines} == {"q2t", "t2q"} and len(lines) == 2 * 36 * 10


def test_recommendation_reports_warm_and_cold_items_and_ranks_per_user(tmp_path):
    metrics, evaluation, lines = train_and_eval(
        tmp_path, ["task=recommendation", "dataset.num_users=60", "dataset.num_items=80",
                   "dataset.interactions_per_user=8"])
    assert metrics["task"] == "recommendation" and metrics["monitor"] == "val/ndcg@10"
    for subset in ("", "warm_", "cold_"):
        for key in ("ndcg@10", "hr@10", "recall@20", "mrr"):
            assert 0.0 <= metrics["test"][f"test/{subset}{key}"] <= 1.0
    assert metrics["ranking"]["items"] == 80
    assert evaluation["metrics"]["test/ndcg@10"] == pytest.approx(metrics["test"]["test/ndcg@10"], abs=1e-6)
    assert list(lines[0]) == ["user", "rank", "item", "score", "positive", "cold"]
    users = {line["user"] for line in lines}
    assert len(lines) == 10 * len(users) and len(users) == metrics["ranking"]["all"]["users"]


def test_a_dataset_without_pairs_is_refused_in_one_line(tmp_path):
    """The other refusals (a side the data lacks, one modality on both sides) are unit-tested."""
    result = run_mmrun(["train", "task=retrieval", "dataset=synthetic", *QUICK], tmp_path)
    assert result.returncode == 2
    assert "task=retrieval needs paired data" in result.stderr, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1
