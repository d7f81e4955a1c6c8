"""Attention over modalities."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import ModalityProjection, masked_softmax


@register("attention")
class AttentionFusion(Fusion):
    """Per-sample attention weights over projected modalities: h = sum_m a_m W_m z_m,
    a = softmax_m(score(W_m z_m)) over the modalities present in the sample.

    After TorchMultimodal's ``AttentionFusionModule`` (facebookresearch/multimodal), itself in
    the line of attention-based fusion such as Hori et al., "Attention-Based Multimodal Fusion
    for Video Description", ICCV 2017, arXiv:1701.03126.

    Args:
        dims: width of each modality's pooled vector.
        hidden: common width every modality is projected to (the output width).
        dropout: dropout on the fused vector.
    """

    equivalence = "attention"

    def __init__(self, dims: dict[str, int], hidden: int = 128, dropout: float = 0.0) -> None:
        super().__init__(dims)
        self.project = ModalityProjection(dims, hidden)
        self.score = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.dropout = nn.Dropout(dropout)
        self.out_dim = hidden

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        projected = self.project(encoded, present)  # [B, M, hidden], zero where absent
        weights = masked_softmax(self.score(projected).squeeze(-1), present, dim=1)
        return self.dropout((weights.unsqueeze(-1) * projected).sum(1))
