"""A sweep with a failing job: the report at the sweep root, `mmrun compare`, and the rerun."""

from __future__ import annotations

import csv

from conftest import read_metrics, run_mmrun

# concat trains on one modality; tensor needs two, so its jobs fail with a FusionError.
SWEEP = ["train", "-m", "fusion=concat,tensor", "seed=1,2", "dataset.modalities=[image]", "dataset.size=200",
         "trainer.max_epochs=2", "trainer.accelerator=cpu", "progress=plain", "hydra.sweep.dir=sweep"]


def _job(root, fusion, seed):
    """A job's folder, named after its overrides."""
    (folder,) = [p.parent for p in root.glob("*/metrics.json")
                 if {f"fusion={fusion}", f"seed={seed}"} <= set(read_metrics(p.parent)["overrides"])]
    # The swept overrides, with a hash of all of them (the shared ones are left out of the name).
    assert folder.name.startswith(f"fusion={fusion},seed={seed}-") and len(folder.name.rsplit("-", 1)[1]) == 8
    return folder


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
    assert "runs that did not complete (2)" in result.stdout
    jobs = {(fusion, seed): _job(root, fusion, seed) for fusion in ("concat", "tensor") for seed in (1, 2)}
    assert [read_metrics(folder)["status"] for folder in jobs.values()] == ["completed"] * 2 + ["failed"] * 2
    assert "needs at least 2 modalities" in read_metrics(jobs["tensor", 1])["error"]
    for seed in (1, 2):
        assert (jobs["concat", seed] / "curves.png").is_file()
        assert (jobs["concat", seed] / "confusion_matrix.png").is_file()
    rows = _csv(root / "comparison.csv")
    configurations = [r for r in rows if not r["reference"]]
    assert [(r["fusion"], r["seeds"]) for r in configurations] == [("concat", "2")]
    (baseline,) = [r for r in rows if r["reference"]]  # the classical baseline: a reference row, not ranked
    assert baseline["reference"].startswith("classical baseline (") and baseline["rank"] == ""
    assert configurations[0]["beats baseline"] in ("yes", "no")
    assert "## Runs that did not complete (2)" in (root / "comparison.md").read_text()

    compared = run_mmrun(["compare", "sweep", "group_by=[fusion]", "output=again"], tmp_path)
    assert compared.returncode == 0, compared.stderr[-3000:]
    again = _csv(tmp_path / "again" / "comparison.csv")
    assert [{k: v for k, v in r.items() if k != "run folders"} for r in again] == \
           [{k: v for k, v in r.items() if k != "run folders"} for r in rows]
    assert f"{float(rows[0]['val/acc mean']):.4f}" in compared.stdout

    finished = (jobs["concat", 1] / "metrics.json").stat().st_mtime_ns
    failed = (jobs["tensor", 1] / "metrics.json").stat().st_mtime_ns
    # Adding a seed shifts the job numbers (concat seed=2 was job 1, is job 1; tensor seed=1 was
    # job 2, is job 3): results are matched by overrides, so only the new jobs and the failed ones run.
    rerun = run_mmrun([*SWEEP[:3], "seed=1,2,3", *SWEEP[4:]], tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stdout.count("already completed") == 2
    assert (jobs["concat", 1] / "metrics.json").stat().st_mtime_ns == finished
    assert (jobs["tensor", 1] / "metrics.json").stat().st_mtime_ns != failed
    assert read_metrics(_job(root, "concat", 3))["status"] == "completed"
    assert len(list(root.glob("*/metrics.json"))) == 6
