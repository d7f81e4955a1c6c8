"""Pieces shared by several fusions: per-modality projections that honour ``present``,
masked softmax, signed-sqrt + L2 normalisation, and a masked multi-head attention block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.errors import FusionError


class ModalityProjection(nn.Module):
    """Project each modality's pooled vector to one common width: ``[B, M, width]``.

    Absent modalities' inputs are zeroed before the linear maps and their outputs after, so no
    value of an absent input, not even a non-finite one, reaches the output or the gradient of
    any weight; absent entries are zero (products turn them into 1 with ``masked_multiply``).

    Args:
        dims: width of each modality's pooled vector.
        width: common output width.
        activation: optional module applied after each linear map (e.g. ``nn.Tanh()``).
    """

    def __init__(self, dims: dict[str, int], width: int, activation: nn.Module | None = None):
        super().__init__()
        self.linears = nn.ModuleDict({m: nn.Linear(d, width) for m, d in dims.items()})
        self.activation = activation if activation is not None else nn.Identity()

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        inputs = masked_pooled(encoded, present, list(self.linears))
        pairs = zip(inputs, self.linears.values(), strict=True)
        z = torch.stack([self.activation(lin(x)) for x, lin in pairs], 1)
        return z.masked_fill(~present.unsqueeze(-1), 0.0)


class TokenProjection(nn.Module):
    """Project each modality's tokens to one common width, add a learned modality-type
    embedding, and fold ``present`` into the token mask.

    Returns per-modality lists ``tokens [B, T_m, width]`` and ``mask [B, T_m]`` (True = real
    token of a present modality). Masked tokens are zeroed before the linear map and after it,
    so that no value of theirs, not even a non-finite one, reaches the output or the gradient of
    any weight.

    Args:
        dims: token width of each modality.
        width: common output width.
    """

    def __init__(self, dims: dict[str, int], width: int) -> None:
        super().__init__()
        self.linears = nn.ModuleDict({m: nn.Linear(d, width) for m, d in dims.items()})
        self.type_embedding = nn.Parameter(torch.randn(len(dims), width) * 0.02)

    def forward(
        self, encoded: dict[str, EncoderOutput], present: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        tokens, masks = [], []
        for i, (m, lin) in enumerate(self.linears.items()):
            mask = encoded[m].mask & present[:, i : i + 1]
            off = ~mask.unsqueeze(-1)  # padded tokens and absent modalities
            x = lin(encoded[m].tokens.masked_fill(off, 0.0)) + self.type_embedding[i]
            tokens.append(x.masked_fill(off, 0.0))
            masks.append(mask)
        return tokens, masks


def masked_pooled(
    encoded: dict[str, EncoderOutput], present: torch.Tensor, modalities: list[str]
) -> list[torch.Tensor]:
    """Pooled vectors in ``modalities`` order, zero where the modality is absent."""
    return [
        encoded[m].pooled.masked_fill(~present[:, i : i + 1], 0.0) for i, m in enumerate(modalities)
    ]


def with_null_query(
    query: torch.Tensor, mask: torch.Tensor, null: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Query tokens ``[B, T, D]`` and their mask ``[B, T]``, where a sample without any real query
    token (its query modality absent) queries with the learned ``null`` token in every position
    instead (all of them then count as real), so it still summarises the other modalities."""
    has_query = mask.any(1, keepdim=True)  # [B, 1]
    return torch.where(has_query.unsqueeze(-1), query, null), mask | ~has_query


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over the entries where ``mask`` is True; rows with no such entry give zeros
    (never NaN), and masked entries get exactly zero weight and zero gradient."""
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=dim) * mask.any(dim=dim, keepdim=True)


def masked_count(present: torch.Tensor) -> torch.Tensor:
    """``[B, 1]`` integer count of present modalities, at least 1 (for means over modalities;
    dividing a float tensor by it keeps that tensor's dtype)."""
    return present.sum(1, keepdim=True).clamp_min(1)


def signed_sqrt_l2(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Power normalisation sign(x) sqrt(|x|) then L2 normalisation, as in MCB/MFB/BLOCK.
    The ``eps`` inside the root keeps the gradient finite at 0."""
    return F.normalize(torch.sign(x) * torch.sqrt(x.abs() + eps), dim=-1)


def masked_multiply(z: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Element-wise product over modalities of ``z [B, M, ...]``; absent modalities act as 1."""
    shape = present.shape + (1,) * (z.dim() - 2)
    return z.masked_fill(~present.view(shape), 1.0).prod(1)


class MaskedAttention(nn.Module):
    """Multi-head attention of ``query [B, Lq, D]`` over ``context [B, Lk, D]`` with a key
    mask ``[B, Lk]`` (True = attend). A query row with no key to attend to gets a zero
    attention output instead of NaN.

    Args:
        dim: query (and output) width.
        heads: number of heads; must divide ``dim``.
        dropout: dropout on the attention weights.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise FusionError(
                f"fusion.heads={heads} must divide the attention width {dim}; change fusion.heads"
            )
        self.heads = heads
        self.dropout = dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, query: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor
    ) -> torch.Tensor:
        batch, length, dim = query.shape
        q = self.q(query).view(batch, length, self.heads, -1).transpose(1, 2)
        k, v = (
            self.kv(context).view(batch, context.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        )
        bias = torch.zeros(key_mask.shape, dtype=q.dtype, device=q.device)
        bias = bias.masked_fill(~key_mask, torch.finfo(q.dtype).min)[:, None, None, :]
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0
        )
        # A row whose keys are all masked attends uniformly to junk: zero it.
        attended = attended * key_mask.any(1).to(q.dtype)[:, None, None, None]
        return self.out(attended.transpose(1, 2).reshape(batch, length, dim))


class AttentionBlock(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x), LN(context)), then x + FFN(LN(x)).

    Args:
        dim: token width.
        heads: attention heads.
        dropout: dropout on attention weights and in the feed-forward network.
        cross: attend to a separate ``context`` (own LayerNorm) instead of to ``x`` itself.
        ffn_mult: hidden width of the feed-forward network, as a multiple of ``dim``.
        activation: the feed-forward non-linearity (a module class, e.g. ``nn.ReLU``).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        dropout: float = 0.0,
        cross: bool = False,
        ffn_mult: int = 2,
        activation: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim) if cross else None
        self.attention = MaskedAttention(dim, heads, dropout)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_mult * dim),
            activation(),
            nn.Dropout(dropout),
            nn.Linear(ffn_mult * dim, dim),
        )

    def forward(
        self, x: torch.Tensor, key_mask: torch.Tensor, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``key_mask`` masks the keys: ``context``, or ``x`` itself when no context is given.
        A self block given a context normalises it with the query LayerNorm, so a last layer
        can update only some rows (e.g. a CLS token) of the sequence it attends to."""
        h = self.norm_q(x)
        if context is None:
            kv = h
        else:
            kv = (self.norm_q if self.norm_kv is None else self.norm_kv)(context)
        x = x + self.attention(h, kv, key_mask)
        return x + self.ffn(self.norm_ffn(x))
