"""Multimodal transformer: crossmodal attention between every ordered pair of modalities."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput, masked_mean
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import AttentionBlock, TokenProjection


@register("mult")
class MulTFusion(Fusion):
    """MulT: for each target modality a, Z_{b->a} = CM_{b->a}(X_a, X_b) for every source b != a
    (crossmodal blocks, target queries source); Z_a = SelfAttn([Z_{b->a}]_b) concatenated along
    features; h = [mean_t Z_1; ...; mean_t Z_M].

    Every ordered pair gets its own crossmodal transformer (the paper's 3 modalities give 6),
    so the cost grows as M(M-1). Sequences are mean-pooled over real tokens rather than
    taking the last element, since tokens may be padded; an absent target contributes zeros,
    an absent source leaves its crossmodal stream unattended (residual only).
    Tsai et al., "Multimodal Transformer for Unaligned Multimodal Language Sequences",
    ACL 2019, arXiv:1906.00295.

    Args:
        dims: token width of each modality (at least two modalities).
        width: width of each crossmodal stream; the output is M (M-1) width wide.
        heads: attention heads; must divide ``width``.
        layers: depth of every crossmodal and self-attention transformer.
        dropout: dropout on attention weights and in the feed-forward networks.
    """

    equivalence = "mult"
    budget_knob = "width"
    budget_multiple_of = "heads"
    uses_tokens = True
    min_modalities = 2

    def __init__(
        self,
        dims: dict[str, int],
        width: int = 32,
        heads: int = 2,
        layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        count = len(dims)
        self.tokens = TokenProjection(dims, width)

        def stack(dim: int, cross: bool) -> nn.ModuleList:
            return nn.ModuleList(
                AttentionBlock(dim, heads, dropout, cross=cross) for _ in range(layers)
            )

        self.crossmodal = nn.ModuleList(
            nn.ModuleList(stack(width, cross=True) for _ in range(count - 1)) for _ in range(count)
        )
        self.self_attention = nn.ModuleList(
            stack((count - 1) * width, cross=False) for _ in range(count)
        )
        self.out_dim = count * (count - 1) * width

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        tokens, masks = self.tokens(encoded, present)
        pooled = []
        for target in range(len(tokens)):
            sources = [s for s in range(len(tokens)) if s != target]
            streams = []
            for source, blocks in zip(sources, self.crossmodal[target], strict=True):
                x = tokens[target]
                for block in blocks:
                    x = block(x, masks[source], context=tokens[source])
                streams.append(x)
            x = torch.cat(streams, -1)
            for block in self.self_attention[target]:
                x = block(x, masks[target])
            pooled.append(masked_mean(x, masks[target]))
        return torch.cat(pooled, -1)
