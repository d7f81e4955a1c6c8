"""The pieces behind resume and honest statuses: loader state, random state, strict JSON,
resume's command line, job folder names, writable-folder checks and the report of runs that
did not complete."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from mmrun.callbacks import RandomState
from mmrun.data.loader import TensorBatchLoader
from mmrun.errors import ConfigError
from mmrun.paths import check_writable
from mmrun.report import write_json
from mmrun.resume import resume_args


def _batches(loader: TensorBatchLoader, count: int | None = None) -> list[list[int]]:
    out = []
    for batch in loader:
        out.append(batch["x"].tolist())
        if count is not None and len(out) == count:
            break
    return out


def test_the_loader_resumes_mid_epoch_after_the_batches_it_served():
    tensors = {"x": torch.arange(50)}
    reference = TensorBatchLoader(tensors, batch_size=8, shuffle=True, seed=3)
    reference.set_epoch(2)
    whole_epoch = _batches(reference)

    stopped = TensorBatchLoader(tensors, batch_size=8, shuffle=True, seed=3)
    stopped.set_epoch(2)
    _batches(stopped, count=3)
    state = stopped.state_dict()
    assert state == {"epoch": 2, "served": 3}

    resumed = TensorBatchLoader(tensors, batch_size=8, shuffle=True, seed=3)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # Lightning's epoch start of the same epoch keeps the skip
    assert _batches(resumed) == whole_epoch[3:]
    assert resumed.state_dict() == {"epoch": 3, "served": 0}
    resumed.set_epoch(5)
    assert _batches(resumed)[0] != whole_epoch[0]


def test_random_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    callback = RandomState()
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    torch.save(callback.state_dict(), tmp_path / "state.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    callback.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]


def test_metrics_json_is_strict_with_nan_written_as_null(tmp_path):
    write_json(tmp_path / "m.json", {"test": {"test/acc": float("nan"), "test/loss": 0.5}, "x": [float("inf")]})
    text = (tmp_path / "m.json").read_text()
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in metrics.json"))
    assert data["test"] == {"test/acc": None, "test/loss": 0.5} and data["x"] == [None]
    assert data["notes"] == ["test.test/acc was nan, written as null", "x[0] was inf, written as null"]


def _run_folder(root: Path, overrides: list[str], status: str | None = None, checkpoint: bool = True) -> Path:
    (root / ".hydra").mkdir(parents=True)
    (root / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if checkpoint:
        (root / "checkpoints").mkdir()
        (root / "checkpoints" / "last.ckpt").write_bytes(b"x")
    if status:
        (root / "metrics.json").write_text(json.dumps({"status": status}))
    return root


def test_resume_reruns_the_runs_own_overrides_in_its_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = _run_folder(tmp_path / "run", ["fusion=gated", "seed=3", "trainer.max_epochs=6"], "interrupted")
    args = resume_args(["resume=run", "trainer.max_epochs=9"], ["resume=run", "trainer.max_epochs=9"])
    assert args == ["fusion=gated", "seed=3", "trainer.max_epochs=9",
                    f'resume="{run.resolve() / "checkpoints" / "last.ckpt"}"', f'hydra.run.dir="{run.resolve()}"']
    assert resume_args(["seed=1"], ["seed=1"]) == ["seed=1"]


@pytest.mark.parametrize("case, message", [
    ("completed", "already completed"),
    ("no checkpoint", "does not exist; the run stopped before its first epoch ended"),
    ("not a run", "is not an mmrun run folder"),
    ("missing", "is neither a run folder nor a checkpoint"),
    ("sweep", "to finish an interrupted sweep, run the same sweep command again"),
])
def test_resume_refuses_in_one_line(tmp_path, monkeypatch, case, message):
    monkeypatch.chdir(tmp_path)
    if case == "completed":
        _run_folder(tmp_path / "run", ["seed=1"], "completed")
    elif case == "no checkpoint":
        _run_folder(tmp_path / "run", ["seed=1"], checkpoint=False)
    elif case == "not a run":
        (tmp_path / "run").mkdir()
    args = ["-m", "resume=run"] if case == "sweep" else ["resume=run"]
    with pytest.raises(ConfigError, match=message) as error:
        resume_args(args, ["resume=run"])
    assert "\n" not in str(error.value)


def test_job_folders_are_named_by_swept_overrides_with_a_hash_of_all(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from hydra.core.hydra_config import HydraConfig

    from mmrun import resolvers

    (tmp_path / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: ['encoder/text=gru,lstm', "
                                            "'seed=1,2', 'dataset.size=400']\n")

    def folder(overrides):
        job = SimpleNamespace(overrides=SimpleNamespace(task=overrides), sweep=SimpleNamespace(dir=str(tmp_path)))
        monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: job))
        return resolvers.job_folder()

    name = folder(["encoder/text=gru", "seed=1", "dataset.size=400"])
    assert name.startswith("encoder.text=gru,seed=1-") and len(name.rsplit("-", 1)[1]) == 8
    assert folder(["encoder/text=gru", "seed=1", "dataset.size=800"]) != name  # another shared value
    assert folder(["encoder/text=gru", "seed=2", "dataset.size=400"]) != name
    (tmp_path / "multirun.yaml").unlink()  # another sweeper: every override is in the name
    assert folder(["fusion=concat", "seed=1"]) == "fusion=concat,seed=1"
    assert folder([]) == "defaults"


def test_an_unwritable_output_folder_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_writable(str(tmp_path / "file" / "runs" / "${now:%H}"), "hydra.run.dir")
    with pytest.raises(ConfigError, match="cannot be written"):
        check_writable("/proc/mmrun-test/runs", "hydra.sweep.dir")
    check_writable(str(tmp_path / "new" / "${now:%H}"), "hydra.run.dir")
    assert not (tmp_path / "new").exists() and list(tmp_path.iterdir()) == [tmp_path / "file"]


def test_compare_lists_interrupted_diverged_and_killed_runs(tmp_path):
    from mmrun.sweep.runs import find_runs

    _run_folder(tmp_path / "killed", ["seed=3"])
    (tmp_path / "killed" / ".hydra" / "hydra.yaml").write_text("hydra:\n  job:\n    name: train\n")
    _run_folder(tmp_path / "evaluated", [])  # an eval folder: not a training run
    (tmp_path / "evaluated" / ".hydra" / "hydra.yaml").write_text("hydra:\n  job:\n    name: eval\n")
    for name in ("stopped", "nan"):
        (tmp_path / name).mkdir()
    write_json(tmp_path / "stopped" / "metrics.json",
               {"status": "interrupted", "epoch": 2, "signal": "SIGTERM", "resume": "mmrun train resume=stopped"})
    write_json(tmp_path / "nan" / "metrics.json", {"status": "diverged", "error": "training diverged: ..."})
    runs = {run.path.name: run for run in find_runs([tmp_path])}
    assert sorted(runs) == ["killed", "nan", "stopped"]
    assert runs["killed"].status == "incomplete" and "mmrun train resume=" in runs["killed"].error
    assert runs["stopped"].error == "stopped at epoch 2 by SIGTERM; continue with: mmrun train resume=stopped"
    assert runs["nan"].status == "diverged" and not any(run.completed for run in runs.values())


def test_a_stop_signal_interrupts_and_hands_on_to_the_previous_handler(tmp_path):
    import os
    import signal

    from mmrun import interruption

    calls = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))  # e.g. submitit's requeue
    try:
        with pytest.raises(interruption.RunInterrupted) as stop, interruption.watch_signals():
            with interruption.deferred():
                os.kill(os.getpid(), signal.SIGUSR2)  # inside training: only recorded
                assert interruption.pending() == signal.SIGUSR2 and not calls
        assert stop.value.exit_code == 128 + signal.SIGUSR2 and stop.value.signal_name == "SIGUSR2"
        stop.value.hand_on()
        assert calls == [signal.SIGUSR2]
        with pytest.raises(interruption.RunInterrupted), interruption.watch_signals():
            os.kill(os.getpid(), signal.SIGTERM)  # outside training: at once
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_paths_with_hydra_grammar_characters_are_quoted_for_hydra():
    from mmrun.cli import quote_paths

    job = "ckpt_path=sw/fusion=attention,seed=1-00c62586/checkpoints/best.ckpt"
    assert quote_paths([job, "seed=1"], multirun=False) == [f'ckpt_path="{job.split("=", 1)[1]}"', "seed=1"]
    assert quote_paths(["dataset.path=a.csv,b.csv"], multirun=True) == ["dataset.path=a.csv,b.csv"]  # a sweep
    assert quote_paths(["hydra.searchpath=[file://x]", "fusion=a,b", "resume='r=1'"], multirun=False) == \
           ["hydra.searchpath=[file://x]", "fusion=a,b", "resume='r=1'"]


def test_resume_brings_back_the_user_config_folders_of_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = _run_folder(tmp_path / "run", ["+sweep=mine"], "interrupted")
    (run / ".hydra" / "hydra.yaml").write_text(
        "hydra:\n  runtime:\n    config_sources:\n    - {path: /pkg/conf, schema: file, provider: main}\n"
        f"    - {{path: {tmp_path / 'myconf'}, schema: file, provider: command-line}}\n"
        "  overrides:\n    hydra:\n    - hydra.searchpath=[file:///extra]\n    - hydra.mode=RUN\n")
    args = resume_args(["resume=run"], ["resume=run"])
    assert args[:4] == ["--config-dir", str(tmp_path / "myconf"), "hydra.searchpath=[file:///extra]", "+sweep=mine"]
    mine = resume_args(["-cd", "other", "resume=run"], ["resume=run"])  # the command line's folder wins
    assert "--config-dir" not in mine and mine[:4] == ["-cd", "other", "hydra.searchpath=[file:///extra]", "+sweep=mine"]
    shown = resume_args(["resume=run", "--cfg", "job", "seed=2"], ["resume=run", "seed=2"])
    assert shown[:4] == ["--cfg", "job", "--config-dir", str(tmp_path / "myconf")]  # Hydra's flags before overrides
    assert shown[4:7] == ["hydra.searchpath=[file:///extra]", "+sweep=mine", "seed=2"]
