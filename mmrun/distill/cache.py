"""``distill.cache_teacher=true``: the teacher's outputs on the training split, computed once.

The teacher is frozen and in eval mode, and training batches are cut from fixed tensors (no
augmentation of the inputs; ModDrop drops modalities from the student's view only), so its
outputs for a training row never change. They are computed once, in evaluation batches, and
stored beside the split's tensors as ``teacher.output.<name>`` (``logits`` and ``features``, or a
retrieval teacher's ``queries``, ``targets`` and their ``*_valid`` flags): every batch
then carries them, and no training step runs the teacher. They are kept in the data cache
(``mmrun.data.cache``: ``dataset.cache_dir``, else ``$MMRUN_CACHE_DIR``, else
``~/.cache/mmrun``) under a key made of the teacher checkpoint's fingerprint and a checksum of
the teacher's input tensors, so every job of a sweep that trains on the same rows against the
same teacher reads them instead of computing them.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path

import torch

from mmrun.data.cache import TensorCache, cache_key, checksum, default_cache_dir, file_fingerprint
from mmrun.data.loader import TensorBatchLoader
from mmrun.distill.distiller import CACHED
from mmrun.distill.inputs import teacher_view
from mmrun.distill.teacher import Teacher

log = logging.getLogger("mmrun")


def teacher_outputs(teacher: Teacher, tensors: dict[str, torch.Tensor], batch_size: int,
                    device: torch.device) -> dict[str, torch.Tensor]:
    """The teacher's per-row outputs (``Outputs.per_row``: logits and fused vectors, or a retrieval
    model's embeddings) for every row of ``tensors`` (a student's split), on the CPU."""
    parts: dict[str, list[torch.Tensor]] = defaultdict(list)
    for batch in TensorBatchLoader(tensors, batch_size=batch_size):
        outputs = teacher({key: value.to(device) for key, value in batch.items()})
        for key, value in outputs.per_row().items():
            parts[key].append(value.cpu())
    return {key: torch.cat(values) for key, values in parts.items()}


def cache_teacher_outputs(teacher: Teacher, datamodule, folder: str | Path | None, device: torch.device) -> str:
    """Add the teacher's outputs to the training split (module docstring); ``read`` or ``computed``.

    ``folder``: ``dataset.cache_dir``; None: the default cache folder.
    """
    tensors = datamodule.splits["train"]
    key = cache_key({"distill": "teacher outputs", "teacher": file_fingerprint(teacher.path),
                     "inputs": checksum(teacher_view(tensors, teacher.modalities))})
    store = TensorCache(folder if folder is not None else default_cache_dir())
    payload, status = store.load(key), "read"
    if payload is None:
        started = time.perf_counter()
        payload, status = teacher_outputs(teacher, tensors, datamodule.eval_batch_size, device), "computed"
        store.store(key, payload)
        log.info("teacher outputs on %d training rows computed in %.1f s and cached", len(tensors["present"]),
                 time.perf_counter() - started)
    tensors.update({CACHED + key: value for key, value in payload.items()})
    return status
