"""Every registered fusion trains end to end through the CLI in one sweep."""

from __future__ import annotations

from conftest import read_metrics, run_dirs, run_mmrun

from mmrun.fusion import FUSIONS


def test_glob_sweep_over_every_fusion_completes(tmp_path):
    args = ["train", "-m", "fusion=glob(*)", "dataset.size=200", "trainer.max_epochs=1",
            "trainer.accelerator=cpu", "progress=plain", "baseline=none"]
    result = run_mmrun(args, tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    dirs = run_dirs(tmp_path / "outputs" / "multirun")
    assert len(dirs) == len(FUSIONS)
    for run_dir in dirs:
        metrics = read_metrics(run_dir)
        assert metrics["status"] == "completed", run_dir
        assert 0.0 <= metrics["test"]["test/acc"] <= 1.0


def test_fusion_that_needs_two_modalities_refuses_one(tmp_path):
    result = run_mmrun(["train", "fusion=tensor", "dataset.modalities=[image]", "dataset.size=200",
                        "trainer.max_epochs=1", "trainer.accelerator=cpu"], tmp_path)
    assert result.returncode == 2
    assert "fusion=tensor needs at least 2 modalities" in result.stderr
    assert "Traceback" not in result.stderr
