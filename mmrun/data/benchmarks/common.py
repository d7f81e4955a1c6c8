"""Small helpers shared by the benchmark loaders: file checks and modality selection."""

from __future__ import annotations

from pathlib import Path

import torch

from mmrun.errors import ConfigError, DataError


def required_path(value: str | None, key: str, dataset: str, example: str) -> Path:
    """The configured path, or a ``ConfigError`` that says which key to set."""
    if not value:
        raise ConfigError(f"dataset={dataset} needs {key}: pass {key}={example}")
    return Path(value).expanduser()


def require_file(path: Path, dataset: str, layout: str) -> Path:
    """``path`` if it is a file, else a ``DataError`` that shows the expected layout."""
    if not path.is_file():
        raise DataError(f"dataset={dataset}: {path} is missing; expected the release layout {layout}")
    return path


def select_modalities(requested: list[str] | tuple[str, ...], available: tuple[str, ...], dataset: str) -> list[str]:
    """The requested modality names, sorted, or a ``ConfigError`` listing the valid ones."""
    unknown = sorted(set(requested) - set(available))
    if unknown or not requested:
        raise ConfigError(
            f"dataset.modalities={list(requested)} is not a non-empty subset of the {dataset} modalities "
            f"{list(available)}; e.g. dataset.modalities=[{available[0]}]"
        )
    return sorted(requested)


def all_present(size: int, modalities: int) -> torch.Tensor:
    """The ``present`` mask of a dataset where every sample has every modality."""
    return torch.ones(size, modalities, dtype=torch.bool)
