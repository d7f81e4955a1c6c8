"""``+distill`` through the CLI: a teacher on all four modalities; one distillation run, which
trains its scratch twin first and records the gap recovered; then the ``+sweep=distill``
preset narrowed to image-only students (scratch and kd, two seeds) against it: every run
records its teacher's test metric, the report pairs scratch and distilled students with the
gap recovered (``tests/unit/test_distill.py`` rebuilds a student's checkpoint without its teacher)."""

from __future__ import annotations

from conftest import TINY, read_metrics, run_dirs, run_mmrun

SMALL = [*TINY, "dataset.size=300", "trainer.max_epochs=1"]  # later keys win


def test_a_distillation_sweep_reports_scratch_distilled_and_teacher(tmp_path):
    env = {"MMRUN_CACHE_DIR": str(tmp_path / "cache")}
    result = run_mmrun(["train", *SMALL, "hydra.run.dir=teacher"], tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    teacher = tmp_path / "teacher" / "checkpoints" / "best.ckpt"

    # One run: the scratch twin first (distill.scratch=train, the default), then the distilled student.
    result = run_mmrun(["train", "+distill=kd", f"distill.teacher={teacher}", "dataset.modalities=[image]", *SMALL,
                        "baseline=none", "hydra.run.dir=single"], tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    single, twin = read_metrics(tmp_path / "single"), read_metrics(tmp_path / "single" / "scratch")
    assert twin["distill"]["role"] == "scratch" and (tmp_path / "single/scratch/checkpoints/best.ckpt").is_file()
    block, scratch = single["distill"], twin["test"]["test/acc"]
    assert block["scratch_test"] == scratch and block["scratch_reference"] == str(tmp_path / "single" / "scratch")
    taught = block["teacher_test"]["test/acc"]
    expected = None if taught == scratch else (single["test"]["test/acc"] - scratch) / (taught - scratch)
    assert block["gap_recovered"] == expected

    result = run_mmrun(["train", "-m", "+sweep=distill", f"distill.teacher={teacher}", "dataset.modalities=[image]",
                        "seed=1,2", *SMALL, "hydra.sweep.dir=sweep"], tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {(m["distill"]["role"], m["seed"]): m for m in map(read_metrics, run_dirs(tmp_path / "sweep"))}
    assert set(runs) == {("scratch", 1), ("scratch", 2), ("distilled", 1), ("distilled", 2)}
    distilled = runs["distilled", 1]["distill"]
    assert distilled["student_modalities"] == ["image"] and len(distilled["teacher_modalities"]) == 4
    assert distilled["teacher_test"]["test/acc"] == runs["scratch", 1]["distill"]["teacher_test"]["test/acc"]
    # The single run stored the teacher's outputs on these rows; every kd job of the sweep read them.
    assert block["teacher_outputs"] == "cached (computed)"
    assert distilled["teacher_outputs"] == runs["distilled", 2]["distill"]["teacher_outputs"] == "cached (read)"
    report = (tmp_path / "sweep" / "comparison.md").read_text()
    assert "## Distillation" in report and "| [image] | kd |" in report
    assert "gap recovered" in result.stdout
