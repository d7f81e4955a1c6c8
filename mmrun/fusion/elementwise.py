"""Element-wise fusions of modalities projected to a common width: sum, weighted sum, product."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import ModalityProjection, masked_multiply, masked_softmax


class _ProjectedFusion(Fusion):
    """Shared constructor: one linear projection per modality to ``hidden``, then dropout."""

    def __init__(self, dims: dict[str, int], hidden: int = 128, dropout: float = 0.0) -> None:
        super().__init__(dims)
        self.project = ModalityProjection(dims, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = hidden


@register("sum")
class SumFusion(_ProjectedFusion):
    """Sum of projected modalities: h = sum_m W_m z_m over the modalities present.

    The additive baseline of multimodal surveys (Baltrusaitis et al., "Multimodal Machine
    Learning: A Survey and Taxonomy", TPAMI 2019, arXiv:1705.09406).

    Args:
        dims: width of each modality's pooled vector.
        hidden: common width every modality is projected to (the output width).
        dropout: dropout on the fused vector.
    """

    equivalence = "sum"

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.project(encoded, present).sum(1))


@register("weighted")
class WeightedFusion(_ProjectedFusion):
    """Learned convex combination: h = sum_m w_m W_m z_m, w = softmax(a) renormalised over
    the modalities present in each sample (one learned scalar a_m per modality).

    With every modality present w does not depend on the sample, so w_m folds into the
    projection (w_m W_m, w_m b_m): weighted computes exactly the functions of ``sum`` (its
    declared ``equivalence``). It differs from sum only when modalities are missing.

    A global (sample-independent) variant of attention fusion; see Baltrusaitis et al.,
    "Multimodal Machine Learning: A Survey and Taxonomy", TPAMI 2019, arXiv:1705.09406.

    Args:
        dims: width of each modality's pooled vector.
        hidden: common width every modality is projected to (the output width).
        dropout: dropout on the fused vector.
    """

    equivalence = "sum"

    def __init__(self, dims: dict[str, int], hidden: int = 128, dropout: float = 0.0) -> None:
        super().__init__(dims, hidden, dropout)
        self.logits = nn.Parameter(torch.zeros(len(dims)))

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        weights = masked_softmax(self.logits.expand(present.shape), present)  # [B, M]
        fused = (weights.unsqueeze(-1) * self.project(encoded, present)).sum(1)
        return self.dropout(fused)


@register("product")
class ProductFusion(_ProjectedFusion):
    """Element-wise (Hadamard) product of projected modalities: h = prod_m W_m z_m, an absent
    modality acting as the multiplicative identity 1.

    The multiplicative baseline of Baltrusaitis et al., "Multimodal Machine Learning: A Survey
    and Taxonomy", TPAMI 2019, arXiv:1705.09406.

    Args:
        dims: width of each modality's pooled vector.
        hidden: common width every modality is projected to (the output width).
        dropout: dropout on the fused vector.
    """

    equivalence = "product"

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        return self.dropout(masked_multiply(self.project(encoded, present), present))
