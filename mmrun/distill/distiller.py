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
from mmrun.distill.teacher import FeatureTap, Outputs, Teacher, retrieval_outputs

# The teacher's cached per-row outputs in a batch (``mmrun.distill.cache``): ``teacher.output.<name>``.
CACHED = PREFIX + "output."
CACHED_LOGITS, CACHED_FEATURES = CACHED + "logits", CACHED + "features"


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
        self.losses = nn.ModuleDict({name: LOSSES[name](kind, student_dim, teacher.width, temperature)
                                     for name in weights})
        self.alpha = alpha
        self.tap: FeatureTap | None = None
        self.student_scale = None  # a retrieval student's logit scale (its task's similarity_scale)

    @property
    def needs_features(self) -> bool:
        return any(loss.needs_features for loss in self.losses.values())

    def watch(self, task: nn.Module) -> None:
        """Keep the student's fused vector (a hook on its fusion) when a loss compares fused vectors,
        and a retrieval student's logit scale."""
        if self.needs_features:
            self.tap = FeatureTap(task.fusion)
        if task.family == "retrieval":
            self.student_scale = task.similarity_scale

    def teacher_outputs(self, batch: dict[str, torch.Tensor]) -> Outputs:
        """The teacher's outputs: cut from the cache with the batch when cached, else a forward pass."""
        cached = {key[len(CACHED):]: value for key, value in batch.items() if key.startswith(CACHED)}
        if not cached:
            return self.teacher(batch)
        if self.teacher.family == "retrieval":
            return retrieval_outputs(cached, self.teacher.model.task.similarity_scale().detach())
        return Outputs(cached["logits"], cached["features"])

    def student_outputs(self, outputs) -> Outputs:
        """The student's ``Outputs`` from its task's forward pass (logits, or a retrieval model's embeddings)."""
        if self.student_scale is not None:
            return retrieval_outputs(outputs, self.student_scale())
        return Outputs(outputs.float(), self.tap.value.float() if self.tap else None)

    def forward(self, label_loss: torch.Tensor, outputs,
                batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The step's loss and each distillation term (for the training log); ``outputs``: the
        student task's forward pass."""
        if not self.losses:
            return label_loss, {}
        teacher = self.teacher_outputs(batch)
        student = self.student_outputs(outputs)
        terms = {name: loss(student, teacher) for name, loss in self.losses.items()}
        distilled = sum(self.weights[name] * term for name, term in terms.items())
        return (1 - self.alpha) * label_loss + self.alpha * distilled, terms
