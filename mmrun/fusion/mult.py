"""Multimodal transformer: crossmodal attention between every ordered pair of modalities."""

from __future__ import annotations

import math

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput, masked_mean
from mmrun.errors import FusionError
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import AttentionBlock, TokenProjection

POOLINGS = ("last", "mean")


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """``[length, dim]`` sinusoidal embeddings of positions 1 .. length, in the tensor2tensor
    layout MulT uses (fairseq's: sines then cosines, position 0 kept for padding); an odd
    ``dim`` gets a zero last column."""
    half = dim // 2
    rate = math.log(10000) / max(half - 1, 1)
    frequencies = torch.exp(torch.arange(half, dtype=torch.float32, device=device) * -rate)
    angles = torch.arange(1, length + 1, dtype=torch.float32, device=device)[:, None] * frequencies
    table = torch.cat([torch.sin(angles), torch.cos(angles)], 1)
    return nn.functional.pad(table, (0, dim - 2 * half))


def last_real_token(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x [B, T, D]`` at the last position where ``mask [B, T]`` is True; zeros for a row
    with no real token."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask, positions, -1).max(1).values  # -1: no real token
    picked = x.gather(1, last.clamp_min(0)[:, None, None].expand(-1, 1, x.shape[-1]))[:, 0]
    return picked.masked_fill((last < 0)[:, None], 0.0)


class MulTEncoder(nn.Module):
    """One MulT transformer encoder: x <- sqrt(d) x + PE (and the same for the context),
    ``layers`` pre-norm blocks whose query and context share one LayerNorm, then a final
    LayerNorm. Without a context it is a self-attention encoder.

    Args:
        dim: token width d.
        heads: attention heads; must divide ``dim``.
        layers: number of blocks.
        dropout: dropout on attention weights and in the feed-forward networks.
    """

    def __init__(self, dim: int, heads: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.scale = math.sqrt(dim)
        # cross=False: a block given a context normalises it with the query LayerNorm (MulT).
        self.blocks = nn.ModuleList(
            AttentionBlock(dim, heads, dropout, ffn_mult=4, activation=nn.ReLU)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)

    def embed(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        table = sinusoidal_positions(x.shape[1], x.shape[2], x.device).to(x.dtype)
        return (self.scale * x + table).masked_fill(~mask.unsqueeze(-1), 0.0)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``mask``: real tokens of ``x``; ``context_mask``: real tokens of ``context``."""
        x = self.embed(x, mask)
        if context is not None:
            context = self.embed(context, context_mask)
        for block in self.blocks:
            if context is None:
                x = block(x, mask)
            else:
                x = block(x, context_mask, context=context)
        return self.norm(x)


@register("mult")
class MulTFusion(Fusion):
    """MulT: for each target modality a, Z_{b->a} = CM_{b->a}(X_a, X_b) for every source b != a
    (crossmodal transformers, target queries source); Z_a = SelfAttn([Z_{b->a}]_b) concatenated
    along features; h = [pool_t Z_1; ...; pool_t Z_M].

    As in MulT's code, every transformer (crossmodal or self-attention) scales its inputs by
    sqrt(d) and adds sinusoidal position embeddings, runs pre-norm blocks whose query, key and
    value share one LayerNorm, with a ReLU feed-forward network 4d wide, and ends with a
    LayerNorm; ``pooling="last"`` (default) reads the last time step, as MulT does, which with
    padded sequences means each sample's last real token. ``pooling="mean"`` averages the real
    tokens instead, for encoders whose last token is not a summary (bidirectional or
    non-causal ones). Every ordered pair gets its own crossmodal transformer (the paper's
    3 modalities give 6), so the cost grows as M(M-1). An absent target contributes zeros; an
    absent source leaves its crossmodal stream unattended (residual only).

    Kept variants: one attention head by default (MulT: 5 heads of width 6), so that
    ``fusion.param_budget`` can step the width by 1 and land within 5% (the width must be a
    multiple of ``heads``); the self-attention transformers have ``layers`` blocks (MulT uses
    at least 3); the per-modality input projections are linear maps with a learned modality-type
    embedding (MulT: bias-free 1x1 convolutions; the constant embedding adds nothing to the
    function class), and ``dropout`` stands for MulT's attention and ReLU dropouts (MulT's
    residual and embedding dropouts have no counterpart here).
    Tsai et al., "Multimodal Transformer for Unaligned Multimodal Language Sequences",
    ACL 2019, arXiv:1906.00295.

    Args:
        dims: token width of each modality (at least two modalities).
        width: width of each crossmodal stream; the output is M (M-1) width wide.
        heads: attention heads; must divide ``width``.
        layers: depth of every crossmodal and self-attention transformer.
        pooling: ``"last"`` (the last real token, MulT) or ``"mean"`` (mean over real tokens).
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
        heads: int = 1,
        layers: int = 1,
        pooling: str = "last",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        if pooling not in POOLINGS:
            raise FusionError(
                f"fusion.pooling={pooling!r} is not a pooling of fusion=mult; "
                f"choose one of: {', '.join(POOLINGS)}"
            )
        self.pooling = pooling
        count = len(dims)
        self.tokens = TokenProjection(dims, width)
        self.crossmodal = nn.ModuleList(
            nn.ModuleList(MulTEncoder(width, heads, layers, dropout) for _ in range(count - 1))
            for _ in range(count)
        )
        self.self_attention = nn.ModuleList(
            MulTEncoder((count - 1) * width, heads, layers, dropout) for _ in range(count)
        )
        self.out_dim = count * (count - 1) * width

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        tokens, masks = self.tokens(encoded, present)
        pool = last_real_token if self.pooling == "last" else masked_mean
        pooled = []
        for target in range(len(tokens)):
            sources = [s for s in range(len(tokens)) if s != target]
            streams = [
                stack(tokens[target], masks[target], tokens[source], masks[source])
                for source, stack in zip(sources, self.crossmodal[target], strict=True)
            ]
            x = self.self_attention[target](torch.cat(streams, -1), masks[target])
            pooled.append(pool(x, masks[target]))
        return torch.cat(pooled, -1)
