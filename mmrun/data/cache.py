"""A folder of decoded tensors keyed by a hash of what they were decoded from.

An entry is one ``torch.save`` file named ``<sha256>.pt``. The key is a hash of a JSON
description of the inputs (for a decoded column: each referenced file's resolved path, size
and modification time and the preprocessing options, not the column's name; for a
prepared manifest see ``mmrun.data.prepared``) plus the mmrun version and a format version,
so a changed file, cell, option or mmrun release gives a new key and stale entries are never
read. Entries are written
to a temporary name in the same folder and moved into place with ``os.replace``, which is
atomic: two jobs of a sweep building the same entry at once both write a complete file and
the last rename wins, so a reader never sees a partial one. Entries are read with
``weights_only=True``.

The folder is ``dataset.cache_dir`` when set, else ``$MMRUN_CACHE_DIR``, else
``$XDG_CACHE_HOME/mmrun`` (``~/.cache/mmrun``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from mmrun import __version__

log = logging.getLogger("mmrun")
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    if os.environ.get("MMRUN_CACHE_DIR"):
        return Path(os.environ["MMRUN_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "mmrun"


def cache_key(description: Any) -> str:
    """SHA-256 of a JSON-able description of an entry's inputs."""
    text = json.dumps({"format": FORMAT_VERSION, "mmrun": __version__, "inputs": description}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_fingerprint(path: str) -> list:
    """``[path, size, mtime_ns]`` of a file, ``[path, None, None]`` when it does not exist."""
    try:
        stat = os.stat(path)
    except OSError:
        return [path, None, None]
    return [path, stat.st_size, stat.st_mtime_ns]


class TensorCache:
    """Load and store entries in ``folder``; ``folder=None`` disables caching."""

    def __init__(self, folder: str | Path | None) -> None:
        self.folder = Path(folder).expanduser() if folder is not None else None

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{key}.pt"

    def load(self, key: str) -> dict[str, Any] | None:
        if self.folder is None or not self._path(key).is_file():
            return None
        try:
            return torch.load(self._path(key), map_location="cpu", weights_only=True)
        except Exception as error:  # a damaged entry is rebuilt, never trusted
            log.warning("ignoring unreadable cache entry %s (%s); decoding again", self._path(key), error)
            return None

    def store(self, key: str, payload: dict[str, Any]) -> None:
        if self.folder is None:
            return
        temporary = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=self.folder)
            with os.fdopen(handle, "wb") as file:
                torch.save(payload, file)
            os.replace(temporary, self._path(key))
        except OSError as error:  # a read-only or full disk costs speed, not the run
            log.warning("could not write the data cache in %s (%s); the next run decodes again", self.folder, error)
            if temporary is not None and Path(temporary).exists():
                Path(temporary).unlink()
