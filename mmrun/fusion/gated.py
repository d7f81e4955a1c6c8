"""Gated Multimodal Unit."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.errors import FusionError
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import ModalityProjection, masked_pooled, masked_softmax

GATES = ("softmax", "sigmoid")


@register("gated")
class GatedFusion(Fusion):
    """Gated Multimodal Unit for M modalities: h_m = tanh(W_m x_m), h = sum_m g_m * h_m, with
    per-feature gates g = softmax_m(G [x_1; ...; x_M]) over the present modalities
    (``gate="softmax"``, the default) or g_m = sigmoid(G_m [x_1; ...; x_M]) (``gate="sigmoid"``).

    Arevalo et al., "Gated Multimodal Units for Information Fusion", ICLR Workshop 2017,
    arXiv:1702.01992. With two modalities the softmax gate is exactly the paper's bimodal GMU,
    z = sigmoid(W_z [x_v; x_t]), h = z h_v + (1 - z) h_t (W_z = G_v - G_t), which is why it is
    the default. For M > 2 the paper's general form has one independent sigmoid gate per
    modality; that is ``gate="sigmoid"``. The softmax default is a deliberate variant there:
    it keeps the gates a convex combination (the output stays in [-1, 1] and its scale does
    not grow with M or with how many modalities a sample has), and it stays the bimodal GMU
    at M = 2, where independent sigmoids would be a different, larger function than the paper's.

    An absent modality's input is zeroed before every weight, its h_m is 0 and its gate is 0
    (the softmax renormalises over the present ones).

    Args:
        dims: width of each modality's pooled vector.
        hidden: width of each h_m and of the output.
        gate: ``"softmax"`` (gates sum to 1 per feature) or ``"sigmoid"`` (independent gates).
        dropout: dropout on the fused vector.
    """

    equivalence = "gated"

    def __init__(
        self,
        dims: dict[str, int],
        hidden: int = 128,
        gate: str = "softmax",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        if gate not in GATES:
            raise FusionError(
                f"fusion.gate={gate!r} is not a gate of fusion=gated; "
                f"choose one of: {', '.join(GATES)}"
            )
        self.gate_kind = gate
        self.project = ModalityProjection(dims, hidden, activation=nn.Tanh())
        self.gate = nn.Linear(sum(dims.values()), len(dims) * hidden)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = hidden

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        h = self.project(encoded, present)  # [B, M, H]
        inputs = torch.cat(masked_pooled(encoded, present, self.modalities), dim=-1)
        logits = self.gate(inputs).view_as(h)
        if self.gate_kind == "softmax":
            gates = masked_softmax(logits, present.unsqueeze(-1), dim=1)
        else:
            gates = torch.sigmoid(logits).masked_fill(~present.unsqueeze(-1), 0.0)
        return self.dropout((gates * h).sum(1))
