"""Tabular encoders over numeric vectors ``[B, F]``."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.data.spec import ModalitySpec
from mmrun.encoders.base import EncoderOutput, single_token
from mmrun.encoders.transformer import TokenTransformer


class MLPTabularEncoder(nn.Module):
    """Multi-layer perceptron: (Linear, GELU, Dropout) per hidden layer, then a projection.

    Rumelhart, Hinton and Williams, "Learning representations by back-propagating errors",
    Nature 1986. Gives a single token (T = 1).

    Args:
        spec: the tabular modality (shape ``[F]``).
        hidden: widths of the hidden layers.
        out_dim: width of the pooled vector.
        dropout: dropout after each hidden layer.
    """

    def __init__(self, spec: ModalitySpec, hidden: list[int], out_dim: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = spec.shape[0]
        for size in hidden:
            layers += [nn.Linear(width, size), nn.GELU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, features: torch.Tensor) -> EncoderOutput:
        return single_token(self.net(features))


class FTTransformerEncoder(nn.Module):
    """Feature tokenizer + Transformer: one token per numeric feature, then a [CLS] token.

    Feature ``j`` becomes the token ``x_j * W_j + b_j`` (its own learned direction and
    bias, so no positional embedding is needed); pooled is the [CLS] token or the mean.
    Gorishniy et al., "Revisiting Deep Learning Models for Tabular Data", NeurIPS 2021,
    arXiv:2106.11959.

    Args:
        spec: the tabular modality (shape ``[F]``).
        out_dim: token width of the Transformer and of the outputs.
        depth, heads, ff_mult, pooling: see ``TokenTransformer``.
        dropout: dropout inside the layers.
    """

    def __init__(
        self,
        spec: ModalitySpec,
        out_dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        ff_mult: int = 2,
        pooling: str = "cls",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        num_features = spec.shape[0]
        self.weight = nn.Parameter(torch.randn(num_features, out_dim) / out_dim**0.5)
        self.bias = nn.Parameter(torch.zeros(num_features, out_dim))
        self.transformer = TokenTransformer(out_dim, depth, heads, ff_mult, dropout, pooling=pooling)
        self.out_dim = out_dim

    def forward(self, features: torch.Tensor) -> EncoderOutput:
        tokens = features.unsqueeze(-1) * self.weight + self.bias  # [B, F, D]
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return self.transformer(tokens, mask)
