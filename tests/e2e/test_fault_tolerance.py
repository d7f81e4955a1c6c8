"""Runs that are killed, preempted or diverge, driven through the real CLI as a user (or a
cluster) would: kill -9 then resume, SIGTERM then resume, a stopped sweep finished by a rerun,
and a diverged run that is not called completed."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import read_metrics, run_mmrun

# Epochs of about a second on one core: long enough to stop a run in the middle of one.
RUN = ["dataset.size=1200", "trainer.max_epochs=3", "callbacks=fixed_epochs", "trainer.accelerator=cpu",
       "progress=plain", "baseline=none"]
SAME = ("best_val", "test", "best_epoch", "epochs", "status")
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("mmrun")
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | ONE_THREAD
    return subprocess.Popen([str(exe), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    """Wait until ``path`` exists (the process must still be running when it appears)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("uninterrupted")
    result = run_mmrun(["train", *RUN, "hydra.run.dir=run"], folder, env=ONE_THREAD)
    assert result.returncode == 0, result.stderr[-3000:]
    return read_metrics(folder / "run")


def test_a_killed_run_resumes_to_the_same_metrics(tmp_path, uninterrupted):
    process = start(["train", *RUN, "hydra.run.dir=run"], tmp_path)
    wait_for(tmp_path / "run" / "checkpoints" / "last.ckpt", process)  # epoch 1 has ended
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "run" / "metrics.json").exists()

    resumed = run_mmrun(["train", "resume=run"], tmp_path, env=ONE_THREAD)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = read_metrics(tmp_path / "run")
    assert {k: metrics[k] for k in SAME} == {k: uninterrupted[k] for k in SAME}
    assert metrics["resumed_from"].endswith("last.ckpt")
    assert "resume=" not in " ".join(metrics["overrides"])


def test_sigterm_saves_reports_interrupted_and_the_resume_completes(tmp_path, uninterrupted):
    process = start(["train", *RUN, "hydra.run.dir=run"], tmp_path)
    wait_for(tmp_path / "run" / "checkpoints" / "last.ckpt", process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr
    stopped = json.loads((tmp_path / "run" / "metrics.json").read_text())  # strict JSON
    assert stopped["status"] == "interrupted" and stopped["signal"] == "SIGTERM"
    assert stopped["epoch"] >= 2 and stopped["checkpoint"].endswith("last.ckpt")  # stopped after epoch 1
    assert stopped["resume"] == f"mmrun train resume={(tmp_path / 'run').resolve()}"

    resumed = run_mmrun(shlex.split(stopped["resume"])[1:], tmp_path, env=ONE_THREAD)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = read_metrics(tmp_path / "run")
    assert {k: metrics[k] for k in SAME} == {k: uninterrupted[k] for k in SAME}

    again = run_mmrun(["train", "resume=run"], tmp_path)
    assert again.returncode == 2 and "already completed" in again.stderr


def test_a_stopped_sweep_reports_and_its_rerun_finishes_it(tmp_path):
    sweep = ["train", "-m", "seed=1,2", *RUN, "hydra.sweep.dir=sweep"]
    process = start(sweep, tmp_path)
    root = tmp_path / "sweep"
    deadline = time.monotonic() + 240
    while not list(root.glob("seed=2-*/checkpoints/last.ckpt")):  # job folders: swept overrides + a hash
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGINT, stderr[-3000:]
    (first,), (second,) = root.glob("seed=1-*"), root.glob("seed=2-*")
    assert read_metrics(first)["status"] == "completed"
    assert read_metrics(second)["status"] == "interrupted"
    report = (root / "comparison.md").read_text()
    assert "## Runs that did not complete (1)" in report and "interrupted" in report
    assert "jobs not run (1): seed=2" in stdout + stderr

    finished = (first / "metrics.json").stat().st_mtime_ns
    rerun = run_mmrun(sweep, tmp_path, env=ONE_THREAD)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "already completed" in rerun.stdout and "resuming it from" in rerun.stdout
    assert (first / "metrics.json").stat().st_mtime_ns == finished
    assert read_metrics(second)["status"] == "completed"


def test_a_diverged_run_is_not_called_completed(tmp_path):
    result = run_mmrun(["train", "dataset.size=200", "trainer.max_epochs=3", "trainer.accelerator=cpu",
                        "progress=plain", "baseline=none", "optimizer.lr=1e6", "hydra.run.dir=run"], tmp_path)
    assert result.returncode == 3, result.stderr[-3000:]
    assert result.stderr.count("\n") == 1 and "training diverged" in result.stderr
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())  # strict JSON: no bare NaN
    assert summary["status"] == "diverged" and summary["epoch"] >= 1 and summary["step"] >= 1
    assert f"epoch {summary['epoch']}, step {summary['step']}" in result.stderr


def test_a_submitit_job_stopped_by_its_preemption_signal_is_requeued_and_resumes(tmp_path):
    """submitit's local executor stands in for SLURM: SIGUSR2 (what submitit asks SLURM to send
    before the time limit) saves last.ckpt, submitit's own handler requeues the job, and the
    requeued job resumes from that checkpoint."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    process = start(["train", "-m", "seed=1", *RUN, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                     "hydra.sweep.dir=sweep"], tmp_path)
    deadline = time.monotonic() + 240
    while not list((tmp_path / "sweep").glob("*/checkpoints/last.ckpt")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.02)
    job = subprocess.run(["pgrep", "-f", "submitit.core._submit"], capture_output=True, text=True).stdout.split()
    os.kill(int(job[0]), signal.SIGUSR2)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr[-3000:]
    (folder,) = (tmp_path / "sweep").glob("*/metrics.json")
    metrics = read_metrics(folder.parent)
    assert metrics["status"] == "completed" and metrics["resumed_from"].endswith("last.ckpt")
    (log,) = (tmp_path / "sweep" / ".submitit").glob("*/*_0_log.out")
    assert "run interrupted by SIGUSR2" in log.read_text() and "Requeued job" in log.read_text()
