"""Tucker-decomposed multilinear fusions: the full-core Tucker fusion, MUTAN and its
block-superdiagonal refinement BLOCK.

``tucker`` contracts the projected modalities with one full core tensor. MUTAN and BLOCK
constrain that core: they project each modality, split the projection into C chunks, and fuse
chunk c with a rank-R constrained core: z_c = sum_r prod_m (W_{m,c}^(r) x~_{m,c}). MUTAN is the
single-chunk case; BLOCK uses many small chunks (a block-superdiagonal core). With more than
two modalities the product runs over all of them (an M-mode Tucker core); an absent modality is
the multiplicative identity 1 in MUTAN and BLOCK, a learned null vector in ``tucker``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.errors import FusionError
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import ModalityProjection, masked_multiply, signed_sqrt_l2


class _BlockTermFusion(Fusion):
    """Shared maths of MUTAN and BLOCK (see the module docstring)."""

    min_modalities = 2

    def __init__(
        self,
        dims: dict[str, int],
        width: int,
        chunks: int,
        rank: int,
        hidden: int,
        dropout: float,
        tanh: bool,
        normalise: bool,
    ) -> None:
        super().__init__(dims)
        if width % chunks:
            raise FusionError(
                f"fusion={self.fusion_name}: width={width} must be divisible by chunks={chunks}; "
                f"change fusion.width or fusion.chunks"
            )
        self.chunks, self.rank, self.normalise = chunks, rank, normalise
        size = width // chunks
        self.project = ModalityProjection(dims, width, activation=nn.Tanh() if tanh else None)
        bound = 1 / math.sqrt(size)
        self.core = nn.Parameter(
            torch.empty(len(dims), chunks, size, rank * size).uniform_(-bound, bound)
        )
        self.core_bias = nn.Parameter(torch.zeros(len(dims), chunks, rank * size))
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(width, hidden)
        self.out_dim = hidden

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        x = self.project(encoded, present)  # [B, M, width]
        x = x.view(x.shape[0], x.shape[1], self.chunks, -1)  # [B, M, C, size]
        factors = torch.einsum("bmcs,mcsk->bmck", x, self.core) + self.core_bias  # k = rank * size
        z = masked_multiply(factors, present)  # [B, C, rank * size]
        z = z.view(z.shape[0], self.chunks, self.rank, -1).sum(2)  # [B, C, size]
        if self.normalise:
            z = signed_sqrt_l2(z)
        return self.out(self.dropout(z.flatten(1)))


@register("mutan")
class MutanFusion(_BlockTermFusion):
    """MUTAN: x~_m = tanh(W_m x_m), z = sum_{r=1}^R prod_m (x~_m W_m^(r)), h = W_o z, a Tucker
    decomposition of the bilinear interaction with a rank-R constrained core.

    Ben-younes et al., "MUTAN: Multimodal Tucker Fusion for Visual Question Answering",
    ICCV 2017, arXiv:1705.06676.

    Args:
        dims: width of each modality's pooled vector (at least two modalities).
        width: width of the projections x~_m and of z.
        rank: rank R of the core.
        hidden: output width of W_o.
        dropout: dropout on z.
    """

    equivalence = "mutan"
    budget_knob = "width"

    def __init__(
        self,
        dims: dict[str, int],
        width: int = 128,
        rank: int = 4,
        hidden: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dims, width, 1, rank, hidden, dropout, tanh=True, normalise=False)


@register("block")
class BlockFusion(_BlockTermFusion):
    """BLOCK: x~_m = W_m x_m split into C chunks; z_c = L2(signed_sqrt(sum_{r=1}^R prod_m
    (x~_{m,c} W_{m,c}^(r)))), h = W_o [z_1; ...; z_C] (a block-superdiagonal tensor core).

    Ben-younes et al., "BLOCK: Bilinear Superdiagonal Fusion for Visual Question Answering and
    Visual Relationship Detection", AAAI 2019, arXiv:1902.00038.

    Args:
        dims: width of each modality's pooled vector (at least two modalities).
        width: width of the projections x~_m (split into ``chunks`` equal blocks).
        chunks: number of blocks C.
        rank: rank R of each block's core.
        hidden: output width of W_o.
        dropout: dropout on the concatenated blocks.
    """

    equivalence = "block"
    budget_knob = "width"
    budget_multiple_of = "chunks"

    def __init__(
        self,
        dims: dict[str, int],
        width: int = 128,
        chunks: int = 8,
        rank: int = 4,
        hidden: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dims, width, chunks, rank, hidden, dropout, tanh=False, normalise=True)


# Most entries the M input modes of tucker's full core may hold (width ** M); beyond it the
# user should lower the width or pick mutan, the rank-constrained form.
MAX_CORE_WIDTH = 1 << 16


@register("tucker")
class TuckerFusion(Fusion):
    """Tucker fusion with a full core: x~_m = tanh(W_m x_m), z = T x_1 x~_1 x_2 ... x_M x~_M
    + b (the core T is width x ... x width x core), h = W_o z.

    The MUTAN paper writes the bilinear VQA fusion as this Tucker decomposition (factor
    matrices W_q, W_v, W_o around a full core T_c); block.bootstrap.pytorch's ``Tucker``
    (also in MMF) is the two-modality case, the core an ``nn.Bilinear``. MUTAN (``mutan``)
    then constrains the core to rank R; ``tucker`` keeps it full.

    With M modalities the core has one mode per modality (an M-mode Tucker decomposition), so
    it holds width^M x core entries: ``width`` must stay small with many modalities (8 for the
    built-in four: 4,096 x core), and a core whose input modes exceed 65,536 entries is
    refused (use ``mutan``, the rank-constrained form, for wider projections). The tanh, as
    in MUTAN, keeps the M-fold product bounded. An absent modality contributes a learned null
    vector n_m instead of x~_m (a full core has no multiplicative identity to stand in for
    it), so its input changes nothing and every subset of modalities is contracted with a core
    of the right order. The core is initialised like ``nn.Bilinear``: uniform in
    +-1/sqrt(width^(M-1)). Ben-younes et al., "MUTAN: Multimodal Tucker Fusion for Visual
    Question Answering", ICCV 2017, arXiv:1705.06676.

    Args:
        dims: width of each modality's pooled vector (at least two modalities).
        width: width of each projection x~_m, the size of each input mode of the core.
        core: size of the core's output mode (t_o in the paper); the budget knob.
        hidden: output width of W_o.
        dropout: dropout on z.
    """

    equivalence = "tucker"
    budget_knob = "core"
    min_modalities = 2

    def __init__(
        self,
        dims: dict[str, int],
        width: int = 8,
        core: int = 32,
        hidden: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        count = len(dims)
        entries = width**count
        if entries > MAX_CORE_WIDTH:
            raise FusionError(
                f"fusion=tucker with width={width} and {count} modalities builds a full core "
                f"with {entries:,} x core entries ({width}^{count}; limit {MAX_CORE_WIDTH:,} "
                f"before the output mode); lower fusion.width or use fusion=mutan"
            )
        self.width = width
        self.project = ModalityProjection(dims, width, activation=nn.Tanh())
        self.null = nn.Parameter(torch.empty(count, width).uniform_(-1.0, 1.0))
        bound = 1 / math.sqrt(width ** (count - 1))
        self.core = nn.Parameter(torch.empty(*[width] * count, core).uniform_(-bound, bound))
        self.core_bias = nn.Parameter(torch.empty(core).uniform_(-bound, bound))
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(core, hidden)
        self.out_dim = hidden

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        x = self.project(encoded, present)  # [B, M, width], zero where absent
        x = torch.where(present.unsqueeze(-1), x, self.null)
        z = x[:, 0] @ self.core.reshape(self.width, -1)  # mode 1: [B, width^(M-1) * core]
        for m in range(1, x.shape[1]):  # contract the next mode, one modality at a time
            z = torch.einsum("bi,bik->bk", x[:, m], z.view(z.shape[0], self.width, -1))
        return self.out(self.dropout(z + self.core_bias))
