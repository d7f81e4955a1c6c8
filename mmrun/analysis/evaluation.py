"""Score a trained model on one split under a corruption, through the model's own evaluation path.

``Evaluator`` holds one loaded model and the split's tensors on the model's device. ``score``
runs every batch as ``MultimodalModule`` does in a test epoch (``task.start_epoch``, then
per batch ``task.prepare_batch`` -> ``model.encode`` -> ``task`` -> ``task.update_metrics``,
then the task's collection and ``epoch_metrics``), with the batches cut exactly as the test
loader cuts them, so an unchanged split reproduces the test metric of ``trainer.test``
bit for bit. The metric state is reset after each condition.

A condition changes some modalities (``Missing`` rows, or ``Replaced`` data); the others are
as in the clean split. Encoders see one modality each and run per sample in eval mode, so
the encodings of the clean split and of an all-missing (zero-filled) split are computed
once per batch and reused (``cache``): a missing-rows condition costs only the task's
fusion and head, a noisy one one encoder. The cache is skipped when it would not fit in
``CACHE_BYTES``; then every condition encodes its whole batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from mmrun.encoders.base import EncoderOutput
from mmrun.errors import AnalysisError

CACHE_BYTES = 2 * 1024**3  # the clean and zero-filled encodings of the split, at most
SUPPORTED_FAMILIES = ("prediction", "retrieval")


@dataclass(frozen=True)
class Missing:
    """``rows [N]`` (bool) of a modality zero-filled and marked absent in ``present``."""

    rows: torch.Tensor

    def cut(self, x: torch.Tensor, present: torch.Tensor, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        hit = self.rows[rows]
        return x.masked_fill(hit.view(-1, *([1] * (x.dim() - 1))), 0), present & ~hit


@dataclass(frozen=True)
class Replaced:
    """New data ``x [N, ...]`` for a modality, with its ``present`` column."""

    x: torch.Tensor
    present: torch.Tensor

    def cut(self, x: torch.Tensor, present: torch.Tensor, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[rows], self.present[rows]


Change = Missing | Replaced


def monitored_metric(model, split: str) -> tuple[str, str]:
    """The metric the analysis reports and its direction: the run's monitor when it is one of the
    task's metrics (not the loss), else the task's own; named for ``split`` (``test/acc``)."""
    task = model.task
    if task.family not in SUPPORTED_FAMILIES:
        raise AnalysisError(
            f"the analysis scores prediction and retrieval tasks; this checkpoint's task is {task.family} "
            f"(it ranks a catalogue encoded apart from the scored rows, which the corruptions do not reach): "
            f"analyse a prediction or retrieval run")
    monitor, mode = task.monitor, task.monitor_mode
    chosen = model.cfg.get("monitor")
    if chosen in task.metric_names("val") and chosen != monitor:
        monitor, mode = chosen, model.cfg.get("monitor_mode", mode)
    return f"{split}/{monitor.split('/', 1)[1]}", mode


def _select(hit: torch.Tensor, absent: EncoderOutput, clean: EncoderOutput) -> EncoderOutput:
    """Per row: ``absent`` where ``hit``, else ``clean`` (every field of the encoder output)."""
    return type(clean)(*(torch.where(hit.view(-1, *([1] * (a.dim() - 1))), a, c) for a, c in zip(absent, clean)))


class Evaluator:
    """One model, one split on its device; ``score(changes)`` gives the monitored metric.

    Args:
        model: a ``MultimodalModule`` (put in eval mode here).
        tensors: the split's tensors (``label``, ``present``, one per modality).
        batch_size: rows per batch, as the test loader cuts them.
        split: the split's name, for the metric's name (``test/acc``).
        precision: a context for each forward pass (the trainer's precision plugin).
        cache: keep the clean and zero-filled encodings (``None``: when they fit in ``CACHE_BYTES``).
    """

    def __init__(self, model, tensors: dict[str, torch.Tensor], batch_size: int, split: str = "test",
                 precision: Callable[[], Any] = contextlib.nullcontext, cache: bool | None = None) -> None:
        self.model = model.eval()
        self.metric, self.mode = monitored_metric(model, split)
        self.tensors = {key: value.to(model.device) for key, value in tensors.items()}
        self.size = len(self.tensors["present"])
        self.batch_size = batch_size
        self.batches = [slice(start, min(start + batch_size, self.size)) for start in range(0, self.size, batch_size)]
        self.modalities = list(model.modalities)
        self.specs = {m.name: m for m in model.spec.modalities if m.name in self.modalities}
        self.columns = {name: model.spec.modality_names.index(name) for name in self.modalities}
        self.precision = precision
        self.evaluations = 0  # conditions scored (for the cost report)
        self.clean_encoded: list[dict[str, EncoderOutput]] = []
        self.absent_encoded: list[dict[str, EncoderOutput]] = []
        if cache is None:
            cache = self._cache_fits(batch_size)
        if cache:
            self._fill_cache()
        self.clean = self.score({})

    # ------------------------------------------------------------------ cache
    def _batch(self, rows: slice) -> dict[str, torch.Tensor]:
        return {key: value[rows] for key, value in self.tensors.items()}

    @torch.inference_mode()
    def _encode(self, batch: dict[str, torch.Tensor]) -> dict[str, EncoderOutput]:
        with self.precision():
            return self.model.encode(batch)

    def _cache_fits(self, batch_size: int) -> bool:
        first = self._encode(self.model.task.prepare_batch(self._batch(self.batches[0])))
        size = sum(t.numel() * t.element_size() for output in first.values() for t in output)
        return 2 * size * len(self.batches) <= CACHE_BYTES

    def _fill_cache(self) -> None:
        for rows in self.batches:
            batch = self.model.task.prepare_batch(self._batch(rows))
            self.clean_encoded.append(self._encode(batch))
            self.absent_encoded.append(self._encode({name: torch.zeros_like(batch[name]) for name in self.modalities}))

    def _encoded(self, index: int, batch: dict[str, torch.Tensor], changes: dict[str, Change]) -> dict[str, Any]:
        """The batch's encodings: cached where the data is clean or zero-filled, else encoded now."""
        if not self.clean_encoded:
            return self._encode(batch)
        encoded = dict(self.clean_encoded[index])
        fresh = [name for name, change in changes.items() if isinstance(change, Replaced)]
        for name, change in changes.items():
            if isinstance(change, Missing):
                hit = change.rows[self.batches[index]]
                encoded[name] = _select(hit, self.absent_encoded[index][name], encoded[name])
        encoded.update(self._encode({name: batch[name] for name in fresh}) if fresh else {})
        return encoded

    # ---------------------------------------------------------------- scoring
    @torch.inference_mode()
    def score(self, changes: dict[str, Change]) -> float:
        """The monitored metric of the split with ``changes`` applied (``{}``: the clean split)."""
        task = self.model.task
        record, task.record_outputs = task.record_outputs, False  # no rankings.csv material
        try:
            task.start_epoch("test", self.model.encode)
            collection = None
            for index, rows in enumerate(self.batches):
                batch = self._batch(rows)
                present = batch["present"].clone()
                for name, change in changes.items():
                    column = self.columns[name]
                    batch[name], present[:, column] = change.cut(batch[name], present[:, column], rows)
                batch["present"] = present
                batch = task.prepare_batch(batch)
                encoded = self._encoded(index, batch, changes)
                with self.precision():
                    outputs = task(encoded, batch)
                collection = task.update_metrics(outputs, batch, "test") or collection
            values = {}
            if collection is not None:
                values.update(collection.compute())
                collection.reset()
            values.update(task.epoch_metrics("test"))
        finally:
            task.record_outputs = record
        self.evaluations += 1
        name = f"test/{self.metric.split('/', 1)[1]}"
        if name not in values:
            raise AnalysisError(f"the task logs no {self.metric} (it logs {', '.join(sorted(values)) or 'nothing'}); "
                                f"analyse a run whose monitor is one of the task's metrics")
        return float(values[name])
