"""Non-local gate: tokens of one modality attend to the tokens of the others."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput, masked_mean
from mmrun.errors import FusionError
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import masked_softmax, with_null_query


@register("nlgate")
class NLGateFusion(Fusion):
    """Non-local gate: h = mean_t (q_t + sum_j softmax_j(q_t . k_j) v_j), q_t = Q x_t over the
    tokens x_t of one (query) modality, k_j = K_m y_j and v_j = V_m y_j over the tokens y_j of
    all the other modalities.

    As MultiBench's ``NLgate``: linear maps Q, K, V (MultiBench's optional q/k/v linears, which
    mmrun always applies, since encoder widths differ), unscaled dot products (no 1/sqrt(d),
    as in the embedded-Gaussian non-local block the NL-gate comes from), the residual on the
    projected queries, and no output projection. Wang, Tran and Feiszli, "What Makes Training
    Multi-Modal Classification Networks Hard?", CVPR 2020, arXiv:1905.12681 (appendix F4,
    the NL-gate; the citation MultiBench uses).

    Deliberate variants: MultiBench flattens the gated query tokens, which needs one fixed
    token count; mmrun averages over the real query tokens instead, so padded sequences of
    any length give one ``width``-wide vector. With more than two modalities the keys and
    values are the concatenated tokens of every other present modality (one K_m, V_m each).
    A sample whose query modality is absent (or has no real token) queries with one learned
    null token, so it still summarises the others; ``heads > 1`` splits Q, K, V into heads
    (1, the default, is the paper's block).

    Args:
        dims: token width of each modality (at least two modalities).
        query: the modality that provides the queries; default the first one.
        width: common width of queries, keys and values (the output width).
        heads: attention heads; must divide ``width`` (1 is the paper's non-local block).
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
        self.query = self.chosen_modality(query, "query")
        if width % heads:
            raise FusionError(
                f"fusion.heads={heads} must divide fusion.width={width}; change fusion.heads"
            )
        self.query_index = self.modalities.index(self.query)
        self.heads = heads
        self.q = nn.Linear(dims[self.query], width)
        self.kv = nn.ModuleDict(
            {m: nn.Linear(d, 2 * width) for m, d in dims.items() if m != self.query}
        )
        self.null_query = nn.Parameter(torch.randn(width) * 0.02)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = width

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, width]`` -> ``[B, heads, T, width / heads]``."""
        return x.view(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        real = {m: encoded[m].mask & present[:, i : i + 1] for i, m in enumerate(self.modalities)}
        # Padded tokens and absent modalities are zeroed before any weight touches them.
        x = {m: encoded[m].tokens.masked_fill(~real[m].unsqueeze(-1), 0.0) for m in real}
        q, q_mask = with_null_query(self.q(x[self.query]), real[self.query], self.null_query)
        k, v = torch.cat([self.kv[m](x[m]) for m in self.kv], 1).chunk(2, -1)
        key_mask = torch.cat([real[m] for m in self.kv], 1)  # [B, T_k]
        scores = self.split(q) @ self.split(k).transpose(-1, -2)  # unscaled, [B, H, T_q, T_k]
        weights = self.dropout(masked_softmax(scores, key_mask[:, None, None, :]))
        attended = (weights @ self.split(v)).transpose(1, 2).reshape(q.shape)
        return masked_mean(q + attended, q_mask)
