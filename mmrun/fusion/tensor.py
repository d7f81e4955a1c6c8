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

    The outer product is prod_m (width + 1) wide: 2401 for four modalities at width 6, the
    default (conf/fusion/tensor.yaml), which ``lowrank`` shares so that at defaults it is the
    low-rank factorisation of this very tensor.
    Zadeh et al., "Tensor Fusion Network for Multimodal Sentiment Analysis", EMNLP 2017,
    arXiv:1707.07250.

    Args:
        dims: width of each modality's pooled vector (at least two modalities).
        width: width each modality is projected to before the outer product.
        hidden: width of the linear layer after the outer product; 0 returns the raw tensor.
        dropout: dropout on the flattened outer product.
    """

    equivalence = "tensor"
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
    """Low-rank Multimodal Fusion: h = sum_r w_r prod_m (W_m^(r) [1; z_m]) + b, the tensor
    fusion weight W constrained to rank r; an absent modality's input is [1; 0 ... 0].

    z_m = P_m x_m is the same projection as ``tensor``'s, of the same default width (6, in
    conf/fusion/lowrank.yaml), so at defaults lowrank and tensor fuse the same projected inputs
    and differ only by the rank constraint; ``width=null`` fuses the encoder outputs z_m = x_m
    directly, as the paper does with its modality sub-networks.
    Every factor W_m^(r), the rank weights w and the bias are registered parameters.
    Liu et al., "Efficient Low-rank Multimodal Fusion with Modality-Specific Factors",
    ACL 2018, arXiv:1806.00064.

    Args:
        dims: width of each modality's pooled vector (at least two modalities).
        rank: number of rank-one terms r.
        hidden: output width.
        width: width each modality is projected to first; None fuses the raw pooled vectors.
        dropout: dropout on the fused vector.
    """

    equivalence = "lowrank"
    min_modalities = 2

    def __init__(
        self,
        dims: dict[str, int],
        rank: int = 4,
        hidden: int = 128,
        width: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__(dims)
        self.rank, self.hidden = rank, hidden
        self.project = ModalityProjection(dims, width) if width is not None else None
        self.factors = nn.ParameterList(
            nn.Parameter(nn.init.xavier_normal_(torch.empty(rank, d + 1, hidden)))
            for d in (dims.values() if width is None else [width] * len(dims))
        )
        self.rank_weights = nn.Parameter(torch.full((rank,), 1.0 / math.sqrt(rank)))
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.dropout = nn.Dropout(dropout)
        self.out_dim = hidden

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        if self.project is None:
            inputs = masked_pooled(encoded, present, self.modalities)
        else:
            inputs = self.project(encoded, present).unbind(1)
        fused = None
        for x, factor in zip(inputs, self.factors, strict=True):
            # [B, d+1] @ [d+1, rank * hidden] -> [B, rank, hidden]
            f = (with_one(x) @ factor.transpose(0, 1).flatten(1)).view(-1, self.rank, self.hidden)
            fused = f if fused is None else fused * f
        return self.dropout(torch.einsum("r,brh->bh", self.rank_weights, fused) + self.bias)
