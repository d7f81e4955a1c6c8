"""A small causal Transformer decoder with cross-attention to the memory."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmrun.decoders.base import Decoder, State
from mmrun.errors import ConfigError

FFN_MULT = 4  # feed-forward width as a multiple of the model width, as in Vaswani et al.
POSITIONS = ("learned", "sinusoidal")


class Attention(nn.Module):
    """Multi-head scaled dot-product attention whose keys and values are computed separately
    (``keys_values``), so that a decoder can cache them: softmax(q k^T / sqrt(d_h) + mask) v.

    Args:
        width: query, key and value width.
        heads: number of heads; divides ``width``.
        dropout: dropout on the attention weights.
    """

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def keys_values(self, x: torch.Tensor) -> torch.Tensor:
        """Keys and values of ``x [B, N, W]``, side by side: ``[B, N, 2 W]``."""
        return self.kv(x)

    def forward(self, x: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Queries from ``x [B, N, W]`` attend to ``kv`` (as from ``keys_values``); ``mask``:
        True where a query may attend, or an additive bias."""
        batch, length, width = x.shape
        k, v = kv.view(batch, kv.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        q = self.q(x).view(batch, length, self.heads, -1).transpose(1, 2)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(attended.transpose(1, 2).reshape(batch, length, width))


class DecoderLayer(nn.Module):
    """Pre-norm decoder layer: x += SelfAttn(LN(x)) (causal), x += CrossAttn(LN(x), LN(m)),
    x += FFN(LN(x)), with dropout on each residual branch.

    The cross-attention branch is multiplied by 0 for a row whose memory has no real token
    (its softmax would otherwise spread over padding). Self-attention keys and values are
    returned so that a decoding step can append them to a cache; the memory's keys and values
    are shared by the hypotheses of a sample (see ``mmrun.decoders.base``).

    Args:
        width: token width.
        heads: attention heads.
        dropout: dropout on the attention weights, the residual branches and inside the FFN.
    """

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(width)
        self.self_attention = Attention(width, heads, dropout)
        self.norm_cross = nn.LayerNorm(width)
        self.norm_memory = nn.LayerNorm(width)
        self.cross_attention = Attention(width, heads, dropout)
        self.norm_ffn = nn.LayerNorm(width)
        self.ffn = nn.Sequential(
            nn.Linear(width, FFN_MULT * width),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(FFN_MULT * width, width),
        )
        self.dropout = nn.Dropout(dropout)

    def memory_keys_values(self, memory: torch.Tensor) -> torch.Tensor:
        """Cross-attention keys and values of the (projected) memory, once per sequence."""
        return self.cross_attention.keys_values(self.norm_memory(memory))

    def forward(
        self,
        x: torch.Tensor,
        past: torch.Tensor,
        causal: torch.Tensor | None,
        cross: torch.Tensor,
        cross_bias: torch.Tensor,
        has_memory: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B x k, N, W]`` (k hypotheses per sample, on consecutive rows) are the positions
        after the ``past`` keys and values ``[B x k, P, 2 W]``; ``causal [N, P + N]`` (True = may
        attend), None when N = 1. ``cross [B, L, 2 W]``, ``cross_bias [B, 1, 1, L]`` and
        ``has_memory [B, 1, 1]`` have one row per sample: the k N positions of a sample are
        its queries to the memory. Returns the new ``x`` and the self-attention keys and
        values of all P + N positions."""
        rows, length, width = x.shape
        h = self.norm_self(x)
        kv = torch.cat([past, self.self_attention.keys_values(h)], 1)
        x = x + self.dropout(self.self_attention(h, kv, causal))
        queries = self.norm_cross(x).view(cross.shape[0], -1, width)
        attended = self.cross_attention(queries, cross, cross_bias) * has_memory
        x = x + self.dropout(attended.view(rows, length, width))
        return x + self.dropout(self.ffn(self.norm_ffn(x))), kv


class TransformerDecoder(Decoder):
    """Causal Transformer decoder with cross-attention (Vaswani et al.), pre-norm.

        x_0 = sqrt(W) E y + P                  (token embedding, learned or sinusoidal positions)
        m = W_m memory                          (memory projected to the model width W)
        x_l = DecoderLayer(x_{l-1}, m)          (causal self-attention, cross-attention, FFN)
        logits = W_o LN(x_L) + b                (W_o = E when ``tie_embeddings``)

    Layers are pre-norm (LayerNorm before each branch; Xiong et al., ICML 2020,
    arXiv:2002.04745), with a final LayerNorm. ``step`` keeps every layer's self-attention
    keys and values of the positions so far in the state (``self<l>``: ``[B x k, t, 2 W]``)
    and the memory's cross-attention keys and values (``cross<l>``: ``[B, L, 2 W]``, computed
    once by ``init_state``, shared by the k hypotheses of a sample), so a step computes one
    position, and gives the logits of ``forward``
    (which runs the same layers over all positions with a causal mask). A row without a real
    memory token gets no cross-attention contribution. Vaswani et al., "Attention Is All You
    Need", NeurIPS 2017, arXiv:1706.03762.

    Args:
        vocab_size, memory_dim, max_length: run-time facts (see ``Decoder``); ``max_length``
            sizes the position table.
        layers: decoder layers.
        heads: attention heads; must divide ``width``.
        width: model width W.
        dropout: dropout on embeddings, attention weights, residual branches and in the FFN.
        positions: ``learned`` (a trained table) or ``sinusoidal`` (the fixed sin/cos table of
            Vaswani et al. §3.5).
        tie_embeddings: share the output projection with the token embedding (Press & Wolf,
            EACL 2017, arXiv:1608.05859; Vaswani et al. §3.4).
    """

    def __init__(
        self,
        vocab_size: int,
        memory_dim: int,
        max_length: int,
        layers: int = 2,
        heads: int = 4,
        width: int = 128,
        dropout: float = 0.1,
        positions: str = "learned",
        tie_embeddings: bool = True,
    ) -> None:
        super().__init__(vocab_size, memory_dim, max_length)
        if layers < 1:
            raise ConfigError(f"decoder.layers={layers} must be at least 1; set decoder.layers=2")
        if width % heads:
            raise ConfigError(
                f"decoder.heads={heads} must divide decoder.width={width}; change decoder.heads "
                f"or decoder.width"
            )
        if positions not in POSITIONS:
            raise ConfigError(
                f"decoder.positions={positions!r} is not one of {', '.join(POSITIONS)}; "
                f"set decoder.positions=learned"
            )
        self.width = width
        self.embedding = nn.Embedding(vocab_size, width)
        nn.init.normal_(self.embedding.weight, std=width**-0.5)  # unit scale after sqrt(W)
        if positions == "learned":
            self.positions = nn.Parameter(torch.randn(max_length, width) * 0.02)
        else:
            self.register_buffer("positions", sinusoids(max_length, width), persistent=False)
        self.memory_projection = nn.Linear(memory_dim, width)
        self.layers = nn.ModuleList(DecoderLayer(width, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.output = nn.Linear(width, vocab_size)
        if tie_embeddings:
            self.output.weight = self.embedding.weight
        self.dropout = nn.Dropout(dropout)
        self.static_state = ("memory_mask",) + tuple(f"cross{i}" for i in range(layers))

    def init_state(self, memory: torch.Tensor, memory_mask: torch.Tensor) -> State:
        memory = memory.masked_fill(~memory_mask.unsqueeze(-1), 0.0)  # padding never leaks
        projected = self.memory_projection(memory)
        batch = memory.shape[0]
        empty = projected.new_zeros(batch, 0, 2 * self.width)
        state = {"memory_mask": memory_mask}
        for i, layer in enumerate(self.layers):
            state[f"cross{i}"] = layer.memory_keys_values(projected)
            state[f"self{i}"] = empty
        return state

    def forward(
        self, memory: torch.Tensor, memory_mask: torch.Tensor, inputs: torch.Tensor
    ) -> torch.Tensor:
        length = inputs.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=inputs.device).tril()
        x, _ = self._run(self.init_state(memory, memory_mask), inputs, causal)
        return self.output(self.norm(x))

    def step(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        x, state = self._run(state, tokens[:, None], None)
        return self.output(self.norm(x[:, 0])), state

    def _run(
        self, state: State, tokens: torch.Tensor, causal: torch.Tensor | None
    ) -> tuple[torch.Tensor, State]:
        """Run ``tokens [B, N]`` through the layers after the positions cached in ``state``."""
        start = state["self0"].shape[1]
        end = start + tokens.shape[1]
        if end > self.max_length:
            raise ValueError(f"{end} positions exceed the decoder's max_length={self.max_length}")
        x = self.embedding(tokens) * math.sqrt(self.width) + self.positions[start:end]
        x = self.dropout(x)
        mask = state["memory_mask"]
        cross_bias = torch.zeros(mask.shape, dtype=x.dtype, device=x.device)
        cross_bias = cross_bias.masked_fill(~mask, torch.finfo(x.dtype).min)[:, None, None, :]
        has_memory = mask.any(1).to(x.dtype)[:, None, None]
        state = dict(state)
        for i, layer in enumerate(self.layers):
            x, state[f"self{i}"] = layer(
                x, state[f"self{i}"], causal, state[f"cross{i}"], cross_bias, has_memory
            )
        return x, state


def sinusoids(length: int, width: int) -> torch.Tensor:
    """Vaswani et al.'s positions: P[p, 2i] = sin(p / 10000^(2i/W)), P[p, 2i+1] = cos(...)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(1e4) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : width // 2]
    return table
