"""Decode a column of file paths once, through the tensor cache.

Relative paths resolve against the manifest's folder. Each file is decoded at most once per
cache key (in this process, without worker processes: the machine's cores go to training);
the result records, per row, whether the file is missing (empty cell or no such file) and
why a file that exists could not be decoded.

The key names each file by its fingerprint (``mmrun.data.cache.file_fingerprint``). With
``dataset.cache_check=content`` a hashed file stands in the key as its hash and its cell as
written, not its resolved path, so a copy of the data in another place (same relative paths,
same bytes) finds the entries decoded from the original.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from mmrun.data.cache import TensorCache, cache_key, hashed
from mmrun.data.preprocess import DecodeError
from mmrun.data.table import Table

log = logging.getLogger("mmrun")


@dataclass
class DecodedColumn:
    """Decoded files of one column: ``data [N, ...]`` (zeros where unusable), per-row status.

    ``files`` holds the fingerprint (``mmrun.data.cache.file_fingerprint``, or None for an
    empty cell) of each row's file, so that later caches can check them again.
    """

    data: torch.Tensor
    missing: torch.Tensor  # bool [N]: empty cell or no such file
    problems: dict[int, str]  # row -> reason, for missing and undecodable files
    files: list

    @classmethod
    def from_payload(cls, payload: dict[str, Any], files: list) -> "DecodedColumn":
        problems = {int(row): reason for row, reason in payload["problems"]}
        return cls(payload["data"], payload["missing"], problems, files)

    def to_payload(self) -> dict[str, Any]:
        return {"data": self.data, "missing": self.missing, "problems": [[r, p] for r, p in self.problems.items()]}


def resolve_path(cell: Any, base: Path) -> str:
    """The file a cell names; relative paths start at the manifest's folder.

    ``os.path`` rather than ``pathlib``: this runs once per file on every run, cache hit or not.
    """
    return os.path.join(base, os.path.expanduser(str(cell).strip()))  # join keeps an absolute cell as is


def decode_column(
    table: Table,
    column: str,
    decoder: Callable[[str], torch.Tensor],
    shape: tuple[int, ...],
    dtype: torch.dtype,
    options: dict,
    cache: TensorCache,
) -> tuple[DecodedColumn, bool]:
    """Decode every file named in ``column`` (or load them from the cache); return (column, cache hit)."""
    base = table.path.resolve().parent
    cells = [row[column] for row in table.rows]
    paths = [resolve_path(c, base) if c is not None else None for c in cells]
    fingerprints = [cache.fingerprint(p) if p is not None else None for p in paths]
    named = [[c, f[1]] if f is not None and hashed(f) else f for c, f in zip(cells, fingerprints)]
    key = cache_key({"options": options, "shape": list(shape), "files": named})  # not the column name
    payload = cache.load(key)
    if payload is not None:
        return DecodedColumn.from_payload(payload, fingerprints), True
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # per-file tensors are small: thread hand-offs cost more than they save
    try:
        decoded = DecodedColumn(*_decode_all(cells, paths, decoder, shape, dtype), files=fingerprints)
    finally:
        torch.set_num_threads(threads)
    cache.store(key, decoded.to_payload())
    log.info("decoded %d files of column %r in %.1f s", len(cells) - int(decoded.missing.sum()), column,
             time.perf_counter() - started)
    return decoded, False


def _decode_all(cells: list, paths: list, decoder: Callable[[str], torch.Tensor], shape: tuple[int, ...],
                dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, dict[int, str]]:
    """``data``, ``missing`` and ``problems`` of a ``DecodedColumn`` (see there)."""
    data = torch.zeros(len(cells), *shape, dtype=dtype)
    missing = torch.zeros(len(cells), dtype=torch.bool)
    problems: dict[int, str] = {}
    for row, (cell, path) in enumerate(zip(cells, paths)):
        if path is None:
            missing[row], problems[row] = True, "empty cell"
        elif not os.path.exists(path):
            missing[row], problems[row] = True, f"file {cell!r} not found (looked for {path})"
        elif not os.path.isfile(path):
            problems[row] = f"{cell!r} is not a file"
        else:
            try:
                data[row] = decoder(path)
            except DecodeError as error:
                problems[row] = f"{cell!r}: {error}"
    return data, missing, problems
