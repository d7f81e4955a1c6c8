"""A folder of decoded tensors keyed by a hash of what they were decoded from.

An entry is one ``torch.save`` file named ``<sha256>.pt``. The key is a hash of a JSON
description of the inputs (for a decoded column: each referenced file's fingerprint, see
``file_fingerprint``, and the preprocessing options, not the column's name; for a prepared
manifest see ``mmrun.data.prepared``) plus the mmrun version and a format version, so a
changed file, cell, option or mmrun release gives a new key and stale entries are never read.
An entry holds ``{"data": payload, "checksum": checksum(payload)}``; a loaded entry whose data
no longer matches its checksum (damaged but still readable) is refused with a warning and
built again, like an unreadable one. Entries are written
to a temporary name in the same folder and moved into place with ``os.replace``, which is
atomic: two jobs of a sweep building the same entry at once both write a complete file and
the last rename wins, so a reader never sees a partial one. Entries are read with
``weights_only=True``.

The folder is ``dataset.cache_dir`` when set, else ``$MMRUN_CACHE_DIR``, else
``$XDG_CACHE_HOME/mmrun`` (``~/.cache/mmrun``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any

import torch

from mmrun import __version__
from mmrun.errors import ConfigError

log = logging.getLogger("mmrun")
FORMAT_VERSION = 2  # 2: entries are {"data", "checksum"}; fingerprints hold the ctime or a content hash
CHECKS = ("stat", "content")  # dataset.cache_check
CHUNK = 1 << 20


def default_cache_dir() -> Path:
    if os.environ.get("MMRUN_CACHE_DIR"):
        return Path(os.environ["MMRUN_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "mmrun"


def _json_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def cache_key(description: Any) -> str:
    """SHA-256 of a JSON-able description of an entry's inputs."""
    return _json_hash({"format": FORMAT_VERSION, "mmrun": __version__, "inputs": description})


def file_digest(path: str) -> str:
    """128-bit BLAKE2b of a file's bytes, read in 1 MiB chunks (``hashlib.file_digest`` needs Python 3.11)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_fingerprint(path: str, check: str = "stat") -> list:
    """What stands for a file's contents in a cache key, by ``check`` (``dataset.cache_check``).

    * ``stat`` (one ``os.stat``, fast): ``[path, size, mtime_ns, ctime_ns]``. The ctime is set
      by the system on every write and cannot be set back (``cp -p``, ``rsync -t``, ``touch -r``
      and ``os.utime`` restore only the mtime), so a file rewritten in place with the same size
      and its old mtime is decoded again. A copy of the data in another place has other paths
      and ctimes, so it is decoded again too.
    * ``content``: ``[path, blake2b]`` of the file's bytes. Reads every file on every run, but
      data copied around (new ctimes, same bytes) keeps its entries (see
      ``mmrun.data.files``). A path that cannot be read (a folder, no permission) is
      fingerprinted by its stats instead; decoding reports it.

    ``[path, None]`` when there is no such file. Each form tells how it was taken
    (``hashed``), so ``changed`` can check a recorded fingerprint again the same way.
    """
    try:
        info = os.stat(path)
    except OSError:
        return [path, None]
    if check == "content":
        with contextlib.suppress(OSError):  # unreadable: its stats stand in, decoding reports it
            return [path, file_digest(path)]
    return [path, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def hashed(fingerprint: list) -> bool:
    """Whether a fingerprint is a content hash (``cache_check=content``) rather than stats."""
    return isinstance(fingerprint[-1], str)


def changed(fingerprint: list) -> bool:
    """Whether the file a recorded fingerprint describes is no longer the same, checked as it was taken."""
    return file_fingerprint(fingerprint[0], "content" if hashed(fingerprint) else "stat") != fingerprint


def checksum(payload: Any) -> str:
    """SHA-256 of an entry's structure and values, with each tensor as its dtype, shape and CRC-32.

    Stored with the entry and compared on load, it catches an entry that is damaged but still
    readable (a tensor changed and saved again, flipped bits) before it is trained on. CRC-32
    (zlib, about 3.5 GB/s on one core) rather than a cryptographic hash over the tensors: it
    guards against accidents, not attackers (who can write an entry can write its checksum),
    and on a 350 MB entry it adds 0.1 s to a 0.23 s load where BLAKE2b would add 0.43 s.
    """

    def describe(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return [str(value.dtype), list(value.shape), zlib.crc32(value.reshape(-1).view(torch.uint8).numpy())]
        if isinstance(value, dict):
            return {str(k): describe(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [describe(v) for v in value]
        return value

    return _json_hash(describe(payload))


class TensorCache:
    """Load and store entries in ``folder`` (``None`` disables caching).

    ``check`` is how files are fingerprinted for keys (``dataset.cache_check``: stat or content).
    """

    def __init__(self, folder: str | Path | None, check: str = "stat") -> None:
        if check not in CHECKS:
            raise ConfigError(f"dataset.cache_check={check!r}; use stat (size, mtime and ctime of each file, the "
                              f"default) or content (a hash of each file's bytes, reused across copies of the data)")
        self.folder = Path(folder).expanduser() if folder is not None else None
        self.check = check

    def fingerprint(self, path: str) -> list:
        return file_fingerprint(path, self.check)

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{key}.pt"

    def load(self, key: str) -> dict[str, Any] | None:
        """The entry's payload; None when there is none or it is damaged (the caller builds it again)."""
        path = self._path(key) if self.folder is not None else None
        if path is None or not path.is_file():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            intact = entry["checksum"] == checksum(entry["data"])
        except Exception as error:  # a damaged entry is rebuilt, never trusted
            log.warning("ignoring unreadable cache entry %s (%s); building it again", path, error)
            return None
        if not intact:
            log.warning("ignoring damaged cache entry %s (its tensors do not match the checksum stored with "
                        "them); building it again", path)
            return None
        return entry["data"]

    def store(self, key: str, payload: dict[str, Any]) -> None:
        if self.folder is None:
            return
        temporary = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=self.folder)
            with os.fdopen(handle, "wb") as file:
                torch.save({"data": payload, "checksum": checksum(payload)}, file)
            os.replace(temporary, self._path(key))
        except OSError as error:  # a read-only or full disk costs speed, not the run
            log.warning("could not write the data cache in %s (%s); the next run decodes again", self.folder, error)
            if temporary is not None and Path(temporary).exists():
                Path(temporary).unlink()
