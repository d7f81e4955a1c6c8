"""The contract between a task family and ``MultimodalModule`` (DESIGN.md, "Task family").

The module keeps one encoder per modality the task reads and the optimisation loop; the task
owns everything after the encoders. Per step the module calls ``prepare_batch``, encodes,
then ``forward`` (encoded modalities -> the task's outputs), ``loss`` and ``update_metrics``;
at the end of each validation and test epoch it logs ``epoch_metrics`` (metrics that need the
whole split). ``attach_data`` hands the task the datamodule once, before training or scoring.
A family is chosen by ``task._target_`` and built with ``mmrun.components.build`` from its
config keys plus ``spec`` (the data's facts), ``dims`` (``{modality: encoder width}``, in spec
order) and ``fusion`` (the fusion config).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
import torchmetrics
from omegaconf import DictConfig
from torch import nn

from mmrun.data.spec import DataSpec
from mmrun.encoders.base import EncoderOutput


class TaskFamily(nn.Module, ABC):
    """Base class of the task families (see the module docstring).

    Attributes:
        family: the family's name (``prediction``, ``retrieval``, ``recommendation``);
            ``kind`` is what metrics.json calls the task (the label type for prediction).
        monitor, monitor_mode: the validation metric that picks the best checkpoint.
    """

    family: ClassVar[str] = ""
    uses_decoder: ClassVar[bool] = False  # built with the decoder config too (``decoder=...``: captioning)
    monitor: str
    monitor_mode: str
    # Set by mmrun eval and predict: keep what write_outputs needs while scoring.
    record_outputs: bool = False

    @classmethod
    def modalities_read(cls, task_cfg: DictConfig, spec: DataSpec) -> list[str]:
        """The modalities the task uses (an encoder is built for each), in spec order."""
        return spec.modality_names

    @abstractmethod
    def forward(self, encoded: dict[str, EncoderOutput], batch: dict[str, torch.Tensor]) -> Any:
        """The task's outputs (logits, embeddings) from the encoded modalities and the batch."""

    @abstractmethod
    def loss(self, outputs: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of a batch."""

    def update_metrics(self, outputs: Any, batch: dict[str, torch.Tensor],
                       split: str) -> torchmetrics.MetricCollection | None:
        """Record a batch; return a collection for the module to log per epoch, or None."""
        return None

    def start_epoch(self, split: str, encode: Callable[[dict], dict]) -> None:
        """Called as a validation or test epoch starts, with the weights it evaluates in place;
        ``encode`` is the module's encoders (a batch dict -> encoded modalities), for a task that
        ranks against more than the split's rows (recommendation: the item catalogue)."""

    def epoch_metrics(self, split: str) -> dict[str, torch.Tensor]:
        """Metrics over the whole split, computed once its last batch is recorded (then reset)."""
        return {}

    def attach_data(self, datamodule: Any, split: str = "test") -> None:
        """Take what the task needs from the datamodule besides batches (``split``: the rows that
        the test stage scores; ``mmrun eval split=val`` scores validation rows)."""

    def prepare_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch the encoders see (recommendation adds each row's item content)."""
        return batch

    def modality_groups(self, read: list[str]) -> list[list[str]]:
        """The modalities ``model.modality_dropout`` may drop (``mmrun.modality_dropout``), in groups
        of which every sample keeps at least one present; ``read`` are the modalities encoded.
        One group: a sample never loses all of its modalities."""
        return [list(read)]

    @abstractmethod
    def metric_names(self, split: str) -> list[str]:
        """Every metric the task logs for ``split`` (``val/...``), for checking ``monitor``."""

    @property
    def kind(self) -> str:
        """What metrics.json calls the task (``multiclass``, ``retrieval``, ...)."""
        return self.family

    def report(self, split: str) -> dict[str, Any]:
        """Facts about the last evaluation of ``split`` for metrics.json (rows counted, skipped)."""
        return {}

    @abstractmethod
    def write_outputs(self, scoring: Any) -> Path:
        """Write the per-row outputs of ``scoring`` (``mmrun.predict.Scoring``); return the file."""

    def batch_size(self, batch: dict[str, torch.Tensor]) -> int:
        return len(batch["present"])
