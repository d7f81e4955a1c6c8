"""Flamingo's tanh-gated cross-attention: one modality's tokens read the others' tokens."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput, masked_mean
from mmrun.errors import FusionError
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import AttentionBlock, TokenProjection, with_null_query

FFW_MULT = 4  # Flamingo's dense layers are 4x wide, as in a standard transformer


class GatedCrossBlock(nn.Module):
    """y = x + tanh(a_attn) XAttn(LN(x), LN(c)); y = y + tanh(a_ffw) FFW(LN(y)).

    The LayerNorms, attention and feed-forward network are those of a cross ``AttentionBlock``;
    only the two scalar tanh gates are added.

    Args:
        width: token width.
        heads: attention heads.
        dropout: dropout on the attention weights and in the feed-forward network.
        gate_init: initial value of both gate parameters a_attn and a_ffw.
    """

    def __init__(self, width: int, heads: int, dropout: float, gate_init: float) -> None:
        super().__init__()
        self.block = AttentionBlock(width, heads, dropout, cross=True, ffn_mult=FFW_MULT)
        self.attn_gate = nn.Parameter(torch.tensor(float(gate_init)))
        self.ffw_gate = nn.Parameter(torch.tensor(float(gate_init)))

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor
    ) -> torch.Tensor:
        b = self.block
        attended = b.attention(b.norm_q(x), b.norm_kv(context), key_mask)
        x = x + torch.tanh(self.attn_gate) * attended
        return x + torch.tanh(self.ffw_gate) * b.ffn(b.norm_ffn(x))


@register("xattn_gated")
class GatedCrossAttentionFusion(Fusion):
    """Gated cross-attention (Flamingo's GATED XATTN-DENSE): the tokens x of one query modality
    attend to the concatenated tokens c of all the others,
    y = x + tanh(a_attn) XAttn(LN(x), LN(c)), y = y + tanh(a_ffw) FFW(LN(y)), then
    h = the mean of y over the query's real tokens.

    The context gets its own LayerNorm, as in mmrun's cross ``AttentionBlock``. ``layers`` such
    blocks are stacked, each with its own pair of scalar gates. Flamingo
    initialises the gates at 0 so that its frozen, pretrained language model starts unchanged.
    Here nothing is pretrained: with gates at 0 the output would not depend on the other
    modalities at all, and every attention and feed-forward weight would start with a zero
    gradient (only the gates would move at first). So ``gate_init`` defaults to 1
    (tanh(1) = 0.76: both paths open, the gates still far from saturation and free to move);
    ``fusion.gate_init=0`` is Flamingo's initialisation, for a query encoder that is itself
    pretrained. A sample whose query modality is absent (or has no real token) queries with one
    learned null token, as ``nlgate`` does, so it still summarises the others; a sample with no
    other modality gets the gated attention output of an empty context (zero before the output
    projection). Alayrac et al., "Flamingo: a Visual Language Model for Few-Shot Learning",
    NeurIPS 2022, arXiv:2204.14198.

    Args:
        dims: token width of each modality (at least two modalities).
        query: the modality whose tokens are updated and pooled; default the first one.
        width: common token width (the output width).
        heads: attention heads; must divide ``width``.
        layers: gated cross-attention blocks stacked.
        gate_init: initial value of every gate parameter a (the gate itself is tanh(a)).
        dropout: dropout on the attention weights and in the feed-forward networks.
    """

    equivalence = "xattn_gated"
    budget_knob = "width"
    budget_multiple_of = "heads"
    uses_tokens = True
    min_modalities = 2

    def __init__(
        self,
        dims: dict[str, int],
        query: str | None = None,
        width: int = 64,
        heads: int = 4,
        layers: int = 1,
        gate_init: float = 1.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        self.query = self.chosen_modality(query, "query")
        if layers < 1:
            raise FusionError(
                f"fusion.layers={layers}: fusion=xattn_gated needs at least one block; "
                f"set fusion.layers=1 or more"
            )
        self.query_index = self.modalities.index(self.query)
        self.tokens = TokenProjection(dims, width)
        self.null_query = nn.Parameter(torch.randn(width) * 0.02)
        self.blocks = nn.ModuleList(
            GatedCrossBlock(width, heads, dropout, gate_init) for _ in range(layers)
        )
        self.out_dim = width

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        tokens, masks = self.tokens(encoded, present)
        x, x_mask = with_null_query(tokens.pop(self.query_index), masks.pop(self.query_index), self.null_query)
        context, key_mask = torch.cat(tokens, 1), torch.cat(masks, 1)
        for block in self.blocks:
            x = block(x, context, key_mask)
        return masked_mean(x, x_mask)
