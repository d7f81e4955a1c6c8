"""``task=auto|multiclass|binary|multilabel|regression``: fuse every modality, then a head.

The label type (and the number of outputs) comes from the data spec through
``mmrun.tasks.objectives``; the config may force a type the labels allow.
"""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import get_class
from omegaconf import DictConfig
from torch import nn

from mmrun.data.spec import DataSpec
from mmrun.encoders.base import mlp
from mmrun.fusion.budget import build_fusion
from mmrun.tasks.base import TaskFamily
from mmrun.tasks.objectives import build_objective, resolve_task_type


class PredictionTask(TaskFamily):
    """Fusion of all modalities -> MLP head -> the objective's loss and metrics.

    Args:
        spec, dims, fusion: see ``mmrun.tasks.base``.
        type: ``auto`` (the data's label type) or a type the labels allow.
        head_hidden: width of the head's hidden layer (0 = a linear head).
        dropout: dropout before the head's output layer.
        label_smoothing: for classification (Szegedy et al., CVPR 2016, arXiv:1512.00567).
    """

    family = "prediction"

    def __init__(self, spec: DataSpec, dims: dict[str, int], fusion: DictConfig, type: str = "auto",
                 head_hidden: int = 128, dropout: float = 0.1, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.objective = build_objective(resolve_task_type(type, spec), spec, label_smoothing=label_smoothing)
        self.monitor, self.monitor_mode = self.objective.monitor, self.objective.monitor_mode
        outputs = self.objective.num_outputs
        if get_class(fusion._target_).emits_logits:
            self.fusion = build_fusion(fusion, dims, num_outputs=outputs)
            self.head: nn.Module = nn.Identity()
        else:
            def head(width: int) -> nn.Module:
                return mlp(width, head_hidden, outputs, dropout)

            self.fusion = build_fusion(fusion, dims, head)
            self.head = head(self.fusion.out_dim)
        # One collection per split ("train" cannot be a ModuleDict key: it is a Module method).
        self.train_metrics = self.objective.metrics().clone(prefix="train/")
        self.val_metrics = self.objective.metrics().clone(prefix="val/")
        self.test_metrics = self.objective.metrics().clone(prefix="test/")

    @property
    def kind(self) -> str:
        return self.objective.kind

    def forward(self, encoded, batch) -> torch.Tensor:
        return self.head(self.fusion(encoded, batch["present"]))

    def loss(self, outputs, batch) -> torch.Tensor:
        return self.objective.loss(outputs, batch["label"])

    def update_metrics(self, outputs, batch, split):
        metrics = getattr(self, f"{split}_metrics")
        metrics.update(self.objective.predict(outputs.detach()), self.objective.metric_target(batch["label"]))
        return metrics

    def write_outputs(self, scoring) -> Path:
        """``predictions.csv``: every scored row's prediction (``mmrun.predictions``)."""
        from mmrun.predictions import write_predictions

        logits = torch.cat(scoring.trainer.predict(scoring.model, dataloaders=scoring.loader))
        path = scoring.run_dir / "predictions.csv"
        write_predictions(path, self.kind, self.objective.predict(logits),
                          scoring.tensors["label"] if scoring.labelled else None, scoring.row_ids, scoring.model.spec.class_names)
        return path

    def metric_names(self, split: str) -> list[str]:
        return list(getattr(self, f"{split}_metrics").keys(keep_base=False))
