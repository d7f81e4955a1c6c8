"""The recurrent stack shared by the text, audio (mel) and feature-sequence encoders."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput, masked_mean
from mmrun.errors import ConfigError

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


class RecurrentStack(nn.Module):
    """A (bi)directional GRU or LSTM over ``[B, T, in_dim]``, projected to ``out_dim``.

    Tokens are the projected states; pooled is their masked mean. GRU: Cho et al.,
    "Learning Phrase Representations using RNN Encoder-Decoder", EMNLP 2014,
    arXiv:1406.1078. LSTM: Hochreiter and Schmidhuber, Neural Computation 1997.

    Args:
        in_dim: width of each input step.
        cell: ``gru`` or ``lstm``.
        hidden: state width per direction.
        bidirectional: read the sequence both ways.
        out_dim: width of tokens and pooled vector.
        dropout: dropout on the outputs.
    """

    def __init__(self, in_dim: int, cell: str, hidden: int, bidirectional: bool, out_dim: int, dropout: float) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ConfigError(f"encoder cell={cell!r} is unknown; use one of {list(CELLS)}")
        self.rnn = CELLS[cell](in_dim, hidden, batch_first=True, bidirectional=bidirectional)
        self.project = nn.Linear(hidden * (2 if bidirectional else 1), out_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        states, _ = self.rnn(x)
        tokens = self.dropout(self.project(states))
        return EncoderOutput(tokens=tokens, mask=mask, pooled=masked_mean(tokens, mask))
