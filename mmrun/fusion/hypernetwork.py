"""A hypernetwork fusion: one modality generates the weights applied to the others."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import ModalityProjection, masked_count


@register("hypernetwork")
class HyperNetworkFusion(Fusion):
    """Hypernetwork fusion: the conditioning modality c generates a linear layer (W(c), b(c))
    that maps every other modality, h = b(c) + mean_{m != c present} W(c)^T u_m, with
    u_m = P_m x_m, e = E x_c, W(c) = reshape(H e + H_0) (width x hidden), b(c) = G e + g_0.

    The weight generator is a small linear hypernetwork on a low-dimensional embedding e of
    the conditioner, as in the static hypernetworks of Ha, Dai and Le ("HyperNetworks", ICLR
    2017, arXiv:1609.09106); projecting the others to ``width`` first keeps the generated
    matrix small (width x hidden, from embed x width x hidden weights). The generated bias is
    added once, outside the mean, so a sample with only the conditioner still gets an output
    that depends on it; absent other modalities are left out of the mean. When the conditioner
    is absent, the weights are generated from a learned null embedding instead of e, one fixed
    layer for such samples. Ludwig's ``hypernetwork`` combiner (Ludwig 0.16) also lets its
    first input feature generate a square matrix applied to the other features, through a
    two-layer ReLU hypernetwork.

    With two modalities and ``embed == width`` h is a linear layer on the outer product
    [1; e] (x) [1; u], the function class of ``tensor`` at that width (a unit test shows it);
    with more it is a mean of pairwise conditioner-modality interactions, which ``tensor``
    (interactions of every order) is not, so it declares its own class.

    Args:
        dims: width of each modality's pooled vector (at least two modalities).
        conditioner: the modality that generates the weights; default the first one.
        width: width u_m of the other modalities' projections (rows of the generated matrix).
        embed: width of the conditioner's embedding e fed to the hypernetwork.
        hidden: output width (columns of the generated matrix).
        dropout: dropout on the fused vector.
    """

    equivalence = "hypernetwork"
    budget_knob = "width"
    min_modalities = 2

    def __init__(
        self,
        dims: dict[str, int],
        conditioner: str | None = None,
        width: int = 32,
        embed: int = 16,
        hidden: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        self.conditioner = self.chosen_modality(conditioner, "conditioner")
        self.cond_index = self.modalities.index(self.conditioner)
        self.others = [i for i, m in enumerate(self.modalities) if m != self.conditioner]
        self.width, self.hidden = width, hidden
        self.project = ModalityProjection(
            {m: d for m, d in dims.items() if m != self.conditioner}, width
        )
        self.embed = nn.Linear(dims[self.conditioner], embed)
        self.null_embedding = nn.Parameter(torch.randn(embed) * 0.02)
        self.weights = nn.Linear(embed, width * hidden)  # H and H_0
        self.bias = nn.Linear(embed, hidden)  # G and g_0
        self.dropout = nn.Dropout(dropout)
        self.out_dim = hidden

    def generate(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The generated layer for embeddings ``e [B, embed]``: ``[B, width, hidden]``, ``[B, hidden]``."""
        return self.weights(e).view(-1, self.width, self.hidden), self.bias(e)

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        c = self.cond_index
        has_cond = present[:, c : c + 1]
        condition = encoded[self.conditioner].pooled.masked_fill(~has_cond, 0.0)
        e = torch.where(has_cond, self.embed(condition), self.null_embedding)
        weight, bias = self.generate(e)
        others = present[:, self.others]
        u = self.project(encoded, others)  # [B, M - 1, width], zero where absent
        mapped = torch.einsum("bmw,bwh->bh", u, weight) / masked_count(others)
        return self.dropout(bias + mapped)
