"""User mistakes end with one line on stderr, a non-zero exit and no traceback."""

from __future__ import annotations

import pytest

from conftest import TINY, run_mmrun


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "fusion=atention"], "did you mean 'attention'"),
        (["train", "trainer.max_epoch=1"], "did you mean 'max_epochs'"),
        (["train", "+fusion.bogus=1", *TINY], "unexpected keyword argument 'bogus'"),
        (["train", "dataset.modalities=[video]", *TINY], "dataset.modalities"),
        (["train", "monitor=val/accuracy", *TINY], "not a logged validation metric"),
        (["eval", "ckpt_path=missing.ckpt"], "does not exist"),
        (["eval"], "ckpt_path"),
        (["trian"], "did you mean 'train'"),
        (["train", "trainer.strategy=fsdp", "trainer.accelerator=cpu", *TINY], "trainer: The strategy `fsdp` requires a GPU"),
        (["train", "-m", "fusion=concat", "--cfg", "job"], "cannot be combined"),
    ],
)
def test_user_mistakes_give_one_line(args, fragment, tmp_path):
    result = run_mmrun(args, tmp_path)
    assert result.returncode != 0
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_corrupt_checkpoint(tmp_path):
    (tmp_path / "bad.ckpt").write_bytes(b"garbage")
    result = run_mmrun(["eval", "ckpt_path=bad.ckpt"], tmp_path)
    assert result.returncode == 2 and "cannot be read" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "outputs").glob("eval/*/*")), "a failed eval left its output folder"


def test_full_error_shows_the_traceback(tmp_path):
    result = run_mmrun(["eval", "ckpt_path=missing.ckpt"], tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_help_is_fast_path(tmp_path):
    result = run_mmrun(["--help"], tmp_path)
    assert result.returncode == 0 and "fusion" in result.stdout and "train" in result.stdout


@pytest.mark.parametrize(
    "args, first_words",
    [
        (["train", "seed=abc"], "seed=abc must be"),
        (["train", "optimizer.lr=-1"], "optimizer.lr=-1 must be"),
        (["train", "trainer.max_epochs=0"], "trainer.max_epochs=0 must be"),
        (["eval", "ckpt_path=missing.ckpt", "batch_size=abc"], "batch_size=abc must be"),
        (["train", "--cfg", "job", "fusion=nope"], "'nope' is not an option of fusion"),
        (["train", "hydra.run.dir=/proc/mmrun-run"], "hydra.run.dir=/proc/mmrun-run cannot be written"),
        (["train", "-m", "seed=1,2", "hydra.sweep.dir=/proc/mmrun-sweep"], "hydra.sweep.dir=/proc/mmrun-sweep cannot"),
        (["compare", ".", "output=/proc/mmrun-report"], "output=/proc/mmrun-report cannot be written"),
    ],
)
def test_wrong_values_give_one_line_and_exit_2(args, first_words, tmp_path):
    result = run_mmrun(args, tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"mmrun: error: {first_words}")
    assert "Traceback" not in result.stderr + result.stdout
