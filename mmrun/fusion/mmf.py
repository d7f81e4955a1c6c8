"""The two simple baselines of the BLOCK fusion library (block.bootstrap.pytorch, also shipped by
MMF): a sum of activated per-modality projections (LinearSum) and an MLP over the
concatenation (ConcatMLP), generalised from two inputs to any number of modalities."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.errors import FusionError
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import ModalityProjection, masked_pooled, signed_sqrt_l2

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
}


def activation_module(name: str, fusion: str) -> nn.Module:
    """The activation called ``name``, or a ``FusionError`` listing the choices."""
    if name not in ACTIVATIONS:
        raise FusionError(
            f"fusion.activation={name!r} is not an activation of fusion={fusion}; "
            f"choose one of: {', '.join(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]()


@register("linear_sum")
class LinearSumFusion(Fusion):
    """LinearSum: h = W_o drop(N(sum_{m present} act(W_m x_m + b_m))) + b_o, N the optional
    signed-sqrt + L2 normalisation; an absent modality adds nothing to the sum.

    The activation comes before the sum, as in the original (each modality is embedded on its
    own and the embeddings are added), so without the normalisation h is an additive model
    sum_m g_m(x_m) with no cross-modal interaction: the baseline against which BLOCK measures
    its bilinear fusions. MMF and BLOCK also apply an activation after W_o; here the task head
    follows instead. The "LinearSum" fusion of block.bootstrap.pytorch, the fusion library
    released with BLOCK (Ben-younes et al., "BLOCK: Bilinear Superdiagonal Fusion for Visual
    Question Answering and Visual Relationship Detection", AAAI 2019, arXiv:1902.00038), also in MMF (Singh et al., 2020,
    facebookresearch/mmf, ``linear_sum``), where it takes exactly two inputs.

    Args:
        dims: width of each modality's pooled vector.
        width: width every modality is projected to (``mm_dim`` in MMF).
        hidden: output width of W_o.
        activation: ``relu`` (MMF's default), ``gelu`` or ``tanh``, applied to each projection.
        normalize: signed square root then L2 normalisation of the sum, as in MMF.
        dropout: dropout on the sum, before W_o.
    """

    equivalence = "linear_sum"
    budget_knob = "width"

    def __init__(
        self,
        dims: dict[str, int],
        width: int = 256,
        hidden: int = 128,
        activation: str = "relu",
        normalize: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        act = activation_module(activation, "linear_sum")
        self.project = ModalityProjection(dims, width, activation=act)
        self.normalize = normalize
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(width, hidden)
        self.out_dim = hidden

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        z = self.project(encoded, present).sum(1)  # absent rows are zero after the activation
        if self.normalize:
            z = signed_sqrt_l2(z)
        return self.out(self.dropout(z))


@register("concat_mlp")
class ConcatMLPFusion(Fusion):
    """ConcatMLP: h = MLP([x_1; ...; x_M]), a multilayer perceptron (linear, activation,
    dropout per hidden layer, then a last linear layer to ``hidden``) over the concatenated
    pooled vectors, an absent modality's block zeroed.

    Unlike ``concat`` (at most one projection followed by GELU) it ends on a linear layer and
    is as deep as ``sizes`` says. The "ConcatMLP" fusion of block.bootstrap.pytorch, the
    fusion library released with BLOCK (Ben-younes et al., "BLOCK: Bilinear Superdiagonal Fusion
    for Visual Question Answering and Visual Relationship Detection", AAAI 2019,
    arXiv:1902.00038), also in MMF (Singh et
    al., 2020, facebookresearch/mmf, ``concat_mlp``), whose default is two hidden layers of 500.

    Args:
        dims: width of each modality's pooled vector.
        hidden: output width; also the width of both hidden layers when ``sizes`` is None, so
            that ``fusion.param_budget`` scales the whole MLP (with ``sizes`` given it scales
            only the last layer).
        sizes: widths of the hidden layers, e.g. ``[512, 256]``; None: ``[hidden, hidden]``.
        activation: ``relu`` (MMF's default), ``gelu`` or ``tanh``, after each hidden layer.
        dropout: dropout after each hidden layer's activation.
    """

    equivalence = "concat_mlp"

    def __init__(
        self,
        dims: dict[str, int],
        hidden: int = 128,
        sizes: list[int] | None = None,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        if hidden < 1:
            raise FusionError(
                f"fusion.hidden={hidden}: fusion=concat_mlp needs an output width of at least 1; "
                f"set fusion.hidden (fusion=concat fusion.hidden=0 keeps the raw concatenation)"
            )
        widths = [hidden, hidden] if sizes is None else list(sizes)
        if not widths:
            raise FusionError(
                "fusion.sizes=[] leaves concat_mlp without a hidden layer (a linear map of the "
                "concatenation); give at least one width, e.g. fusion.sizes=[256], or use "
                "fusion=concat"
            )
        layers: list[nn.Module] = []
        width = sum(dims.values())
        for size in widths:
            act = activation_module(activation, "concat_mlp")
            layers += [nn.Linear(width, size), act, nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, hidden))
        self.mlp = nn.Sequential(*layers)
        self.out_dim = hidden

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat(masked_pooled(encoded, present, self.modalities), dim=-1))
