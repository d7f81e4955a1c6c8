"""The encoder contract shared by every modality.

An encoder is an ``nn.Module`` built from a ``ModalitySpec`` and its own config. It exposes
``out_dim`` and maps a batch tensor to an ``EncoderOutput``: ``tokens [B, T, D]`` with a
``mask [B, T]`` (True where a token is real) for token-level fusions, and ``pooled [B, D]``
for vector fusions. Encoders that only make a vector return it as a single token (T = 1).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class EncoderOutput(NamedTuple):
    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor


def single_token(pooled: torch.Tensor) -> EncoderOutput:
    """Wrap a vector summary ``[B, D]`` as a one-token output."""
    mask = torch.ones(pooled.shape[0], 1, dtype=torch.bool, device=pooled.device)
    return EncoderOutput(tokens=pooled.unsqueeze(1), mask=mask, pooled=pooled)


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens of each sample; a sample with no real token gives zeros."""
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    """Two-layer perceptron used by heads and small encoders."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
    )
