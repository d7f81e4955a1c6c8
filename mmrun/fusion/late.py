"""Late (decision-level) fusion: one prediction head per modality, predictions combined."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput, mlp
from mmrun.errors import FusionError
from mmrun.fusion.base import Fusion, register
from mmrun.fusion.layers import masked_count, masked_pooled, masked_softmax

COMBINE = ("mean", "weighted", "poe")


@register("late")
class LateFusion(Fusion):
    """Late fusion: l_m = f_m(z_m) per modality, combined over the present modalities as
    mean: l = mean_m l_m; weighted: l = sum_m w_m l_m, w = softmax(a) renormalised over present
    modalities; poe: l = sum_m l_m.

    ``poe`` is a product of experts. For softmax (multiclass) experts, softmax(sum_m l_m)
    equals the normalised product prod_m softmax(l_m), since each log-softmax differs from its
    logits by a per-sample constant; for sigmoid (binary, multilabel) experts,
    sigmoid(sum_m l_m) is the normalised product of the Bernoulli experts per label. So summing
    logits is the exact PoE for every classification task and any ``num_outputs``. For
    regression it simply sums the predictions; the PoE of equal-variance Gaussians is their
    mean, so use ``combine=mean`` there. Emits logits; the shared head is skipped.
    Decision-level fusion as in Baltrusaitis et al., "Multimodal Machine Learning: A Survey
    and Taxonomy", TPAMI 2019, arXiv:1705.09406; products of experts after Hinton, "Training
    Products of Experts by Minimizing Contrastive Divergence", Neural Computation 2002.

    With every modality present the three are one function class (``equivalent_over``):
    mean's 1/M and weighted's softmax weights are then constants that fold into the last
    linear layer of each head, giving poe's plain sum. With modalities missing they differ.

    Args:
        dims: width of each modality's pooled vector.
        num_outputs: number of logits (the task's output width).
        combine: ``mean``, ``weighted`` or ``poe``.
        hidden: hidden width of each per-modality two-layer head.
        dropout: dropout inside each head.
    """

    equivalence = "late"
    equivalent_over = ("combine",)
    emits_logits = True

    def __init__(
        self,
        dims: dict[str, int],
        num_outputs: int,
        combine: str = "mean",
        hidden: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        if combine not in COMBINE:
            raise FusionError(
                f"fusion.combine={combine!r} is not known; choose one of: {', '.join(COMBINE)}"
            )
        self.combine = combine
        self.heads = nn.ModuleDict(
            {m: mlp(d, hidden, num_outputs, dropout) for m, d in dims.items()}
        )
        self.weight_logits = nn.Parameter(torch.zeros(len(dims))) if combine == "weighted" else None
        self.out_dim = num_outputs

    def weights(self, present: torch.Tensor) -> torch.Tensor:
        """``[B, M]`` weight of each modality's logits; zero for absent modalities."""
        if self.weight_logits is not None:
            return masked_softmax(self.weight_logits.expand(present.shape), present)
        weights = present.float()
        return weights / masked_count(present) if self.combine == "mean" else weights

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        inputs = masked_pooled(encoded, present, self.modalities)
        heads = self.heads.values()
        logits = torch.stack([head(x) for x, head in zip(inputs, heads, strict=True)], 1)
        logits = logits.masked_fill(~present.unsqueeze(-1), 0.0)
        return (self.weights(present).to(logits.dtype).unsqueeze(-1) * logits).sum(1)
