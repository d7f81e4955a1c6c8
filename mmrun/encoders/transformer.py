"""The small token Transformer shared by the text, audio, feature, tabular (FT) and ViT encoders."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput, masked_mean
from mmrun.errors import ConfigError

POOLINGS = ("cls", "mean")


class TokenTransformer(nn.Module):
    """Pre-norm Transformer encoder over token embeddings, with a learned [CLS] token.

    The [CLS] token is always real, so a sample whose tokens are all padding (a missing
    modality) still attends to something and gives finite outputs. Learned positions are
    added when ``max_len`` is set; FT-Transformer tokens go without (each feature's token
    already carries its identity). Vaswani et al., "Attention Is All You Need", NeurIPS
    2017, arXiv:1706.03762; pre-norm layers after Xiong et al., "On Layer Normalization in
    the Transformer Architecture", ICML 2020, arXiv:2002.04745.

    Args:
        dim: token width (also the output width).
        depth: number of Transformer layers.
        heads: attention heads (must divide ``dim``).
        ff_mult: feed-forward width as a multiple of ``dim``.
        dropout: dropout inside the layers.
        max_len: number of input tokens for learned positions; 0 for none.
        pooling: ``cls`` (the [CLS] token) or ``mean`` (masked mean of the input tokens).

    Inputs: ``x [B, T, dim]`` and ``mask [B, T]`` (True = real token). Returns an
    ``EncoderOutput`` whose tokens are [CLS] followed by the ``T`` input positions.
    """

    def __init__(
        self,
        dim: int,
        depth: int = 2,
        heads: int = 4,
        ff_mult: int = 2,
        dropout: float = 0.0,
        max_len: int = 0,
        pooling: str = "cls",
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"encoder out_dim={dim} is not divisible by heads={heads}; pick heads that divide out_dim")
        if pooling not in POOLINGS:
            raise ConfigError(f"encoder pooling={pooling!r} is unknown; use one of {list(POOLINGS)}")
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, max_len + 1, dim) * 0.02) if max_len else None
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=ff_mult * dim, dropout=dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.pooling = pooling

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        batch = x.shape[0]
        x = torch.cat([self.cls.expand(batch, -1, -1), x], 1)
        mask = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=mask.device), mask], 1)
        if self.position is not None:
            x = x + self.position[:, : x.shape[1]]
        tokens = self.norm(self.layers(x, src_key_padding_mask=~mask))
        pooled = tokens[:, 0] if self.pooling == "cls" else masked_mean(tokens[:, 1:], mask[:, 1:])
        return EncoderOutput(tokens=tokens, mask=mask, pooled=pooled)
