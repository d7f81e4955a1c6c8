"""`mmrun predict` through the CLI: predictions.csv for rows without labels, and eval's refusal of them."""

from __future__ import annotations

import csv

import pytest
from conftest import run_dirs, run_mmrun
from manifest_samples import CLASSES, TINY_DATA, make_manifest, make_rows, write_csv

TINY_TRAINING = ["trainer.max_epochs=1", "trainer.accelerator=cpu", "progress=plain", "baseline=none"]
NEW_ROWS = 8


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained one epoch on a 40-row manifest, and new rows (with labels) to score."""
    root = tmp_path_factory.mktemp("predict")
    manifest = make_manifest(root / "data", 40)
    result = run_mmrun(["train", "dataset=manifest", f"dataset.path={manifest}", f"dataset.cache_dir={root / 'cache'}",
                        *TINY_DATA, *TINY_TRAINING], root)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(root / "outputs")
    return root, run_dir / "checkpoints" / "best.ckpt", make_rows(root / "new", NEW_ROWS, split=False, start=100)


def without_labels(trained):
    """The new rows as a manifest without a label column (beside their files)."""
    root, _, rows = trained
    return write_csv(root / "new" / "unlabelled.csv", [{k: v for k, v in r.items() if k != "label"} for r in rows])


def score(command: str, trained, table, cwd, *extra: str):
    """Run ``mmrun <command>`` on ``table``; the result and predictions.csv's lines (None if not written)."""
    root, checkpoint, _ = trained
    result = run_mmrun([command, f"ckpt_path={checkpoint}", f"dataset.path={table}",
                        f"dataset.cache_dir={root / 'cache'}", "accelerator=cpu", *extra], cwd)
    written = list((cwd / "outputs").rglob("predictions.csv"))
    return result, list(csv.DictReader(written[0].open())) if written else None


def test_predict_writes_every_row_of_a_table_without_a_label_column(trained, tmp_path):
    result, lines = score("predict", trained, without_labels(trained), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"predictions for {NEW_ROWS} rows (split=all) written to" in result.stdout
    assert str(tmp_path / "outputs" / "predict") in result.stdout
    assert list(lines[0]) == ["row", "predicted", "prob_cat", "prob_dog"]
    assert [int(line["row"]) for line in lines] == list(range(2, NEW_ROWS + 2))  # manifest lines, header = 1
    for line in lines:
        assert line["predicted"] in CLASSES
        assert float(line["prob_cat"]) + float(line["prob_dog"]) == pytest.approx(1.0, abs=1e-5)
        assert line["predicted"] == max(CLASSES, key=lambda c: float(line[f"prob_{c}"]))


def test_predict_reads_no_labels_and_matches_eval_on_the_labelled_rows(trained, tmp_path):
    """Half the label cells empty: predict scores every row, eval (skipping them) the others, alike."""
    root, _, rows = trained
    half = [dict(r, label=r["label"] if i % 2 else "") for i, r in enumerate(rows)]
    table = write_csv(root / "new" / "half.csv", half)
    (tmp_path / "predict").mkdir()
    predicted_result, predicted = score("predict", trained, table, tmp_path / "predict")
    assert predicted_result.returncode == 0, predicted_result.stderr[-3000:]
    assert "skipped" not in predicted_result.stdout and len(predicted) == NEW_ROWS
    (tmp_path / "eval").mkdir()
    evaluated_result, evaluated = score("eval", trained, table, tmp_path / "eval", "dataset.on_error=skip")
    assert evaluated_result.returncode == 0, evaluated_result.stderr[-3000:]
    assert [line["label"] for line in evaluated] == [r["label"] for r in rows[1::2]]
    by_row = {line["row"]: line for line in predicted}
    for line in evaluated:
        assert {k: v for k, v in line.items() if k != "label"} == by_row[line["row"]]


def test_eval_on_a_table_without_labels_points_to_predict(trained, tmp_path):
    result, lines = score("eval", trained, without_labels(trained), tmp_path)
    assert result.returncode == 2 and lines is None
    (line,) = result.stderr.strip().splitlines()
    assert "no label column 'label'" in line and "mmrun predict" in line
