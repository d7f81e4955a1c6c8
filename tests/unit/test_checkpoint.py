import pytest
import torch

from mmrun.checkpoint import load_checkpoint
from mmrun.errors import CheckpointError


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.ckpt")


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / "broken.ckpt"
    path.write_bytes(b"\x00not a zip file at all")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(path)


def test_foreign_checkpoint(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="not written by mmrun"):
        load_checkpoint(path)


def test_code_in_a_checkpoint_is_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "mmrun": Evil()}, path)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(path)
