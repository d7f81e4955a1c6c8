"""Output folders are checked before any work: one that cannot be written is a one-line error."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mmrun.errors import ConfigError


def check_writable(path: str, key: str) -> None:
    """Refuse ``key=path`` when the folder cannot be created or written (read-only, a file in the way).

    Only the part before any ``${...}`` interpolation is checked (e.g. ``outputs/`` of
    ``outputs/${now:%Y-%m-%d}``): its deepest existing folder must accept a new folder, which
    is tried for real (permission bits do not tell for root, network or read-only mounts).
    """
    target = Path(path.split("${", 1)[0] or ".").expanduser()
    existing = next(p for p in (target, *target.parents) if p.exists() or p == Path("."))
    if not existing.is_dir():
        raise ConfigError(f"{key}={path}: {existing} is a file, not a folder; choose another folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".mmrun-write-check-", dir=existing))
    except OSError as error:
        raise ConfigError(f"{key}={path} cannot be written ({error.strerror or error}: {existing}); choose a folder "
                          f"you can write to") from None
