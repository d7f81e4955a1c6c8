"""Attention over modalities."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.errors import FusionError
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import ModalityProjection, masked_pooled, masked_softmax

SCORINGS = ("joint", "additive")


@register("attention")
class AttentionFusion(Fusion):
    """Per-sample attention weights over projected modalities: h = sum_m a_m P_m x_m, with
    a = softmax(A [x_1; ...; x_M] + c) over the modalities present in the sample.

    The default ``scoring="joint"`` is TorchMultimodal's ``AttentionFusionModule``
    (facebookresearch/multimodal): one linear map A of the concatenated, unprojected pooled
    vectors gives one score per modality, so each weight can depend on every modality.
    ``scoring="additive"`` scores each projection on its own,
    a_m = softmax_m(v^T tanh(W P_m x_m + b)): Bahdanau-style additive attention (Bahdanau et
    al., ICLR 2015, arXiv:1409.0473) as in the modality attention of Hori et al.,
    "Attention-Based Multimodal Fusion for Video Description", ICCV 2017, arXiv:1701.03126,
    without a decoder state (mmrun's fusions have no query; the bias b stands in for it).

    An absent modality's vector is zeroed before A (and before P_m) and gets weight exactly 0;
    the weights of the present ones are renormalised. Unlike TorchMultimodal, whose projection
    width defaults to the smallest encoder width, the width is ``hidden`` (a budget knob).

    Args:
        dims: width of each modality's pooled vector.
        hidden: common width every modality is projected to (the output width).
        scoring: ``"joint"`` (TorchMultimodal, default) or ``"additive"`` (per modality).
        dropout: dropout on the fused vector.
    """

    equivalence = "attention"

    def __init__(
        self,
        dims: dict[str, int],
        hidden: int = 128,
        scoring: str = "joint",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        if scoring not in SCORINGS:
            raise FusionError(
                f"fusion.scoring={scoring!r} is not a scoring of fusion=attention; "
                f"choose one of: {', '.join(SCORINGS)}"
            )
        self.scoring = scoring
        self.project = ModalityProjection(dims, hidden)
        if scoring == "joint":
            self.score = nn.Linear(sum(dims.values()), len(dims))
        else:
            self.score = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.dropout = nn.Dropout(dropout)
        self.out_dim = hidden

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        projected = self.project(encoded, present)  # [B, M, hidden], zero where absent
        if self.scoring == "joint":
            scores = self.score(torch.cat(masked_pooled(encoded, present, self.modalities), -1))
        else:
            scores = self.score(projected).squeeze(-1)
        weights = masked_softmax(scores, present, dim=1)
        return self.dropout((weights.unsqueeze(-1) * projected).sum(1))
