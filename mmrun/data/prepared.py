"""The prepared-manifest cache: a whole manifest build, kept so that an identical run skips it.

Decoding image and audio files is cached per column (``mmrun.data.files``), but a run that
finds every file decoded still reads and checks each row, tokenises the text, fits the
statistics, vocabularies and class list on the training split and normalises every tensor.
This cache keeps the result of all of that, the split tensors, the ``DataSpec`` (with the
fitted state), the row ids and the skip report, so the second identical run, and every job
of a sweep that leaves the data settings alone, hashes the manifest, checks that its files
are unchanged and loads one entry.

Key (``mmrun.data.cache.cache_key``): a BLAKE2b hash of the manifest's bytes, its resolved
path (relative file paths start at its folder), and every dataset setting the build reads
(``settings``). Which files a manifest names is known only after reading it, so the entry
records the fingerprint (``mmrun.data.cache.file_fingerprint``: stats, or a content hash with
``cache_check=content``) of every file the build read, and it is used only while all of them
are unchanged. A copy of the data in another place prepares again (the manifest's path is
part of the key), from decoded entries that it reuses with ``cache_check=content``. A build
that stops on bad rows stores nothing. An entry holds the prepared tensors, so it is about as
large as the data in memory; its checksum is verified on load (``mmrun.data.cache``), so a
damaged entry is prepared again rather than used.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import torch

from mmrun.data.cache import TensorCache, cache_key, changed, file_digest
from mmrun.data.spec import DataSpec

log = logging.getLogger("mmrun")


class PreparedManifest:
    """What a manifest build returns, in the form it is cached in."""

    def __init__(self, splits: dict[str, dict[str, torch.Tensor]], spec: DataSpec, row_ids: dict[str, torch.Tensor],
                 skipped: dict | None, files: list) -> None:
        self.splits = splits
        self.spec = spec
        self.row_ids = row_ids
        self.skipped = skipped  # mmrun.data.validation skip report, or None when every row was good
        self.files = files  # fingerprints of the files the build read

    def to_payload(self) -> dict[str, Any]:
        return {"splits": self.splits, "spec": self.spec.to_dict(), "row_ids": self.row_ids,
                "skipped": self.skipped,
                "files": json.dumps(self.files)}  # one string: 100,000 small lists unpickle in 1.4 s, as JSON 0.08 s

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "PreparedManifest":
        return cls(payload["splits"], DataSpec.from_dict(payload["spec"]), payload["row_ids"], payload["skipped"],
                   json.loads(payload["files"]))


class PreparedCache:
    """Load or store the prepared build of the manifest at ``manifest`` under ``settings``."""

    def __init__(self, cache: TensorCache, manifest: str, settings: dict[str, Any]) -> None:
        self.cache = cache
        self.key = None
        manifest = os.path.expanduser(manifest)
        if cache.folder is not None and os.path.isfile(manifest):  # else the build reports the missing file
            self.key = cache_key({"prepared manifest": os.path.realpath(manifest), "blake2b": file_digest(manifest),
                                  "settings": settings})

    def load(self) -> PreparedManifest | None:
        """The cached build, or None when there is none or a file it read has changed since."""
        payload = self.cache.load(self.key) if self.key is not None else None
        if payload is None:
            return None
        prepared = PreparedManifest.from_payload(payload)
        stale = next((f[0] for f in prepared.files if changed(f)), None)
        if stale is not None:
            log.info("prepared data of this manifest is stale (%s changed); preparing it again", stale)
            return None
        return prepared

    def store(self, prepared: PreparedManifest) -> None:
        if self.key is not None:
            self.cache.store(self.key, prepared.to_payload())
