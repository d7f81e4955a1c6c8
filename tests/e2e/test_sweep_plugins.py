"""Sweeps through Hydra plugins: parallel jobs with joblib, hyperparameter search with Optuna."""

from __future__ import annotations

import csv
import pytest
from conftest import read_metrics, run_mmrun

TINY = ["dataset.size=200", "trainer.max_epochs=1", "trainer.accelerator=cpu", "progress=plain"]


def _plugin(name: str) -> None:
    pytest.importorskip(f"hydra_plugins.{name}", reason=f"{name} is not installed (pip install 'mmrun[test]')")


def test_joblib_runs_jobs_in_parallel_on_a_manifest_with_a_shared_cache(tmp_path):
    _plugin("hydra_joblib_launcher")
    from PIL import Image  # installed with matplotlib

    (tmp_path / "img").mkdir()
    with (tmp_path / "data.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["photo", "size", "label"])
        for i in range(80):
            Image.new("RGB", (8, 8), (200, 30, 30) if i % 2 else (30, 30, 200)).save(tmp_path / "img" / f"{i}.png")
            writer.writerow([f"img/{i}.png", i % 2 + 0.1 * (i % 5), "red" if i % 2 else "blue"])
    args = ["train", "-m", "fusion=concat,attention", "dataset=manifest", "dataset.path=data.csv",
            "dataset.cache_dir=cache", "dataset.image.size=[8,8]", "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2", "hydra.sweep.dir=sweep", *TINY[1:]]
    result = run_mmrun(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p.parent.name for p in (tmp_path / "sweep").glob("*/metrics.json"))
    assert [name.split("-")[0] for name in jobs] == ["fusion=attention", "fusion=concat"]  # folders named by overrides
    assert [read_metrics(tmp_path / "sweep" / job)["status"] for job in jobs] == ["completed"] * 2
    assert list((tmp_path / "cache").rglob("*.pt")), "the jobs did not use the shared cache"
    assert (tmp_path / "sweep" / "comparison.csv").is_file()


def test_optuna_records_failed_trials_and_resumes_from_sqlite(tmp_path):
    _plugin("hydra_optuna_sweeper")
    import optuna

    # With one modality, trials that sample a two-modality fusion (film) fail; the others train.
    args = ["train", "-m", "+sweep=optuna", "hydra.sweeper.storage=sqlite:///study.db", "dataset.modalities=[image]",
            *TINY]
    first = run_mmrun([*args, "hydra.sweeper.n_trials=3", "hydra.sweep.dir=first"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    study = optuna.load_study(study_name="mmrun", storage=f"sqlite:///{tmp_path / 'study.db'}")
    states = [t.state.name for t in study.trials]
    assert len(states) == 3 and "FAIL" in states and "COMPLETE" in states
    markdown = (tmp_path / "first" / "comparison.md").read_text()
    assert "## Best parameters" in markdown and "## Runs that did not complete" in markdown
    assert (tmp_path / "first" / "optimisation_history.png").stat().st_size > 0

    again = run_mmrun([*args, "hydra.sweeper.n_trials=1", "hydra.sweep.dir=second"], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    study = optuna.load_study(study_name="mmrun", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.trials) == 4
