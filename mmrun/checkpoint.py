"""Self-contained checkpoints: loading is weights-only, never executing code from the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from mmrun.data.spec import DataSpec
from mmrun.errors import CheckpointError
from mmrun.model import CHECKPOINT_KEY, MultimodalModule


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and check it was written by mmrun."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not exist; pass ckpt_path=<run dir>/checkpoints/best.ckpt"
        )
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for truncated or foreign files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read ({reason[:200]}); it is corrupt or not a "
            f"PyTorch file: point ckpt_path at a best.ckpt or last.ckpt written by mmrun train"
        ) from error
    if not isinstance(checkpoint, dict) or CHECKPOINT_KEY not in checkpoint or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was not written by mmrun train (no config or data spec "
            f"inside); point ckpt_path at a checkpoint from an mmrun run folder"
        )
    return checkpoint


def model_from_checkpoint(checkpoint: dict[str, Any]) -> MultimodalModule:
    """Rebuild the trained model from the config and data spec stored in the checkpoint."""
    saved = checkpoint[CHECKPOINT_KEY]
    cfg = OmegaConf.create(saved["config"])
    model = MultimodalModule(cfg, DataSpec.from_dict(saved["spec"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model
