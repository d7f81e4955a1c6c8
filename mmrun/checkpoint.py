"""Self-contained checkpoints: loading is weights-only and never executes code from the file.

``torch.load(weights_only=True)`` rebuilds only tensors and plain values, and
``mmrun.checkpoint_safety`` checks the stored config before anything in it is instantiated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mmrun.checkpoint_safety import check_checkpoint
from mmrun.data.spec import DataSpec
from mmrun.errors import CheckpointError
from mmrun.model import CHECKPOINT_KEY, MultimodalModule, upgrade_checkpoint


def describe(path: str | Path | None) -> str:
    """How messages name a checkpoint: by its path when known."""
    return f"checkpoint {str(path)!r}" if path is not None else "the checkpoint"


def read_checkpoint(path: str | Path) -> Any:
    """The file's content, read with ``weights_only=True`` (tensors and plain values only), unchecked."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise CheckpointError(f"{describe(path)} does not exist; pass ckpt_path=<run dir>/checkpoints/best.ckpt")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for truncated or foreign files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{describe(path)} cannot be read ({reason[:200]}); it is corrupt or not a "
            f"PyTorch file: point ckpt_path at a best.ckpt or last.ckpt written by mmrun train"
        ) from error


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint and check it is an mmrun checkpoint whose config is safe to instantiate."""
    checkpoint = read_checkpoint(path)
    check_checkpoint(checkpoint, describe(path))
    return checkpoint


def model_from_checkpoint(checkpoint: dict[str, Any], path: str | Path | None = None) -> MultimodalModule:
    """Rebuild the trained model from the config and data spec stored in the checkpoint.

    The checkpoint is checked again (cheap), so a dict from anywhere is safe to pass; ``path``
    names it in messages.
    """
    source = describe(path)
    check_checkpoint(checkpoint, source)
    upgrade_checkpoint(checkpoint)
    saved = checkpoint[CHECKPOINT_KEY]
    try:
        spec = DataSpec.from_dict(saved["spec"])
    except (KeyError, TypeError, ValueError) as error:
        raise damaged(source, f"its data spec is incomplete ({error!r:.200})") from error
    try:
        model = MultimodalModule(OmegaConf.create(saved["config"]), spec)
    except OmegaConfBaseException as error:  # a key the model reads is missing from the stored config
        raise damaged(source, f"its stored config is incomplete ({str(error).splitlines()[0][:200]})") from error
    problem = weights_problem(model.state_dict(), checkpoint["state_dict"])
    if problem:  # e.g. a fusion whose layers changed since an older mmrun wrote the file
        raise CheckpointError(f"{source} was not loaded: its weights do not fit the model its config describes "
                              f"({problem}); it was written by another mmrun version (retrain it with this one, "
                              f"or load it with the version that wrote it) or the file was damaged or edited")
    model.load_state_dict(checkpoint["state_dict"])
    return model


def damaged(source: str, what: str) -> CheckpointError:
    """The refusal of a checkpoint whose content does not hang together."""
    return CheckpointError(f"{source} was not loaded: {what}; the file is damaged or was edited")


def weights_problem(expected: dict[str, torch.Tensor], stored: dict[Any, Any]) -> str | None:
    """What differs between the model's state_dict and the stored one: counts, one example each."""

    def shape(value: Any) -> str:
        return str(list(value.shape)) if isinstance(value, torch.Tensor) else f"a {type(value).__name__}"

    missing = [k for k in expected if k not in stored]
    unexpected = [str(k) for k in stored if k not in expected]
    misshaped = [
        f"{k} is {shape(stored[k])} in the file, {shape(expected[k])} in the model"
        for k in expected
        if k in stored and not (isinstance(stored[k], torch.Tensor) and stored[k].shape == expected[k].shape)
    ]
    parts = [
        f"{len(keys)} weight{'s' * (len(keys) > 1)} {what}, e.g. {keys[0][:200]}"
        for keys, what in ((missing, "missing"), (unexpected, "unexpected"), (misshaped, "of the wrong shape"))
        if keys
    ]
    return "; ".join(parts) or None
