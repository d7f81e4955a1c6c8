"""The decoder contract of conditional text generation (``task=captioning``).

A decoder writes a token sequence conditioned on a memory: the tokens ``[B, L, D]`` the
condition modalities were encoded and fused into, with ``memory_mask [B, L]`` (True = a real
memory token). It is built from its own config (``conf/decoder/<name>.yaml``) plus three facts
known only at run time: ``vocab_size`` (the special ids included; id 0 is padding),
``memory_dim`` (D) and ``max_length`` (the longest sequence it will read or write, BOS included
when reading).

Two ways to run it, which must give the same logits (in eval mode):

* ``forward(memory, memory_mask, inputs [B, T]) -> logits [B, T, V]``, teacher forcing:
  ``inputs[:, 0]`` is BOS and position t predicts token t+1 from ``inputs[:, :t+1]`` only;
* ``init_state(memory, memory_mask)`` then ``step(state, tokens [R]) -> (logits [R, V], state)``
  once per position, for decoding (``mmrun.decoders.search``). Every state tensor is
  batch-first, so search can expand and reorder its rows with ``index_select`` along dim 0.

The entries named in ``static_state`` (the memory and what is precomputed from it) hold one row
per sample and are never expanded nor reordered: beam search runs R = B x k hypotheses, those
of one sample on consecutive rows, and ``step`` reads the memory of row r from sample r // k
(k = R / B; k = 1 for greedy search and teacher forcing). The beams of a sample thus share one
copy of its memory, and cross-attention runs once per sample with k queries.

A row with no real memory token still gets finite logits: its attention output is zero.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

State = dict[str, torch.Tensor]


class Decoder(nn.Module, ABC):
    """Base class: stores the run-time facts; subclasses implement the three methods below.

    Args:
        vocab_size: output vocabulary size V, special ids included (0 = padding).
        memory_dim: width D of the memory tokens.
        max_length: the longest sequence read by ``forward`` or written by search.

    ``static_state`` names the state entries that depend only on the sample and that ``step``
    returns unchanged; they keep one row per sample (see the module docstring).
    """

    static_state: tuple[str, ...] = ()

    def __init__(self, vocab_size: int, memory_dim: int, max_length: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.memory_dim = memory_dim
        self.max_length = max_length

    @abstractmethod
    def forward(
        self, memory: torch.Tensor, memory_mask: torch.Tensor, inputs: torch.Tensor
    ) -> torch.Tensor:
        """Teacher forcing: logits ``[B, T, V]``; position t sees ``inputs[:, :t+1]`` only."""

    @abstractmethod
    def init_state(self, memory: torch.Tensor, memory_mask: torch.Tensor) -> State:
        """The decoding state before the first token (BOS) is fed; batch-first tensors."""

    @abstractmethod
    def step(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        """Feed one token per hypothesis (``B x k`` rows): its next-token logits ``[B x k, V]``
        and the new state."""
