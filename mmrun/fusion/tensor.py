"""Tensor fusion and its low-rank factorisation: multiplicative interactions of every order
between modalities, built on the augmented vectors [1; z_m]."""

from __future__ import annotations

import math

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.errors import FusionError
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import ModalityProjection, masked_pooled

# Widest outer product tensor fusion may build; beyond it the user should pick lowrank.
MAX_TENSOR_WIDTH = 1 << 16


def with_one(z: torch.Tensor) -> torch.Tensor:
    """[1; z] along the last dimension; an absent (zeroed) z becomes [1; 0 ... 0]."""
    return torch.cat([torch.ones_like(z[..., :1]), z], dim=-1)


@register("tensor")
class TensorFusion(Fusion):
    """Tensor Fusion Network: h = W vec([1; z_1] (x) [1; z_2] (x) ... (x) [1; z_M]) + b with
    z_m = P_m x_m a small linear projection; an absent modality's factor is [1; 0 ... 0].

    The outer product is prod_m (width + 1) wide: 2401 for four modalities at width 6.
    Zadeh et al., "Tensor Fusion Network for Multimodal Sentiment Analysis", EMNLP 2017,
    arXiv:1707.07250.

    Args:
        dims: width of each modality's pooled vector (at least two modalities).
        width: width each modality is projected to before the outer product.
        hidden: width of the linear layer after the outer product; 0 returns the raw tensor.
        dropout: dropout on the flattened outer product.
    """

    min_modalities = 2
    alternatives = "lowrank, concat"

    def __init__(
        self, dims: dict[str, int], width: int = 6, hidden: int = 128, dropout: float = 0.0
    ):
        super().__init__(dims)
        tensor_width = (width + 1) ** len(dims)
        if tensor_width > MAX_TENSOR_WIDTH:
            raise FusionError(
                f"fusion=tensor with width={width} and {len(dims)} modalities builds a "
                f"{tensor_width}-wide outer product (limit {MAX_TENSOR_WIDTH}); lower "
                f"fusion.width or use fusion=lowrank"
            )
        self.project = ModalityProjection(dims, width)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(tensor_width, hidden) if hidden > 0 else nn.Identity()
        self.out_dim = hidden if hidden > 0 else tensor_width

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        z = with_one(self.project(encoded, present))  # [B, M, width + 1]
        fused = z[:, 0]
        for m in range(1, z.shape[1]):
            fused = (fused.unsqueeze(-1) * z[:, m].unsqueeze(1)).flatten(1)
        return self.head(self.dropout(fused))


@register("lowrank")
class LowRankFusion(Fusion):
    """Low-rank Multimodal Fusion: h = sum_r w_r prod_m (W_m^(r) [1; x_m]) + b, the tensor
    fusion weight W constrained to rank r; an absent modality's input is [1; 0 ... 0].

    Every factor W_m^(r), the rank weights w and the bias are registered parameters.
    Liu et al., "Efficient Low-rank Multimodal Fusion with Modality-Specific Factors",
    ACL 2018, arXiv:1806.00064.

    Args:
        dims: width of each modality's pooled vector (at least two modalities).
        rank: number of rank-one terms r.
        hidden: output width.
        dropout: dropout on the fused vector.
    """

    min_modalities = 2

    def __init__(
        self, dims: dict[str, int], rank: int = 4, hidden: int = 128, dropout: float = 0.0
    ):
        super().__init__(dims)
        self.rank, self.hidden = rank, hidden
        self.factors = nn.ParameterList(
            nn.Parameter(nn.init.xavier_normal_(torch.empty(rank, d + 1, hidden)))
            for d in dims.values()
        )
        self.rank_weights = nn.Parameter(torch.full((rank,), 1.0 / math.sqrt(rank)))
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.dropout = nn.Dropout(dropout)
        self.out_dim = hidden

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        fused = None
        for x, factor in zip(
            masked_pooled(encoded, present, self.modalities), self.factors, strict=True
        ):
            # [B, d+1] @ [d+1, rank * hidden] -> [B, rank, hidden]
            f = (with_one(x) @ factor.transpose(0, 1).flatten(1)).view(-1, self.rank, self.hidden)
            fused = f if fused is None else fused * f
        return self.dropout(torch.einsum("r,brh->bh", self.rank_weights, fused) + self.bias)
