"""Permutation-invariant pooling over modality embeddings."""

from __future__ import annotations

import torch

from mmrun.encoders.base import EncoderOutput, mlp
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import ModalityProjection


@register("deepset")
class DeepSetFusion(Fusion):
    """Deep Sets over modalities: h = rho(sum_{m present} phi(W_m z_m)), phi and rho MLPs
    shared by all modalities, W_m a per-modality projection to a common width.

    The sum makes the result independent of modality order and defined for any subset of
    modalities. Zaheer et al., "Deep Sets", NeurIPS 2017, arXiv:1703.06114.

    Args:
        dims: width of each modality's pooled vector.
        hidden: width of the embeddings, of phi and rho, and of the output.
        dropout: dropout inside rho.
    """

    equivalence = "deepset"

    def __init__(self, dims: dict[str, int], hidden: int = 128, dropout: float = 0.0) -> None:
        super().__init__(dims)
        self.project = ModalityProjection(dims, hidden)
        self.phi = mlp(hidden, hidden, hidden, 0.0)
        self.rho = mlp(hidden, hidden, hidden, dropout)
        self.out_dim = hidden

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        elements = self.phi(self.project(encoded, present))  # [B, M, H]
        return self.rho(elements.masked_fill(~present.unsqueeze(-1), 0.0).sum(1))
