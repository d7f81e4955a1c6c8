"""Text encoders over padded token ids (0 = padding)."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.data.spec import ModalitySpec
from mmrun.encoders.base import EncoderOutput, masked_mean
from mmrun.encoders.recurrent import RecurrentStack
from mmrun.encoders.transformer import TokenTransformer


class RecurrentTextEncoder(nn.Module):
    """Token embedding followed by a (bi)directional GRU or LSTM; pooled = masked mean of states.

    GRU: Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder", EMNLP 2014,
    arXiv:1406.1078. LSTM: Hochreiter and Schmidhuber, Neural Computation 1997.

    Args:
        spec: the text modality (``shape [T]``, ``vocab_size``).
        cell: ``gru`` or ``lstm``.
        embed_dim: token embedding width.
        hidden: recurrent state width per direction.
        bidirectional: read the sequence both ways.
        out_dim: width of tokens and pooled vector.
        dropout: dropout on embeddings and outputs.
    """

    def __init__(
        self,
        spec: ModalitySpec,
        cell: str = "gru",
        embed_dim: int = 64,
        hidden: int = 64,
        bidirectional: bool = True,
        out_dim: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(spec.vocab_size, embed_dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.rnn = RecurrentStack(embed_dim, cell, hidden, bidirectional, out_dim, dropout)
        self.out_dim = out_dim

    def forward(self, ids: torch.Tensor) -> EncoderOutput:
        return self.rnn(self.dropout(self.embed(ids)), ids != 0)


class BagOfEmbeddingsEncoder(nn.Module):
    """Mean of token embeddings followed by an MLP (fastText-style bag of words).

    Joulin et al., "Bag of Tricks for Efficient Text Classification", EACL 2017,
    arXiv:1607.01759.

    Args:
        spec: the text modality.
        embed_dim: token embedding width.
        out_dim: width of tokens and pooled vector.
        dropout: dropout before the output projection.
    """

    def __init__(self, spec: ModalitySpec, embed_dim: int = 64, out_dim: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        self.embed = nn.Embedding(spec.vocab_size, embed_dim, padding_idx=0)
        self.token_project = nn.Linear(embed_dim, out_dim)
        self.pool_project = nn.Sequential(nn.Linear(embed_dim, out_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(out_dim, out_dim))
        self.out_dim = out_dim

    def forward(self, ids: torch.Tensor) -> EncoderOutput:
        mask = ids != 0
        embedded = self.embed(ids)
        return EncoderOutput(
            tokens=self.token_project(embedded),
            mask=mask,
            pooled=self.pool_project(masked_mean(embedded, mask)),
        )


class TransformerTextEncoder(nn.Module):
    """Token and position embeddings followed by a small pre-norm Transformer encoder.

    Padding (id 0) is masked out of attention; pooled is the [CLS] token or the masked mean.
    Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language
    Understanding", NAACL 2019, arXiv:1810.04805 (architecture, trained from scratch here).

    Args:
        spec: the text modality (``shape [T]``, ``vocab_size``).
        out_dim: token width of the Transformer and of the outputs.
        depth, heads, ff_mult, pooling: see ``TokenTransformer``.
        dropout: dropout on embeddings and inside the layers.
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
        self.embed = nn.Embedding(spec.vocab_size, out_dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.transformer = TokenTransformer(out_dim, depth, heads, ff_mult, dropout, max_len=spec.shape[0], pooling=pooling)
        self.out_dim = out_dim

    def forward(self, ids: torch.Tensor) -> EncoderOutput:
        return self.transformer(self.dropout(self.embed(ids)), ids != 0)
