"""Absent modalities and padded tokens are zeroed before any parameter touches them: a
non-finite value there leaves the output and every gradient finite, for every fusion."""

from __future__ import annotations

import pytest
import torch
from test_fusion import DIMS2, DIMS3, build, encode, random_present

from mmrun.encoders.base import EncoderOutput
from mmrun.fusion import FUSIONS

NAMES = sorted(FUSIONS)


def poison(encoded: dict[str, EncoderOutput], present: torch.Tensor) -> dict[str, EncoderOutput]:
    """NaN and inf in every absent modality (pooled and tokens) and every padded token."""
    poisoned = {}
    for i, (m, e) in enumerate(encoded.items()):
        absent = ~present[:, i]
        junk = torch.full_like(e.tokens, float("nan"))
        junk[..., ::2] = float("inf")
        tokens = torch.where((absent[:, None] | ~e.mask)[..., None], junk, e.tokens)
        pooled = torch.where(absent[:, None], junk[:, 0], e.pooled)
        poisoned[m] = EncoderOutput(
            tokens.detach().requires_grad_(), e.mask, pooled.detach().requires_grad_()
        )
    return poisoned


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dims", [DIMS2, DIMS3], ids=["2mod", "3mod"])
def test_non_finite_absent_inputs_leave_every_gradient_finite(
    name: str, dims: dict[str, int]
) -> None:
    fusion = build(name, dims).train()
    batch = 6
    present = random_present(batch, len(dims))
    encoded = encode(dims, batch)
    assert any((~e.mask).any() for e in encoded.values()), "some tokens are padded"
    poisoned = poison(encoded, present)
    out = fusion(poisoned, present)
    assert torch.isfinite(out).all()
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    grads = {n: p.grad for n, p in fusion.named_parameters() if p.grad is not None}
    assert grads or not list(fusion.parameters()), "the check reaches some weight"
    for param, grad in grads.items():
        assert torch.isfinite(grad).all(), f"non-finite gradient on {param}"
    for m, e in poisoned.items():
        for t in (e.tokens, e.pooled):
            assert t.grad is None or torch.isfinite(t.grad).all(), (
                f"non-finite gradient reaches {m}"
            )
