"""Non-local gate: tokens of one modality attend to the tokens of the others."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput, masked_mean
from mmrun.errors import FusionError
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import MaskedAttention, TokenProjection


@register("nlgate")
class NLGateFusion(Fusion):
    """Non-local gate: h = mean_t (q_t + softmax(q_t K^T / sqrt(d)) V), queries q from the
    tokens of one modality, keys K and values V from the tokens of all the others.

    With more than two modalities the keys and values are the concatenated tokens of every
    other present modality. A sample whose query modality is absent (or has no real token)
    queries with one learned null token, so it still summarises the others. Wang, Tran and
    Feiszli, "What Makes Training Multi-Modal Classification Networks Hard?", CVPR 2020,
    arXiv:1905.12681 (appendix F4, the NL-gate; the citation MultiBench uses).

    Args:
        dims: token width of each modality (at least two modalities).
        query: the modality that provides the queries; default the first one.
        width: common width of queries, keys and values (the output width).
        heads: attention heads (1 is the paper's non-local block).
        dropout: dropout on the attention weights.
    """

    equivalence = "nlgate"
    budget_knob = "width"
    budget_multiple_of = "heads"
    uses_tokens = True
    min_modalities = 2

    def __init__(
        self,
        dims: dict[str, int],
        query: str | None = None,
        width: int = 64,
        heads: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        self.query = query or self.modalities[0]
        if self.query not in dims:
            raise FusionError(
                f"fusion.query={self.query!r} is not a modality of this data; "
                f"choose one of: {', '.join(self.modalities)}"
            )
        self.query_index = self.modalities.index(self.query)
        self.tokens = TokenProjection(dims, width)
        self.null_query = nn.Parameter(torch.randn(width) * 0.02)
        self.attention = MaskedAttention(width, heads, dropout)
        self.out_dim = width

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        tokens, masks = self.tokens(encoded, present)
        q, q_mask = tokens.pop(self.query_index), masks.pop(self.query_index)
        has_query = q_mask.any(1, keepdim=True)  # [B, 1]
        q = torch.where(has_query.unsqueeze(-1), q, self.null_query)
        q_mask = q_mask | ~has_query
        gated = q + self.attention(q, torch.cat(tokens, 1), torch.cat(masks, 1))
        return masked_mean(gated, q_mask)
