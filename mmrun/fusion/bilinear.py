"""Factorised bilinear pooling: MLB, MFB and its high-order cascade MFH.

All three project every modality to a joint space and multiply the projections element-wise,
which is a low-rank factorisation of a bilinear (for M modalities: multilinear) map. With
more than two modalities the Hadamard product runs over all of them; an absent modality is
the multiplicative identity 1.
"""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import ModalityProjection, masked_multiply, signed_sqrt_l2


@register("mlb")
class MLBFusion(Fusion):
    """Low-rank bilinear pooling: h = P^T (tanh(U_1 x_1) * ... * tanh(U_M x_M)) + b.

    This is ``product`` with a tanh on each projection and an output map P; the tanh bounds
    the factors, so the two are related but not one function class.

    Kim et al., "Hadamard Product for Low-rank Bilinear Pooling", ICLR 2017, arXiv:1610.04325.

    Args:
        dims: width of each modality's pooled vector (at least two modalities).
        rank: width of the joint (Hadamard) space.
        hidden: output width of P.
        dropout: dropout on the Hadamard product.
    """

    equivalence = "mlb"
    budget_knob = "rank"
    min_modalities = 2

    def __init__(
        self, dims: dict[str, int], rank: int = 256, hidden: int = 128, dropout: float = 0.0
    ):
        super().__init__(dims)
        self.project = ModalityProjection(dims, rank, activation=nn.Tanh())
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(rank, hidden)
        self.out_dim = hidden

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        joint = masked_multiply(self.project(encoded, present), present)
        return self.out(self.dropout(joint))


class _FactorizedPooling(Fusion):
    """MFB blocks cascaded ``order`` times; block i's expanded product is
    e_i = Dropout(e_{i-1} * prod_m U_m^(i) x_m) (e_0 = 1), pooled
    z_i = L2(signed_sqrt(SumPool_k(e_i))), output [z_1; ...; z_order]. Block i + 1 reads the
    dropped e_i, as in Yu et al.'s MFH and Cadene's block.bootstrap.pytorch; in eval mode the
    dropout is the identity."""

    min_modalities = 2

    def __init__(self, dims: dict[str, int], out: int, factor: int, order: int, dropout: float):
        super().__init__(dims)
        self.out, self.factor, self.order = out, factor, order
        self.project = ModalityProjection(dims, order * out * factor)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = order * out

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        joint = masked_multiply(self.project(encoded, present), present)
        blocks = joint.view(-1, self.order, self.out * self.factor).unbind(1)
        expanded = [self.dropout(blocks[0])]
        for block in blocks[1:]:  # the cascade carries the dropped product forward
            expanded.append(self.dropout(expanded[-1] * block))
        pooled = torch.stack(expanded, 1).view(-1, self.order, self.out, self.factor).sum(-1)
        return signed_sqrt_l2(pooled).flatten(1)


@register("mfb")
class MFBFusion(_FactorizedPooling):
    """Multimodal factorised bilinear pooling:
    h = L2(signed_sqrt(SumPool_k(U_1 x_1 * ... * U_M x_M))), each U_m of width out * k.

    Yu et al., "Multi-modal Factorized Bilinear Pooling with Co-Attention Learning for Visual
    Question Answering", ICCV 2017, arXiv:1708.01471.

    Args:
        dims: width of each modality's pooled vector (at least two modalities).
        out: output width o.
        factor: factor k summed over by the sum pooling.
        dropout: dropout on the expanded product before pooling.
    """

    equivalence = "mfb"
    budget_knob = "out"

    def __init__(self, dims: dict[str, int], out: int = 128, factor: int = 4, dropout: float = 0.0):
        super().__init__(dims, out, factor, 1, dropout)


@register("mfh")
class MFHFusion(_FactorizedPooling):
    """Multimodal factorised high-order pooling: ``order`` cascaded MFB blocks,
    e_i = Dropout(e_{i-1} * prod_m U_m^(i) x_m), h = [z_1; ...; z_p],
    z_i = L2(signed_sqrt(SumPool_k(e_i))).

    In training each block carries the dropped expanded product e_i into the next block, as
    the paper's MFH and Cadene's block.bootstrap.pytorch do (each block then draws its own
    dropout mask on top). With order=1 it is ``mfb`` exactly (the same ``_FactorizedPooling``
    code and parameters); at the default order 2 it adds a second block, a larger function
    class than mfb's.

    Yu et al., "Beyond Bilinear: Generalized Multimodal Factorized High-order Pooling for
    Visual Question Answering", IEEE TNNLS 2018, arXiv:1708.03619.

    Args:
        dims: width of each modality's pooled vector (at least two modalities).
        out: width o of each block's output; the fused width is order * o.
        factor: factor k summed over by each block's sum pooling.
        order: number of cascaded MFB blocks p.
        dropout: dropout on the expanded products before pooling.
    """

    equivalence = "mfh"
    budget_knob = "out"

    def __init__(
        self,
        dims: dict[str, int],
        out: int = 128,
        factor: int = 4,
        order: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__(dims, out, factor, order, dropout)
