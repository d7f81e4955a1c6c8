"""The distillation terms of a training step, added to the student's label loss.

``loss = (1 - alpha) * label_loss + alpha * sum_l w_l * L_l(student, teacher)`` over
``distill.losses`` (``mmrun.distill.losses``) with ``distill.weights`` (1 when not given);
Hinton et al. (2015) weight the soft targets against the hard labels the same way. With no
losses (``distill.losses=[]``) the step trains on the labels alone: the scratch student of a
distillation sweep, measured with its teacher beside it.
"""

from __future__ import annotations

import torch
from torch import nn

from mmrun.distill.inputs import PREFIX
from mmrun.distill.losses import LOSSES
from mmrun.distill.teacher import FeatureTap, Outputs, Teacher

# The teacher's cached outputs in a batch (``mmrun.distill.cache``).
CACHED_LOGITS, CACHED_FEATURES = PREFIX + "logits", PREFIX + "features"


class Distiller(nn.Module):
    """The loss terms (a submodule of the student, for the hint adapters) and the teacher (not a submodule).

    Args:
        teacher: the frozen teacher.
        weights: ``{loss name: weight}`` in ``distill.losses`` order.
        kind: the student's task kind (multiclass, binary, multilabel, regression).
        student_dim: the width of the student's fused vector.
        alpha: the weight of the distillation terms against the label loss.
        temperature: the softening temperature of ``kd``.
    """

    def __init__(self, teacher: Teacher, weights: dict[str, float], kind: str, student_dim: int, alpha: float,
                 temperature: float) -> None:
        super().__init__()
        self.teacher = teacher  # a plain object: never in the student's state_dict (mmrun.distill.teacher)
        self.weights = dict(weights)
        teacher_dim = teacher.model.task.fusion.out_dim
        self.losses = nn.ModuleDict({name: LOSSES[name](kind, student_dim, teacher_dim, temperature)
                                     for name in weights})
        self.alpha = alpha
        self.tap: FeatureTap | None = None

    @property
    def needs_features(self) -> bool:
        return any(loss.needs_features for loss in self.losses.values())

    def watch(self, task: nn.Module) -> None:
        """Keep the student's fused vector (a hook on its fusion) when a loss compares fused vectors."""
        if self.needs_features:
            self.tap = FeatureTap(task.fusion)

    def teacher_outputs(self, batch: dict[str, torch.Tensor]) -> Outputs:
        """The teacher's outputs: cut from the cache with the batch when cached, else a forward pass."""
        if CACHED_LOGITS in batch:
            return Outputs(batch[CACHED_LOGITS], batch[CACHED_FEATURES])
        return self.teacher(batch)

    def forward(self, label_loss: torch.Tensor, logits: torch.Tensor,
                batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The step's loss and each distillation term (for the training log)."""
        if not self.losses:
            return label_loss, {}
        teacher = self.teacher_outputs(batch)
        student = Outputs(logits.float(), self.tap.value.float() if self.tap else None)
        terms = {name: loss(student, teacher) for name, loss in self.losses.items()}
        distilled = sum(self.weights[name] * term for name, term in terms.items())
        return (1 - self.alpha) * label_loss + self.alpha * distilled, terms
