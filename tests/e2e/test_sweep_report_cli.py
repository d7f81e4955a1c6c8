"""A sweep with a failing job: the report at the sweep root, `mmrun compare`, and the rerun."""

from __future__ import annotations

import csv

from conftest import read_metrics, run_mmrun

# concat trains on one modality; tensor needs two, so its jobs fail with a FusionError.
SWEEP = ["train", "-m", "fusion=concat,tensor", "seed=1,2", "dataset.modalities=[image]", "dataset.size=200",
         "trainer.max_epochs=2", "trainer.accelerator=cpu", "progress=plain", "hydra.sweep.dir=sweep"]


def _csv(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_failed_jobs_are_reported_compared_and_rerun(tmp_path):
    result = run_mmrun(SWEEP, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    root = tmp_path / "sweep"
    for name in ("comparison.csv", "comparison.md", "comparison.png", "learning_curves.png"):
        assert (root / name).stat().st_size > 0, name
    assert "comparison of 2 runs by val/acc (max)" in result.stdout
    assert "failed runs (2)" in result.stdout
    assert [read_metrics(root / str(job))["status"] for job in range(4)] == ["completed"] * 2 + ["failed"] * 2
    assert "needs at least 2 modalities" in read_metrics(root / "2")["error"]
    for job in (0, 1):
        assert (root / str(job) / "curves.png").is_file()
        assert (root / str(job) / "confusion_matrix.png").is_file()
    rows = _csv(root / "comparison.csv")
    configurations = [r for r in rows if not r["reference"]]
    assert [(r["fusion"], r["seeds"]) for r in configurations] == [("concat", "2")]
    (baseline,) = [r for r in rows if r["reference"]]  # the classical baseline: a reference row, not ranked
    assert baseline["reference"].startswith("classical baseline (") and baseline["rank"] == ""
    assert configurations[0]["beats baseline"] in ("yes", "no")
    assert "## Failed runs (2)" in (root / "comparison.md").read_text()

    compared = run_mmrun(["compare", "sweep", "group_by=[fusion]", "output=again"], tmp_path)
    assert compared.returncode == 0, compared.stderr[-3000:]
    again = _csv(tmp_path / "again" / "comparison.csv")
    assert [{k: v for k, v in r.items() if k != "run folders"} for r in again] == \
           [{k: v for k, v in r.items() if k != "run folders"} for r in rows]
    assert f"{float(rows[0]['val/acc mean']):.4f}" in compared.stdout

    finished = (root / "0" / "metrics.json").stat().st_mtime_ns
    failed = (root / "2" / "metrics.json").stat().st_mtime_ns
    rerun = run_mmrun(SWEEP, tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "job 0 already completed" in rerun.stdout and "job 1 already completed" in rerun.stdout
    assert "job 2 already completed" not in rerun.stdout
    assert (root / "0" / "metrics.json").stat().st_mtime_ns == finished
    assert (root / "2" / "metrics.json").stat().st_mtime_ns != failed
