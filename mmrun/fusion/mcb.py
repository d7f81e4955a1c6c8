"""Multimodal compact bilinear pooling."""

from __future__ import annotations

import torch

from mmrun.encoders.base import EncoderOutput
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import signed_sqrt_l2


@register("mcb")
class MCBFusion(Fusion):
    """Compact bilinear pooling: h = L2(signed_sqrt(FFT^-1(FFT(Psi_1 x_1) * ... * FFT(Psi_M x_M)))),
    Psi_m a count sketch (random hash h_m: [d_m] -> [D], random sign s_m) into D bins.

    The circular convolution of the sketches is the count sketch of the outer product
    x_1 (x) ... (x) x_M, so M > 2 modalities follow directly; an absent modality's spectrum
    is 1 (the sketch of a unit delta, the identity of convolution). Hashes and signs are fixed
    buffers drawn from ``seed``, which conf/fusion/mcb.yaml ties to the run's seed so that the
    spread over seeds includes the hashing. Fukui et al., "Multimodal Compact Bilinear Pooling for Visual
    Question Answering and Visual Grounding", EMNLP 2016, arXiv:1606.01847.

    Args:
        dims: width of each modality's pooled vector (at least two modalities).
        dim: sketch width D, which is the output width.
        seed: seed of the random hashes and signs.
    """

    equivalence = "mcb"
    budget_knob = "dim"
    min_modalities = 2

    def __init__(self, dims: dict[str, int], dim: int = 1024, seed: int = 0) -> None:
        super().__init__(dims)
        generator = torch.Generator().manual_seed(seed)
        total = sum(dims.values())
        self.register_buffer("hashes", torch.randint(dim, (total,), generator=generator))
        self.register_buffer(
            "signs", torch.randint(2, (total,), generator=generator).float() * 2 - 1
        )
        self.widths = list(dims.values())
        self.offsets = [sum(self.widths[:i]) for i in range(len(self.widths))]
        self.out_dim = dim

    def sketch(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Count sketch ``[B, D]`` of modality number ``index``: y[h(j)] += s(j) x[j]."""
        start = self.offsets[index]
        hashes = self.hashes[start : start + self.widths[index]]
        signs = self.signs[start : start + self.widths[index]]
        return x.new_zeros(x.shape[0], self.out_dim).index_add(1, hashes, x * signs)

    def compact_bilinear(
        self, encoded: dict[str, EncoderOutput], present: torch.Tensor
    ) -> torch.Tensor:
        """Count sketch of the outer product of the present modalities, before normalisation."""
        spectrum = None
        for i, m in enumerate(self.modalities):
            # FFTs run in float32: half-precision FFTs only exist for some sizes and devices.
            f = torch.fft.rfft(self.sketch(i, encoded[m].pooled.float()), n=self.out_dim)
            f = torch.where(present[:, i : i + 1], f, torch.ones_like(f))
            spectrum = f if spectrum is None else spectrum * f
        return torch.fft.irfft(spectrum, n=self.out_dim)

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        dtype = encoded[self.modalities[0]].pooled.dtype
        return signed_sqrt_l2(self.compact_bilinear(encoded, present)).to(dtype)
