"""Self-attention over the tokens of all modalities, read out through a CLS token."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.errors import FusionError
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import AttentionBlock, TokenProjection


@register("transformer")
class TransformerFusion(Fusion):
    """Multimodal transformer with a CLS token: x = [CLS; P_1 t_1 + e_1; ...; P_M t_M + e_M],
    h = LN(Transformer(x)[CLS]), e_m a learned modality-type embedding.

    Tokens of absent modalities and masked tokens are excluded as keys (key-padding mask); the
    CLS token is always a valid key, so no attention row is empty. As in FT-Transformer, the
    last block computes the CLS row only.
    In the style of FT-Transformer (Gorishniy et al., "Revisiting Deep Learning Models for
    Tabular Data", NeurIPS 2021, arXiv:2106.11959), with modality tokens in place of feature
    tokens. Positional information is left to the encoders.

    Args:
        dims: token width of each modality.
        width: transformer width (the output width).
        heads: attention heads; must divide ``width``.
        layers: number of pre-norm transformer blocks.
        dropout: dropout on attention weights and in the feed-forward networks.
    """

    equivalence = "transformer"
    budget_knob = "width"
    budget_multiple_of = "heads"
    uses_tokens = True

    def __init__(
        self,
        dims: dict[str, int],
        width: int = 64,
        heads: int = 4,
        layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        if layers < 1:
            raise FusionError(f"fusion=transformer needs layers >= 1, got layers={layers}")
        self.tokens = TokenProjection(dims, width)
        self.cls = nn.Parameter(torch.randn(width) * 0.02)
        self.blocks = nn.ModuleList(AttentionBlock(width, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.out_dim = width

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        tokens, masks = self.tokens(encoded, present)
        batch = present.shape[0]
        x = torch.cat([self.cls.expand(batch, 1, -1), *tokens], 1)
        mask = torch.cat([present.new_ones(batch, 1), *masks], 1)
        for block in self.blocks[:-1]:
            x = block(x, mask)
        # Only the CLS output is read, so the last block updates the CLS row alone.
        return self.norm(self.blocks[-1](x[:, :1], mask, context=x)[:, 0])
