"""Show, Attend and Tell with a GRU: additive attention over the memory at every step."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.decoders.base import Decoder, State
from mmrun.encoders.base import masked_mean
from mmrun.fusion.layers import masked_softmax


class GRUDecoder(Decoder):
    """Soft-attention recurrent decoder of Show, Attend and Tell, with a GRU cell for the LSTM.

    With memory tokens a_i (the real ones, ``memory_mask``), word embeddings E y and hidden
    state h, each step t reads the previous word y_{t-1} and computes

        h_0 = tanh(W_init mean_i a_i + b_init)                    (the paper's f_init)
        e_ti = v^T tanh(W_a a_i + W_h h_{t-1})                   (additive attention, Bahdanau)
        alpha_t = softmax over the real tokens of e_t,  z_t = sum_i alpha_ti a_i
        h_t = GRU([E y_{t-1}; z_t], h_{t-1})
        logits_t = L_o(E y_{t-1} + L_h h_t + L_z z_t)            (the paper's deep output, eq. 7)

    Dropout acts on the word embedding and on the input of L_o. A row with no real memory
    token gets z_t = 0 and h_0 = tanh(b_init): its logits stay finite. Two refinements of the
    paper are left out: the gate beta_t = sigmoid(f_beta(h_{t-1})) that scales z_t, and the
    doubly stochastic attention regulariser of the loss. Xu et al., "Show, Attend and Tell:
    Neural Image Caption Generation with Visual Attention", ICML 2015, arXiv:1502.03044;
    Bahdanau et al., ICLR 2015, arXiv:1409.0473; GRU: Cho et al., EMNLP 2014, arXiv:1406.1078.

    Args:
        vocab_size, memory_dim, max_length: run-time facts (see ``Decoder``); ``max_length``
            is not needed by a recurrent decoder.
        embed: word embedding width (also the width of the deep output layer).
        hidden: GRU state width (also the attention width).
        dropout: dropout rate on the embeddings and before the output layer.
    """

    static_state = ("memory", "keys", "memory_mask")

    def __init__(
        self,
        vocab_size: int,
        memory_dim: int,
        max_length: int,
        embed: int = 128,
        hidden: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(vocab_size, memory_dim, max_length)
        self.embedding = nn.Embedding(vocab_size, embed)
        self.init_hidden = nn.Linear(memory_dim, hidden)
        self.attend_memory = nn.Linear(memory_dim, hidden)
        self.attend_hidden = nn.Linear(hidden, hidden, bias=False)
        self.attend_score = nn.Linear(hidden, 1, bias=False)
        self.cell = nn.GRUCell(embed + memory_dim, hidden)
        self.out_hidden = nn.Linear(hidden, embed)
        self.out_context = nn.Linear(memory_dim, embed, bias=False)
        self.output = nn.Linear(embed, vocab_size)
        self.dropout = nn.Dropout(dropout)

    def init_state(self, memory: torch.Tensor, memory_mask: torch.Tensor) -> State:
        memory = memory.masked_fill(~memory_mask.unsqueeze(-1), 0.0)  # padding never leaks
        return {
            "h": torch.tanh(self.init_hidden(masked_mean(memory, memory_mask))),
            "memory": memory,
            "keys": self.attend_memory(memory),  # W_a a_i, once per sequence
            "memory_mask": memory_mask,
        }

    def forward(
        self, memory: torch.Tensor, memory_mask: torch.Tensor, inputs: torch.Tensor
    ) -> torch.Tensor:
        state = self.init_state(memory, memory_mask)
        embedded = self.dropout(self.embedding(inputs))
        logits = []
        for t in range(inputs.shape[1]):
            step_logits, state = self._advance(state, embedded[:, t])
            logits.append(step_logits)
        return torch.stack(logits, 1)

    def step(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        return self._advance(state, self.dropout(self.embedding(tokens)))

    def _advance(self, state: State, embedded: torch.Tensor) -> tuple[torch.Tensor, State]:
        """One step from the embedded previous words ``[B x k, embed]`` (k per sample)."""
        h, memory, keys = state["h"], state["memory"], state["keys"]
        batch = memory.shape[0]
        query = self.attend_hidden(h).view(batch, -1, 1, keys.shape[-1])  # [B, k, 1, hidden]
        scores = self.attend_score((keys[:, None] + query).tanh_()).squeeze(-1)  # [B, k, L]
        alpha = masked_softmax(scores, state["memory_mask"][:, None])
        context = torch.bmm(alpha, memory).view(h.shape[0], -1)  # [B x k, D]
        h = self.cell(torch.cat([embedded, context], -1), h)
        deep = embedded + self.out_hidden(h) + self.out_context(context)
        return self.output(self.dropout(deep)), {**state, "h": h}
