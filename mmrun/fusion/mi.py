"""Multiplicative interactions."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import ModalityProjection


class MultiplicativeInteraction(nn.Module):
    """f(x, z) = z^T W x + U z + V x + b, W a 3-tensor: one linear map of [vec(x z^T); z; x]."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width * width + 2 * width, width)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        outer = (x.unsqueeze(-1) * z.unsqueeze(1)).flatten(1)
        return self.linear(torch.cat([outer, z, x], dim=-1))


@register("mi")
class MIFusion(Fusion):
    """Multiplicative interactions, applied sequentially over modalities:
    h_1 = P_1 x_1, h_k = z_k^T W_k h_{k-1} + U_k z_k + V_k h_{k-1} + b_k with z_k = P_k x_k.

    Each step is the paper's two-input MI layer with the running state as x and the next
    modality as the context z; a step whose modality is absent is skipped (h_k = h_{k-1}),
    and an absent first modality starts the chain from zeros. Jayakumar et al.,
    "Multiplicative Interactions and Where to Find Them", ICLR 2020 (openreview rylnK6VtDH).

    With two modalities this is the paper's layer, whose function class does not depend on
    which modality is x (the 3-tensor W holds either order). For M > 2 the chain is a
    deliberate, order-dependent variant: modalities enter in the data's modality order (the
    order of the ``present`` columns, i.e. of the data spec; the built-in synthetic data sorts
    them by name), and the pairs of earlier modalities reach later steps only through the
    width-wide state h, while the last modality multiplies the whole state. The paper defines
    MI for two inputs only; an order-free M-way form needs an (M+1)-way weight tensor,
    width^(M+1) weights, which is the full tensor product that ``tensor`` (and, factorised,
    ``lowrank``) already offer, whereas the chain stays at (M-1) width^3. MultiBench's 3-modal
    MI also fixes an order (the first two modalities generate the weights applied to the
    third), but without the bottleneck, at d_1 d_2 d_3 d_out weights.

    Args:
        dims: width of each modality's pooled vector (at least two modalities).
        width: width of the projections and of the output; each step holds width^3 weights.
        dropout: dropout on the fused vector.
    """

    equivalence = "mi"
    budget_knob = "width"
    min_modalities = 2

    def __init__(self, dims: dict[str, int], width: int = 32, dropout: float = 0.0) -> None:
        super().__init__(dims)
        self.project = ModalityProjection(dims, width)
        self.steps = nn.ModuleList(MultiplicativeInteraction(width) for _ in range(len(dims) - 1))
        self.dropout = nn.Dropout(dropout)
        self.out_dim = width

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        z = self.project(encoded, present)  # [B, M, W], absent rows zero
        h = z[:, 0]
        for k, step in enumerate(self.steps, start=1):
            h = torch.where(present[:, k : k + 1], step(h, z[:, k]), h)
        return self.dropout(h)
