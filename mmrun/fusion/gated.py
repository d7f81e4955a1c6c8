"""Gated Multimodal Unit."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import ModalityProjection, masked_pooled, masked_softmax


@register("gated")
class GatedFusion(Fusion):
    """Gated Multimodal Unit for M modalities: h_m = tanh(W_m z_m),
    g = softmax_m(G [z_1; ...; z_M]) (per feature, over present modalities), h = sum_m g_m * h_m.

    With two modalities the softmax gate is exactly the paper's sigmoid gate
    z = sigmoid(W_z [x_v; x_t]), h = z h_v + (1 - z) h_t. Arevalo et al., "Gated Multimodal
    Units for Information Fusion", ICLR Workshop 2017, arXiv:1702.01992.

    Args:
        dims: width of each modality's pooled vector.
        hidden: width of each h_m and of the output.
        dropout: dropout on the fused vector.
    """

    equivalence = "gated"

    def __init__(self, dims: dict[str, int], hidden: int = 128, dropout: float = 0.0) -> None:
        super().__init__(dims)
        self.project = ModalityProjection(dims, hidden, activation=nn.Tanh())
        self.gate = nn.Linear(sum(dims.values()), len(dims) * hidden)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = hidden

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        h = self.project(encoded, present)  # [B, M, H]
        inputs = torch.cat(masked_pooled(encoded, present, self.modalities), dim=-1)
        gates = masked_softmax(self.gate(inputs).view_as(h), present.unsqueeze(-1), dim=1)
        return self.dropout((gates * h).sum(1))
