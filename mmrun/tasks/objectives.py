"""Prediction objectives: per label type, the head's output width, the loss, the metrics and
the monitored metric (used by ``mmrun.tasks.prediction`` and the classical baseline).

The type and the number of outputs come from the data spec; ``conf/task/`` only holds
choices (head width, dropout, label smoothing) and may force a type the labels allow.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchmetrics
from torchmetrics import classification as tmc
from torchmetrics import regression as tmr

from mmrun.data.spec import TASK_TYPES, DataSpec
from mmrun.errors import ConfigError


@dataclass
class Task:
    """Base: ``num_outputs`` logits per sample; subclasses define loss, metrics, predictions."""

    num_outputs: int
    label_smoothing: float = 0.0
    monitor: str = "val/acc"
    monitor_mode: str = "max"

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # every concrete task defines its loss

    def metrics(self) -> torchmetrics.MetricCollection:
        raise NotImplementedError  # every concrete task defines its metrics

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Metric-ready predictions (probabilities or values) from logits."""
        raise NotImplementedError  # every concrete task defines its predictions

    @property
    def kind(self) -> str:
        """The label type: multiclass, binary, multilabel or regression."""
        return type(self).__name__.removesuffix("Task").lower()

    def metric_target(self, target: torch.Tensor) -> torch.Tensor:
        """Labels in the dtype the task's metrics expect."""
        return target


class MulticlassTask(Task):
    def loss(self, logits, target):
        return F.cross_entropy(logits.float(), target, label_smoothing=self.label_smoothing)

    def metrics(self):
        k = self.num_outputs
        return torchmetrics.MetricCollection(
            {
                "acc": tmc.MulticlassAccuracy(num_classes=k, average="micro"),
                "f1_macro": tmc.MulticlassF1Score(num_classes=k, average="macro"),
                "auroc": tmc.MulticlassAUROC(num_classes=k, average="macro"),
            }
        )

    def predict(self, logits):
        return logits.float().softmax(-1)


class BinaryTask(Task):
    def loss(self, logits, target):
        target = target.float()
        if self.label_smoothing:
            target = target * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        return F.binary_cross_entropy_with_logits(logits.squeeze(-1).float(), target)

    def metrics(self):
        return torchmetrics.MetricCollection(
            {"acc": tmc.BinaryAccuracy(), "f1": tmc.BinaryF1Score(), "auroc": tmc.BinaryAUROC()}
        )

    def predict(self, logits):
        return logits.squeeze(-1).float().sigmoid()


class MultilabelTask(Task):
    def loss(self, logits, target):
        return F.binary_cross_entropy_with_logits(logits.float(), target.float())

    def metrics(self):
        k = self.num_outputs
        return torchmetrics.MetricCollection(
            {
                "f1_micro": tmc.MultilabelF1Score(num_labels=k, average="micro"),
                "f1_macro": tmc.MultilabelF1Score(num_labels=k, average="macro"),
                "map": tmc.MultilabelAveragePrecision(num_labels=k, average="macro"),
            }
        )

    def predict(self, logits):
        return logits.float().sigmoid()

    def metric_target(self, target):
        return target.long()


class RegressionTask(Task):
    def loss(self, logits, target):
        return F.mse_loss(logits.squeeze(-1).float(), target.float())

    def metrics(self):
        return torchmetrics.MetricCollection(
            {
                "mae": tmr.MeanAbsoluteError(),
                "mse": tmr.MeanSquaredError(),
                "r2": tmr.R2Score(),
                "pearson": tmr.PearsonCorrCoef(),
            }
        )

    def predict(self, logits):
        return logits.squeeze(-1).float()


_TASKS = {
    "multiclass": (MulticlassTask, "val/acc", "max"),
    "binary": (BinaryTask, "val/acc", "max"),
    "multilabel": (MultilabelTask, "val/map", "max"),
    "regression": (RegressionTask, "val/mse", "min"),
}

# Which task types the labels of a given data task can be trained as.
_COMPATIBLE = {
    "multiclass": {"multiclass"},
    "binary": {"binary", "multiclass"},
    "multilabel": {"multilabel"},
    "regression": {"regression"},
}


def resolve_task_type(requested: str, spec: DataSpec) -> str:
    """The task type to train: the data's own unless ``task.type`` forces a compatible one."""
    if requested == "auto":
        return spec.task
    if requested not in TASK_TYPES:
        raise ConfigError(f"task.type={requested!r} is unknown; use auto or one of {TASK_TYPES}")
    if requested not in _COMPATIBLE[spec.task]:
        raise ConfigError(
            f"task={requested} cannot train on this dataset's {spec.task} labels; "
            f"use task=auto or task={spec.task}"
        )
    return requested


def build_objective(task_type: str, spec: DataSpec, label_smoothing: float = 0.0) -> Task:
    """Build the objective for ``task_type`` with sizes from the data spec."""
    cls, monitor, mode = _TASKS[task_type]
    num_outputs = 2 if (task_type == "multiclass" and spec.task == "binary") else spec.num_outputs
    return cls(num_outputs=num_outputs, label_smoothing=label_smoothing, monitor=monitor, monitor_mode=mode)
