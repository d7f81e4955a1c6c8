"""``threads`` through the real CLI: a two-job joblib sweep gives each job its share of the cores,
and ``threads=1`` is logged and stored in metrics.json."""

from __future__ import annotations

import pytest

from conftest import TINY, read_metrics, run_dirs, run_mmrun
from mmrun.threads import available_cores

ONE_EPOCH = [*(arg for arg in TINY if not arg.startswith("trainer.max_epochs=")), "trainer.max_epochs=1"]


def test_joblib_jobs_share_the_cores(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="pip install 'mmrun[joblib]'")
    cores = available_cores()
    # An OMP_NUM_THREADS that does not bind, so the line shows the share of the cores (1 on 2 cores).
    result = run_mmrun(["train", "-m", "seed=1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                        "hydra.sweep.dir=sweep", *ONE_EPOCH], tmp_path, env={"OMP_NUM_THREADS": str(cores)})
    assert result.returncode == 0, result.stderr[-3000:]
    expected = max(cores // 2, 1)
    jobs = run_dirs(tmp_path / "sweep")
    assert len(jobs) == 2
    for job in jobs:
        assert f"threads: {expected} ({cores} cores / 2 parallel jobs)" in (job / "train.log").read_text()
        assert read_metrics(job)["threads"] == expected


def test_a_number_is_logged_and_stored(tmp_path):
    result = run_mmrun(["train", "threads=1", "hydra.run.dir=run", *ONE_EPOCH], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "threads: 1 (set by threads=1" in result.stdout
    assert read_metrics(tmp_path / "run")["threads"] == 1


def test_a_bad_value_is_one_line(tmp_path):
    result = run_mmrun(["train", "threads=0", *ONE_EPOCH], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "mmrun: error: threads=0 must be auto or a positive whole number (e.g. threads=1)"
