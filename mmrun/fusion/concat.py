"""Early fusion by concatenation."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import masked_pooled


@register("concat")
class ConcatFusion(Fusion):
    """Concatenate pooled vectors, optionally projected: h = W [z_1; ...; z_M] (early fusion).

    Absent modalities are zeroed before concatenation, so they contribute nothing.
    The early-fusion baseline of every multimodal survey (e.g. Baltrusaitis et al.,
    "Multimodal Machine Learning: A Survey and Taxonomy", TPAMI 2019, arXiv:1705.09406).

    Args:
        dims: width of each modality's pooled vector.
        hidden: width of the projection after concatenation; 0 keeps the raw concatenation.
        dropout: dropout after the projection.
    """

    equivalence = "concat"

    def __init__(self, dims: dict[str, int], hidden: int = 0, dropout: float = 0.0) -> None:
        super().__init__(dims)
        width = sum(dims.values())
        if hidden > 0:
            self.project: nn.Module = nn.Sequential(
                nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout)
            )
            self.out_dim = hidden
        else:
            self.project = nn.Identity()
            self.out_dim = width

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat(masked_pooled(encoded, present, self.modalities), dim=-1))
