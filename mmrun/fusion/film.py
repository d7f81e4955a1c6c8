"""Feature-wise linear modulation of the other modalities by one conditioning modality."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import ModalityProjection, masked_count


@register("film")
class FiLMFusion(Fusion):
    """FiLM: one conditioning modality c modulates every other modality m,
    h = [W_c z_c ; mean_{m != c} ((1 + gamma(z_c)) * W_m z_m + beta(z_c))].

    gamma is predicted as an offset from 1 so that a fresh layer starts near the identity.
    When the conditioner is absent the modulation is the identity (gamma = 0 offset,
    beta = 0) and its half of the output is zero; absent modulated modalities are left out of
    the mean. Perez et al., "FiLM: Visual Reasoning with a General Conditioning Layer",
    AAAI 2018, arXiv:1709.07871.

    Args:
        dims: width of each modality's pooled vector (at least two modalities).
        conditioner: the modality that produces gamma and beta; default the first one.
        hidden: width of each projection; the output is ``2 * hidden`` wide.
        dropout: dropout on the fused vector.
    """

    equivalence = "film"
    min_modalities = 2

    def __init__(
        self,
        dims: dict[str, int],
        conditioner: str | None = None,
        hidden: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        self.conditioner = self.chosen_modality(conditioner, "conditioner")
        self.cond_index = self.modalities.index(self.conditioner)
        self.others = [i for i, m in enumerate(self.modalities) if m != self.conditioner]
        self.project = ModalityProjection(dims, hidden)
        self.film = nn.Linear(dims[self.conditioner], 2 * hidden)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = 2 * hidden

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        c, others = self.cond_index, self.others
        z = self.project(encoded, present)  # [B, M, H], absent rows zero
        has_cond = present[:, c : c + 1]
        condition = encoded[self.conditioner].pooled.masked_fill(~has_cond, 0.0)
        gamma, beta = self.film(condition).masked_fill(~has_cond, 0.0).chunk(2, -1)
        modulated = (1 + gamma.unsqueeze(1)) * z[:, others] + beta.unsqueeze(1)
        modulated = modulated.masked_fill(~present[:, others].unsqueeze(-1), 0.0)
        mean = modulated.sum(1) / masked_count(present[:, others])
        return self.dropout(torch.cat([z[:, c], mean], dim=-1))
