"""Each fusion against a small reference computation written from its paper's equations.

Every reference reads the fusion's own weights, but none of its code: it works one sample
at a time, with plain matrix products, from the formula in the paper (eval mode, so dropout
is the identity; one test checks MFH's dropout cascade in training mode). Where mmrun
defines what an absent modality does (the multiplicative identity in products, no weight in
attention and gates, no term in means), the reference drops that modality as documented.

Reference values that live elsewhere, not repeated here:
``tests/unit/test_fusion.py`` holds the tensor fusion outer product
(``test_tensor_fusion_is_the_explicit_outer_product``), the low-rank fusion formula
(``test_lowrank_matches_its_explicit_formula``, and its full-rank equivalence with tensor
fusion) and MCB's sketch of the outer product for two modalities
(``test_mcb_fft_equals_circular_convolution_and_outer_product_sketch``); MFH of order 1 being
MFB is in ``tests/unit/test_fusion_equivalence.py``.

The contract tests there run each fusion at its defaults; the last test here runs the two
central ones (an absent modality changes nothing; NaN in absent inputs and padded tokens
leaves every gradient finite) on the non-default options added with these references.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from test_fusion import DIMS2, DIMS3, build, encode, random_present, replace_rows
from test_fusion_masking import poison
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.fusion.attention import AttentionFusion
from mmrun.fusion.bilinear import MFBFusion, MFHFusion, MLBFusion
from mmrun.fusion.film import FiLMFusion
from mmrun.fusion.gated import GatedFusion
from mmrun.fusion.mcb import MCBFusion
from mmrun.fusion.mult import last_real_token, sinusoidal_positions
from mmrun.fusion.nlgate import NLGateFusion
from mmrun.fusion.tucker import BlockFusion, MutanFusion

BATCH = 5
# Rows: all present, then each of the three modalities absent once, then only the last one.
PRESENT3 = torch.tensor([[1, 1, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
ALL2 = torch.ones(BATCH, 2, dtype=torch.bool)


def vectors(dims: dict[str, int], seed: int = 0) -> dict[str, EncoderOutput]:
    """Pooled vectors (one token each) for a batch of ``BATCH``."""
    torch.manual_seed(seed)
    out = {}
    for m, d in dims.items():
        x = torch.randn(BATCH, d)
        out[m] = EncoderOutput(x.unsqueeze(1), torch.ones(BATCH, 1, dtype=torch.bool), x)
    return out


def linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """W x + b for one sample, from the layer's weights."""
    return layer.weight @ x + layer.bias


def power_l2(z: torch.Tensor) -> torch.Tensor:
    """Power normalisation sign(z) |z|^0.5, then division by the L2 norm."""
    z = torch.sign(z) * z.abs() ** 0.5
    return z / z.norm()


def power_l2_squared(z: torch.Tensor) -> torch.Tensor:
    """What power normalisation sign(z) |z|^0.5 followed by L2 normalisation gives, read
    squared: y = sign(z) |z|^0.5 / ||sign(z) |z|^0.5||_2 has y |y| = z / ||z||_1. Compare with
    ``squared`` of the fusion's output: the square root itself amplifies float rounding near
    z = 0 beyond any fixed tolerance. An all-zero z stays zero."""
    return z / z.abs().sum().clamp_min(1e-30)


def squared(y: torch.Tensor) -> torch.Tensor:
    """y |y|, entry by entry: undoes the signed square root of power normalisation."""
    return y * y.abs()


def sum_pool(e: torch.Tensor, k: int) -> torch.Tensor:
    """SumPool(e, k): z_j = sum of the j-th window of k consecutive entries."""
    return torch.stack([e[j * k : (j + 1) * k].sum() for j in range(len(e) // k)])


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- factorised bilinear pooling


def test_mlb_is_the_hadamard_product_of_tanh_projections() -> None:
    """Kim et al. 2017: f = P^T (tanh(U^T x) o tanh(V^T y)) + b."""
    torch.manual_seed(1)
    fusion = MLBFusion(DIMS3, rank=12, hidden=5).eval()
    encoded = vectors(DIMS3)
    out = fusion(encoded, PRESENT3)
    for row in range(BATCH):
        joint = torch.ones(12)
        for i, m in enumerate(DIMS3):
            if PRESENT3[row, i]:
                joint = joint * torch.tanh(
                    linear(fusion.project.linears[m], encoded[m].pooled[row])
                )
        close(out[row], linear(fusion.out, joint))


def test_mfb_is_sum_pooled_then_power_and_l2_normalised() -> None:
    """Yu et al. 2017: z = SumPool(U^T x o V^T y, k), then sign sqrt and L2."""
    torch.manual_seed(2)
    out_dim, k = 6, 3
    fusion = MFBFusion(DIMS2, out=out_dim, factor=k).eval()
    encoded = vectors(DIMS2)
    out = fusion(encoded, ALL2)
    assert out.shape == (BATCH, out_dim)
    for row in range(BATCH):
        x, y = (linear(fusion.project.linears[m], encoded[m].pooled[row]) for m in DIMS2)
        close(squared(out[row]), power_l2_squared(sum_pool(x * y, k)))


def test_mfh_cascades_the_expanded_products_of_its_blocks() -> None:
    """Yu et al. 2018: z_exp^i = z_exp^(i-1) o (U_i^T x o V_i^T y), each block
    sum-pooled and normalised on its own, outputs concatenated."""
    torch.manual_seed(3)
    out_dim, k, order = 4, 2, 3
    fusion = MFHFusion(DIMS3, out=out_dim, factor=k, order=order).eval()
    encoded = vectors(DIMS3)
    out = fusion(encoded, PRESENT3)
    width = out_dim * k
    for row in range(BATCH):
        projected = [
            linear(fusion.project.linears[m], encoded[m].pooled[row])
            for i, m in enumerate(DIMS3)
            if PRESENT3[row, i]
        ]
        expanded, blocks = torch.ones(width), []
        for i in range(order):
            block = math.prod(p[i * width : (i + 1) * width] for p in projected)
            expanded = expanded * block
            blocks.append(power_l2_squared(sum_pool(expanded, k)))
        close(squared(out[row]), torch.cat(blocks))


class FixedDropout(nn.Module):
    """Stands in for dropout in training mode: multiplies its n-th input by ``masks[n]``."""

    def __init__(self, masks: list[torch.Tensor]) -> None:
        super().__init__()
        self.masks, self.calls = masks, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self.masks[self.calls]
        self.calls += 1
        return x * mask


def test_mfh_carries_the_dropped_product_into_the_next_block() -> None:
    """In training, block 2 multiplies the *dropped* expanded product of block 1 (the paper's
    MFH and block.bootstrap.pytorch), so an entry dropped in block 1 stays zero in block 2."""
    torch.manual_seed(4)
    out_dim, k = 4, 2
    fusion = MFHFusion(DIMS2, out=out_dim, factor=k, order=2, dropout=0.5).train()
    g = torch.Generator().manual_seed(0)
    masks = [(torch.rand(BATCH, out_dim * k, generator=g) < 0.5) * 2.0 for _ in range(2)]
    fusion.dropout = FixedDropout(masks)
    encoded = vectors(DIMS2)
    out = fusion(encoded, ALL2)
    assert fusion.dropout.calls == 2, "one dropout per block"
    width = out_dim * k
    for row in range(BATCH):
        x, y = (linear(fusion.project.linears[m], encoded[m].pooled[row]) for m in DIMS2)
        first = masks[0][row] * x[:width] * y[:width]
        second = masks[1][row] * (first * x[width:] * y[width:])
        pooled = [power_l2_squared(sum_pool(first, k)), power_l2_squared(sum_pool(second, k))]
        close(squared(out[row]), torch.cat(pooled))


# ---------------------------------------------------------------- Tucker fusions


def rank_sum(
    fusion, x_tilde: list[torch.Tensor], chunk: int, size: int, modalities
) -> torch.Tensor:
    """sum_r prod_m (x~_{m,c} W_{m,c}^(r) + b_{m,c}^(r)) for chunk ``chunk``, over ``modalities``
    (indices of the present ones)."""
    total = torch.zeros(size)
    for r in range(fusion.rank):
        term = torch.ones(size)
        for m in modalities:
            weight = fusion.core[m, chunk, :, r * size : (r + 1) * size]  # [size, size]
            bias = fusion.core_bias[m, chunk, r * size : (r + 1) * size]
            term = term * (x_tilde[m][chunk * size : (chunk + 1) * size] @ weight + bias)
        total = total + term
    return total


def test_mutan_is_a_rank_constrained_tucker_core() -> None:
    """Ben-younes et al. 2017: x~ = tanh(W x), z = sum_r (x~_q W_q^r) o (x~_v W_v^r),
    y = W_o z."""
    torch.manual_seed(5)
    width = 8
    fusion = MutanFusion(DIMS3, width=width, rank=3, hidden=5).eval()
    encoded = vectors(DIMS3)
    out = fusion(encoded, PRESENT3)
    for row in range(BATCH):
        x_tilde = [
            torch.tanh(linear(fusion.project.linears[m], encoded[m].pooled[row])) for m in DIMS3
        ]
        present = [i for i in range(3) if PRESENT3[row, i]]
        close(out[row], linear(fusion.out, rank_sum(fusion, x_tilde, 0, width, present)))


def test_block_normalises_each_chunk_of_a_superdiagonal_core() -> None:
    """Ben-younes et al. 2019: chunk c of the projections meets its own rank-R core,
    z_c = sign sqrt then L2 of sum_r prod_m (x~_{m,c} W_{m,c}^r), h = W_o [z_1; ...; z_C]."""
    torch.manual_seed(6)
    width, chunks = 12, 3
    fusion = BlockFusion(DIMS3, width=width, chunks=chunks, rank=2, hidden=5).eval()
    encoded = vectors(DIMS3)
    out = fusion(encoded, PRESENT3)
    size = width // chunks
    for row in range(BATCH):
        x_tilde = [linear(fusion.project.linears[m], encoded[m].pooled[row]) for m in DIMS3]
        present = [i for i in range(3) if PRESENT3[row, i]]
        z = [power_l2(rank_sum(fusion, x_tilde, c, size, present)) for c in range(chunks)]
        close(out[row], linear(fusion.out, torch.cat(z)))


# ---------------------------------------------------------------- compact bilinear pooling


def test_mcb_of_three_modalities_is_the_normalised_sketch_of_their_outer_product() -> None:
    """Fukui et al. 2016, with Pham and Pagh's count sketch of an outer product: bin
    (h_1(i) + h_2(j) + h_3(l)) mod D, sign s_1(i) s_2(j) s_3(l); then sign sqrt and L2.
    (The two-modality FFT identity is checked in test_fusion.py.)"""
    dims, size = {"a": 3, "b": 4, "c": 2}, 8
    fusion = MCBFusion(dims, dim=size, seed=5).eval()
    encoded = vectors(dims)
    out = fusion(encoded, PRESENT3)
    bounds = [0, 3, 7, 9]
    hashes = [fusion.hashes[bounds[i] : bounds[i + 1]] for i in range(3)]
    signs = [fusion.signs[bounds[i] : bounds[i + 1]] for i in range(3)]
    for row in range(BATCH):
        x = [encoded[m].pooled[row] for m in dims]
        present = [i for i in range(3) if PRESENT3[row, i]]
        sketch = torch.zeros(size)
        ranges = [range(d) if i in present else [None] for i, d in enumerate(dims.values())]
        for index in itertools.product(*ranges):
            bin_, value = 0, 1.0
            for m, position in enumerate(index):
                if position is not None:  # an absent modality is a unit delta at bin 0
                    bin_ += int(hashes[m][position])
                    value = value * signs[m][position] * x[m][position]
            sketch[bin_ % size] += value
        close(squared(out[row]), power_l2_squared(sketch))


# ---------------------------------------------------------------- conditioning and gating


def test_film_scales_and_shifts_the_other_modalities() -> None:
    """Perez et al. 2018: gamma, beta = f(x_c), FiLM(F) = gamma o F + beta; mmrun
    predicts gamma as 1 + offset and averages the modulated modalities."""
    torch.manual_seed(7)
    hidden = 5
    fusion = FiLMFusion(DIMS3, conditioner="text", hidden=hidden).eval()
    encoded = vectors(DIMS3)
    present = PRESENT3.clone()
    present[:, 1] = True  # the conditioner is present (its absence is tested in test_fusion.py)
    out = fusion(encoded, present)
    for row in range(BATCH):
        offset_beta = linear(fusion.film, encoded["text"].pooled[row])
        gamma, beta = 1 + offset_beta[:hidden], offset_beta[hidden:]
        modulated = [
            gamma * linear(fusion.project.linears[m], encoded[m].pooled[row]) + beta
            for i, m in enumerate(DIMS3)
            if m != "text" and present[row, i]
        ]
        mean = sum(modulated) / len(modulated) if modulated else torch.zeros(hidden)
        conditioner = linear(fusion.project.linears["text"], encoded["text"].pooled[row])
        close(out[row], torch.cat([conditioner, mean]))


def test_gated_of_two_modalities_is_the_papers_bimodal_gmu() -> None:
    """Arevalo et al. 2017: h_v = tanh(W_v x_v), h_t = tanh(W_t x_t),
    z = sigmoid(W_z [x_v; x_t]), h = z h_v + (1 - z) h_t, with W_z = G_v - G_t."""
    torch.manual_seed(8)
    hidden = 6
    fusion = GatedFusion(DIMS2, hidden=hidden).eval()
    assert fusion.gate_kind == "softmax", "the default gate"
    encoded = vectors(DIMS2)
    out = fusion(encoded, ALL2)
    w, b = fusion.gate.weight, fusion.gate.bias
    w_z, b_z = w[:hidden] - w[hidden:], b[:hidden] - b[hidden:]
    for row in range(BATCH):
        x_v, x_t = (encoded[m].pooled[row] for m in DIMS2)
        h_v = torch.tanh(linear(fusion.project.linears["image"], x_v))
        h_t = torch.tanh(linear(fusion.project.linears["text"], x_t))
        z = torch.sigmoid(w_z @ torch.cat([x_v, x_t]) + b_z)
        close(out[row], z * h_v + (1 - z) * h_t)


def test_gated_sigmoid_is_the_papers_multimodal_gmu() -> None:
    """Arevalo et al. 2017, the M-modal GMU: h_i = tanh(W_i x_i), z_i = sigmoid(W_zi [x_1; ...;
    x_M]) each on its own, h = sum_i z_i o h_i; an absent modality is zero in the gate input
    and has no term."""
    torch.manual_seed(9)
    hidden = 4
    fusion = GatedFusion(DIMS3, hidden=hidden, gate="sigmoid").eval()
    encoded = vectors(DIMS3)
    out = fusion(encoded, PRESENT3)
    for row in range(BATCH):
        x = [
            encoded[m].pooled[row] if PRESENT3[row, i] else torch.zeros(d)
            for i, (m, d) in enumerate(DIMS3.items())
        ]
        joint = torch.cat(x)
        expected = torch.zeros(hidden)
        for i, m in enumerate(DIMS3):
            if PRESENT3[row, i]:
                rows = slice(i * hidden, (i + 1) * hidden)
                z = torch.sigmoid(fusion.gate.weight[rows] @ joint + fusion.gate.bias[rows])
                expected = expected + z * torch.tanh(linear(fusion.project.linears[m], x[i]))
        close(out[row], expected)
    # Independent gates need not sum to 1: the sigmoid form is not the softmax default.
    softmax = GatedFusion(DIMS3, hidden=hidden).eval()
    softmax.load_state_dict(fusion.state_dict())
    assert not torch.allclose(softmax(encoded, PRESENT3), out, atol=1e-4)


# ---------------------------------------------------------------- attention


def softmax_over(scores: torch.Tensor, keep: list[int]) -> torch.Tensor:
    """Softmax over the entries ``keep``; the others get weight 0."""
    weights = torch.zeros_like(scores)
    weights[keep] = torch.exp(scores[keep]) / torch.exp(scores[keep]).sum()
    return weights


def test_attention_joint_scoring_is_torchmultimodals() -> None:
    """TorchMultimodal's AttentionFusionModule: a = softmax(A [x_1; ...; x_M] + c),
    h = sum_m a_m (P_m x_m); an absent x_m is zero in the concatenation and gets weight 0."""
    torch.manual_seed(10)
    fusion = AttentionFusion(DIMS3, hidden=6).eval()
    assert fusion.scoring == "joint", "the default scoring"
    encoded = vectors(DIMS3)
    out = fusion(encoded, PRESENT3)
    for row in range(BATCH):
        x = [
            encoded[m].pooled[row] if PRESENT3[row, i] else torch.zeros(d)
            for i, (m, d) in enumerate(DIMS3.items())
        ]
        present = [i for i in range(3) if PRESENT3[row, i]]
        a = softmax_over(linear(fusion.score, torch.cat(x)), present)
        projected = [linear(fusion.project.linears[m], x[i]) for i, m in enumerate(DIMS3)]
        close(out[row], sum(a[i] * projected[i] for i in present))


def test_attention_additive_scoring_scores_each_projection() -> None:
    """Additive scoring (Bahdanau-style, as in Hori et al. 2017 without a decoder state):
    e_m = v^T tanh(W P_m x_m + b) + c, a = softmax over the present modalities."""
    torch.manual_seed(11)
    fusion = AttentionFusion(DIMS3, hidden=6, scoring="additive").eval()
    encoded = vectors(DIMS3)
    out = fusion(encoded, PRESENT3)
    inner, outer = fusion.score[0], fusion.score[2]
    for row in range(BATCH):
        present = [i for i in range(3) if PRESENT3[row, i]]
        projected = [linear(fusion.project.linears[m], encoded[m].pooled[row]) for m in DIMS3]
        scores = torch.stack([linear(outer, torch.tanh(linear(inner, p)))[0] for p in projected])
        a = softmax_over(scores, present)
        close(out[row], sum(a[i] * projected[i] for i in present))


def test_nlgate_is_multibenchs_unscaled_non_local_gate() -> None:
    """MultiBench's NLgate (Wang et al. 2020, F4): q = Q x, k = K y, v = V y,
    h = mean_t (q_t + softmax_j(q_t . k_j) v_j), with no 1/sqrt(d), over real tokens only."""
    torch.manual_seed(12)
    fusion = NLGateFusion(DIMS2, width=4).eval()
    with torch.no_grad():  # larger keys, so that a 1/sqrt(d) scaling would show
        fusion.kv["text"].weight.mul_(3)
    encoded = encode(DIMS2, BATCH)
    out = fusion(encoded, ALL2)
    kv = fusion.kv["text"]
    for row in range(BATCH):
        queries = encoded["image"].tokens[row][encoded["image"].mask[row]]
        keys = encoded["text"].tokens[row][encoded["text"].mask[row]]
        k_v = torch.stack([linear(kv, y) for y in keys])
        k, v = k_v[:, :4], k_v[:, 4:]
        gated = []
        for x in queries:
            q = linear(fusion.q, x)
            weights = torch.softmax(k @ q, 0)
            gated.append(q + weights @ v)
        close(out[row], torch.stack(gated).mean(0))


# ---------------------------------------------------------------- MulT's pieces


def test_mult_positions_are_the_tensor2tensor_sinusoids_from_one() -> None:
    """PE(pos, i) = sin(pos w_i) for i < d/2 and cos(pos w_(i-d/2)) after, w_i = 10000^(-i/(d/2-1)),
    positions 1 .. T (MulT's fairseq table keeps 0 for padding)."""
    table = sinusoidal_positions(3, 6)
    for pos in range(1, 4):
        for i in range(3):
            w = 10000 ** (-i / 2)
            assert math.isclose(table[pos - 1, i].item(), math.sin(pos * w), abs_tol=1e-6)
            assert math.isclose(table[pos - 1, 3 + i].item(), math.cos(pos * w), abs_tol=1e-6)
    assert torch.equal(sinusoidal_positions(2, 5)[:, -1], torch.zeros(2)), "odd width: zero column"


def test_mult_last_pooling_reads_each_samples_last_real_token() -> None:
    x = torch.arange(24, dtype=torch.float32).view(3, 4, 2)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    torch.testing.assert_close(
        last_real_token(x, mask), torch.tensor([[2.0, 3.0], [12.0, 13.0], [0.0, 0.0]])
    )


# ---------------------------------------------------------------- options keep the contract

OPTIONS = [
    ("attention", {"scoring": "additive"}),
    ("gated", {"gate": "sigmoid"}),
    ("mult", {"pooling": "mean"}),
    ("nlgate", {"heads": 2}),
]


@pytest.mark.parametrize("name, options", OPTIONS, ids=lambda v: str(v))
def test_non_default_options_keep_the_fusion_contract(name: str, options: dict) -> None:
    fusion = build(name, DIMS3, **options).eval()
    encoded, present = encode(DIMS3, 8), random_present(8, 3)
    with torch.no_grad():
        reference = fusion(encoded, present)
        for i, m in enumerate(DIMS3):
            perturbed = dict(encoded, **{m: replace_rows(encoded[m], ~present[:, i], seed=i)})
            close(fusion(perturbed, present), reference)
        rows = present[:, 0]
        moved = fusion(dict(encoded, image=replace_rows(encoded["image"], rows, seed=9)), present)
        assert not torch.allclose(moved[rows], reference[rows], atol=1e-4)
    fusion.train()
    out = fusion(poison(encoded, present), present)
    assert torch.isfinite(out).all()
    out.sum().backward()
    grads = [p.grad for p in fusion.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
