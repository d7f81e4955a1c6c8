"""Encoders of categorical columns ``[B, K]`` (one integer id per column)."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.data.spec import ModalitySpec
from mmrun.encoders.base import EncoderOutput, mlp
from mmrun.errors import ConfigError


class CategoricalEmbeddingEncoder(nn.Module):
    """One learned embedding per category plus one per column; pooled = MLP of their concatenation.

    Input contract: ``[B, K]`` int64, one id per categorical column, drawn from a single id
    space of ``spec.vocab_size`` ids shared by all columns (the datamodule offsets each
    column's ids so that columns never collide) with id 0 meaning unknown/missing. Each
    token is ``E[id] + C[column]``, so an unknown value still says which column it is in.
    Guo and Berkhahn, "Entity Embeddings of Categorical Variables", 2016, arXiv:1604.06737.

    Args:
        spec: the categorical modality (shape ``[K]``, ``vocab_size`` = ids of all columns
            together, including 0).
        out_dim: width of the embeddings, the tokens and the pooled vector.
        dropout: dropout inside the pooling MLP.
    """

    def __init__(self, spec: ModalitySpec, out_dim: int = 32, dropout: float = 0.0) -> None:
        super().__init__()
        if not spec.vocab_size:
            raise ConfigError(
                f"encoder/categorical=embedding needs the number of category ids of modality {spec.name!r} "
                f"(ModalitySpec.vocab_size), but its datamodule did not set it"
            )
        columns = spec.shape[0]
        self.embed = nn.Embedding(spec.vocab_size, out_dim)
        self.column = nn.Parameter(torch.randn(columns, out_dim) * 0.02)
        self.pool = mlp(columns * out_dim, out_dim, out_dim, dropout)
        self.out_dim = out_dim

    def forward(self, ids: torch.Tensor) -> EncoderOutput:
        tokens = self.embed(ids) + self.column  # [B, K, D]
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return EncoderOutput(tokens=tokens, mask=mask, pooled=self.pool(tokens.flatten(1)))
