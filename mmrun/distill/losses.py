"""Distillation losses (``distill.losses=[kd,hint,rkd]``), one registered class per name.

Each is an ``nn.Module`` built from the task kind, the widths of the student's and the
teacher's fused vectors and ``distill.temperature``; ``forward(student, teacher)`` compares two
``Outputs`` (logits and fused vectors, or a retrieval model's embeddings: ``mmrun.distill.teacher``)
and returns a scalar.
Written here rather than taken from torchdistill: its losses read module outputs by module
path from forward-hook dicts, and the package requires torchvision.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from mmrun.distill.teacher import Outputs

LOSSES: dict[str, type[DistillLoss]] = {}
L = TypeVar("L", bound=type)


def register(name: str) -> Callable[[L], L]:
    """Class decorator: make a loss available as ``distill.losses=[<name>]``."""

    def add(cls: L) -> L:
        LOSSES[name] = cls
        return cls

    return add


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str, temperature: float) -> torch.Tensor:
    """Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network", NIPS workshop 2015,
    arXiv:1503.02531: ``T^2 KL(softmax(t / T) || softmax(s / T))``, averaged over the batch.

    The ``T^2`` keeps the gradient's scale independent of the temperature. Binary and multilabel
    logits are per-label sigmoids: the Bernoulli KL of each label, averaged over labels and rows,
    times ``T^2``. Regression has no distribution to soften: the mean squared error to the
    teacher's output.
    """
    if kind == "regression":
        return F.mse_loss(student, teacher)
    s, t = student / temperature, teacher / temperature
    if kind == "multiclass":
        kl = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="batchmean")
    else:  # KL(p || q) = H(p, q) - H(p) per label, with p = sigmoid(t / T)
        p = torch.sigmoid(t)
        kl = F.binary_cross_entropy_with_logits(s, p) - F.binary_cross_entropy_with_logits(t, p)
    return kl * temperature**2


def similarity_kd(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor],
                  temperature: float) -> torch.Tensor:
    """Affinity mimicking (Wu et al., "TinyCLIP: CLIP Distillation via Affinity Mimicking and Weight
    Inheritance", ICCV 2023, arXiv:2309.12314): Hinton's KD on the batch's similarity distributions.

    ``S = scale * Q @ T^T`` over the rows whose query and target are valid for both models, each
    model with its own embeddings and logit scale; the loss is
    ``T^2 (KL(softmax(S_t / T) || softmax(S_s / T)) + KL(softmax(S_t^T / T) || softmax(S_s^T / T))) / 2``,
    query -> target and target -> query, averaged over the rows.
    """
    rows = student["query_valid"] & teacher["query_valid"] & student["target_valid"] & teacher["target_valid"]
    if not rows.any():
        return student["queries"].sum() * 0.0  # no pair to compare; keeps the graph

    def similarities(side: dict[str, torch.Tensor]) -> torch.Tensor:
        return side["scale"] * side["queries"][rows].float() @ side["targets"][rows].float().T / temperature

    s, t = similarities(student), similarities(teacher)

    def kl(s_logits: torch.Tensor, t_logits: torch.Tensor) -> torch.Tensor:
        return F.kl_div(F.log_softmax(s_logits, -1), F.log_softmax(t_logits, -1), log_target=True,
                        reduction="batchmean")

    return (kl(s, t) + kl(s.T, t.T)) / 2 * temperature**2


class DistillLoss(nn.Module, ABC):
    """Base: ``needs_features`` losses compare fused vectors (a hook keeps them), the others logits;
    ``for_retrieval`` losses also compare retrieval models (``Outputs.pairs``)."""

    needs_features: ClassVar[bool] = False
    for_retrieval: ClassVar[bool] = False

    def __init__(self, kind: str, student_dim: int, teacher_dim: int, temperature: float) -> None:
        super().__init__()
        self.kind, self.temperature = kind, temperature

    @abstractmethod
    def forward(self, student: Outputs, teacher: Outputs) -> torch.Tensor:
        """The loss term comparing the student's outputs with the teacher's."""


@register("kd")
class KD(DistillLoss):
    """Soft targets (``kd_loss``; Hinton et al. 2015, arXiv:1503.02531); for a retrieval student the
    soft targets are the teacher's similarity distributions over the batch (``similarity_kd``)."""

    for_retrieval = True

    def forward(self, student, teacher):
        if self.kind == "retrieval":
            return similarity_kd(student.pairs, teacher.pairs, self.temperature)
        return kd_loss(student.logits, teacher.logits, self.kind, self.temperature)


@register("hint")
class Hint(DistillLoss):
    """FitNets hint (Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015, arXiv:1412.6550):
    ``|| W s - t ||^2`` (mean over elements) between the fused vectors, through a learned linear
    regressor ``W`` from the student's width to the teacher's."""

    needs_features = True

    def __init__(self, kind, student_dim, teacher_dim, temperature):
        super().__init__(kind, student_dim, teacher_dim, temperature)
        self.adapter = nn.Linear(student_dim, teacher_dim)

    def forward(self, student, teacher):
        return F.mse_loss(self.adapter(student.features), teacher.features)


def _distances(x: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances divided by their mean over distinct pairs (RKD's ``psi_D``)."""
    squared = x.pow(2).sum(1)
    d = (squared.unsqueeze(1) + squared.unsqueeze(0) - 2 * x @ x.t()).clamp(min=1e-12).sqrt()
    d = d * (1 - torch.eye(len(x), device=x.device, dtype=x.dtype))  # sqrt(eps) on the diagonal -> 0
    return d / d[d > 0].mean().clamp(min=1e-12)


def _angles(x: torch.Tensor) -> torch.Tensor:
    """Cosines of the angles at every sample j between samples i and k (RKD's ``psi_A``), flattened."""
    e = F.normalize(x.unsqueeze(0) - x.unsqueeze(1), p=2, dim=2)
    return torch.bmm(e, e.transpose(1, 2)).reshape(-1)


@register("rkd")
class RKD(DistillLoss):
    """Relational KD (Park et al., "Relational Knowledge Distillation", CVPR 2019, arXiv:1904.05068):
    ``Huber(psi_D(s), psi_D(t)) + 2 Huber(psi_A(s), psi_A(t))`` over the pairs and triplets of the
    batch's fused vectors (the paper's weights 1 and 2); relations, not coordinates, so the two
    widths may differ and no adapter is needed."""

    needs_features = True

    def forward(self, student, teacher):
        s, t = student.features, teacher.features
        return (F.smooth_l1_loss(_distances(s), _distances(t))
                + 2.0 * F.smooth_l1_loss(_angles(s), _angles(t)))
