"""Perceiver-style fusion: a small latent array reads all modality tokens."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import AttentionBlock, TokenProjection


@register("perceiver")
class PerceiverFusion(Fusion):
    """Perceiver: latents L (N x width) cross-attend to x = [P_1 t_1 + e_1; ...; P_M t_M + e_M],
    then self-attend; repeated ``depth`` times; h = LN(mean_n L_n).

    Absent modalities and masked tokens are excluded from the cross-attention keys; a sample
    with no real token at all keeps its learned latents. Cost is linear in the total number of
    tokens. Jaegle et al., "Perceiver: General Perception with Iterative Attention", ICML 2021,
    arXiv:2103.03206. Positional information is left to the encoders; e_m is a learned
    modality-type embedding.

    Args:
        dims: token width of each modality.
        width: latent width (the output width).
        latents: number of latent vectors N.
        heads: attention heads; must divide ``width``.
        depth: number of (cross-attention, latent self-attention) rounds.
        self_layers: latent self-attention blocks per round.
        dropout: dropout on attention weights and in the feed-forward networks.
    """

    equivalence = "perceiver"
    budget_knob = "width"
    budget_multiple_of = "heads"
    uses_tokens = True

    def __init__(
        self,
        dims: dict[str, int],
        width: int = 64,
        latents: int = 16,
        heads: int = 4,
        depth: int = 1,
        self_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        self.tokens = TokenProjection(dims, width)
        self.latents = nn.Parameter(torch.randn(latents, width) * 0.02)
        self.cross = nn.ModuleList(
            AttentionBlock(width, heads, dropout, cross=True) for _ in range(depth)
        )
        self.latent_blocks = nn.ModuleList(
            nn.ModuleList(AttentionBlock(width, heads, dropout) for _ in range(self_layers))
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width)
        self.out_dim = width

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        tokens, masks = self.tokens(encoded, present)
        context, mask = torch.cat(tokens, 1), torch.cat(masks, 1)
        batch = present.shape[0]
        x = self.latents.expand(batch, -1, -1)
        all_latents = present.new_ones(batch, x.shape[1])
        for cross, blocks in zip(self.cross, self.latent_blocks, strict=True):
            x = cross(x, mask, context=context)
            for block in blocks:
                x = block(x, all_latents)
        return self.norm(x.mean(1))
