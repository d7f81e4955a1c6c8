"""Behaviour of every registered fusion, plus reference values for the algebraic ones
(more, one per paper, in test_fusion_reference.py).

Encoders are mocked as random ``EncoderOutput``s of differing widths and token counts.
"""

from __future__ import annotations

import inspect
import itertools
import re
from pathlib import Path

import hydra.utils
import pytest
import torch
from omegaconf import OmegaConf

from mmrun.encoders.base import EncoderOutput
from mmrun.errors import FusionError
from mmrun.fusion import FUSIONS, Fusion
from mmrun.fusion.budget import BUDGET_KEY, build_fusion
from mmrun.fusion.late import LateFusion
from mmrun.fusion.layers import AttentionBlock, MaskedAttention
from mmrun.fusion.mcb import MCBFusion
from mmrun.fusion.tensor import LowRankFusion, TensorFusion, with_one

CONF = Path(__file__).resolve().parents[2] / "conf" / "fusion"
DIMS3 = {"image": 12, "text": 20, "audio": 8}
DIMS2 = {"image": 12, "text": 20}
TOKENS = {"image": 5, "text": 3, "audio": 1}
NUM_OUTPUTS = 3
NAMES = sorted(FUSIONS)


def build(name: str, dims: dict[str, int], **kwargs) -> Fusion:
    torch.manual_seed(0)
    if FUSIONS[name].emits_logits:
        kwargs["num_outputs"] = NUM_OUTPUTS
    return FUSIONS[name](dims=dims, **kwargs)


def encode(
    dims: dict[str, int], batch: int, seed: int = 0, grad: bool = False
) -> dict[str, EncoderOutput]:
    """Random encoder outputs; every sample has at least its first token real."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for m, d in dims.items():
        tokens = torch.randn(batch, TOKENS[m], d, generator=g)
        mask = torch.rand(batch, TOKENS[m], generator=g) < 0.7
        mask[:, 0] = True
        pooled = torch.randn(batch, d, generator=g)
        out[m] = EncoderOutput(tokens.requires_grad_(grad), mask, pooled.requires_grad_(grad))
    return out


def random_present(batch: int, modalities: int, seed: int = 0) -> torch.Tensor:
    """Random presence with at least one modality per sample and every modality absent somewhere."""
    g = torch.Generator().manual_seed(seed)
    present = torch.rand(batch, modalities, generator=g) < 0.5
    present[torch.arange(batch), torch.arange(batch) % modalities] = True
    for m in range(modalities):
        present[(m + 1) % batch, m] = False
        present[(m + 1) % batch, (m + 1) % modalities] = True
    return present


def replace_rows(out: EncoderOutput, rows: torch.Tensor, seed: int) -> EncoderOutput:
    """New tokens, mask and pooled vector in ``rows`` (other rows untouched)."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.where(
        rows[:, None, None], 100 * torch.randn(out.tokens.shape, generator=g), out.tokens
    )
    mask = torch.where(rows[:, None], torch.rand(out.mask.shape, generator=g) < 0.5, out.mask)
    pooled = torch.where(
        rows[:, None], 100 * torch.randn(out.pooled.shape, generator=g), out.pooled
    )
    return EncoderOutput(tokens, mask, pooled)


# ---------------------------------------------------------------- every registered fusion


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dims", [DIMS2, DIMS3], ids=["2mod", "3mod"])
def test_output_shape_or_clear_refusal(name: str, dims: dict[str, int]) -> None:
    cls = FUSIONS[name]
    if cls.max_modalities is not None and len(dims) > cls.max_modalities:
        with pytest.raises(FusionError, match=re.escape(cls.alternatives)):
            build(name, dims)
        return
    fusion = build(name, dims)
    out = fusion(encode(dims, 6), torch.ones(6, len(dims), dtype=torch.bool))
    assert out.shape == (6, fusion.out_dim)
    assert torch.isfinite(out).all()
    if cls.emits_logits:
        assert fusion.out_dim == NUM_OUTPUTS


@pytest.mark.parametrize("name", NAMES)
def test_single_modality_works_or_is_refused(name: str) -> None:
    dims = {"image": 12}
    if FUSIONS[name].min_modalities > 1:
        with pytest.raises(FusionError, match="needs at least"):
            build(name, dims)
    else:
        fusion = build(name, dims)
        assert fusion(encode(dims, 2), torch.ones(2, 1, dtype=torch.bool)).shape == (
            2,
            fusion.out_dim,
        )


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_modality(name: str) -> None:
    fusion = build(name, DIMS3).train()
    encoded = encode(DIMS3, 4, grad=True)
    out = fusion(encoded, torch.ones(4, 3, dtype=torch.bool))
    # A random projection: some fusions L2-normalise, so out.square().sum() would be constant.
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    for m, e in encoded.items():
        used = e.tokens if fusion.uses_tokens else e.pooled
        assert used.grad is not None and used.grad.abs().sum() > 0, f"no gradient reaches {m}"
        assert torch.isfinite(used.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_absent_modality_changes_nothing(name: str) -> None:
    fusion = build(name, DIMS3).eval()
    batch = 8
    encoded, present = encode(DIMS3, batch), random_present(batch, 3)
    with torch.no_grad():
        reference = fusion(encoded, present)
        for i, m in enumerate(DIMS3):
            perturbed = dict(encoded, **{m: replace_rows(encoded[m], ~present[:, i], seed=i + 10)})
            torch.testing.assert_close(fusion(perturbed, present), reference, rtol=1e-5, atol=1e-5)
        # The check could fail: the same perturbation of a present modality does change the output.
        rows = present[:, 0]
        moved = fusion(dict(encoded, image=replace_rows(encoded["image"], rows, seed=99)), present)
        assert not torch.allclose(moved[rows], reference[rows], atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_masked_tokens_change_nothing(name: str) -> None:
    fusion = build(name, DIMS3).eval()
    encoded, present = encode(DIMS3, 6), torch.ones(6, 3, dtype=torch.bool)
    g = torch.Generator().manual_seed(5)
    perturbed = {
        m: e._replace(
            tokens=torch.where(
                e.mask[..., None], e.tokens, 1e3 * torch.randn(e.tokens.shape, generator=g)
            )
        )
        for m, e in encoded.items()
    }
    assert any((~e.mask).any() for e in encoded.values())
    with torch.no_grad():
        torch.testing.assert_close(
            fusion(perturbed, present), fusion(encoded, present), rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize("name", NAMES)
def test_every_subset_of_modalities_is_finite(name: str) -> None:
    fusion = build(name, DIMS3).train()
    subsets = [s for k in (1, 2, 3) for s in itertools.combinations(range(3), k)]
    present = torch.zeros(len(subsets) + 1, 3, dtype=torch.bool)
    for row, subset in enumerate(subsets):
        present[row, list(subset)] = True
    present[-1] = True
    encoded = encode(DIMS3, len(present), grad=True)
    # Last row: every modality present but the first one has no real token at all.
    encoded["image"].mask[-1] = False
    out = fusion(encoded, present)
    assert torch.isfinite(out).all()
    out.sum().backward()
    for e in encoded.values():
        for t in (e.tokens, e.pooled):
            assert t.grad is None or torch.isfinite(t.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_batch_of_one(name: str) -> None:
    fusion = build(name, DIMS3)
    for mode in (True, False):
        out = fusion.train(mode)(encode(DIMS3, 1), torch.tensor([[True, False, True]]))
        assert out.shape == (1, fusion.out_dim) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_eval_mode_is_deterministic(name: str) -> None:
    has_dropout = "dropout" in inspect.signature(FUSIONS[name].__init__).parameters
    fusion = build(name, DIMS3, **({"dropout": 0.5} if has_dropout else {})).eval()
    encoded, present = encode(DIMS3, 5), random_present(5, 3)
    with torch.no_grad():
        assert torch.equal(fusion(encoded, present), fusion(encoded, present))


@pytest.mark.parametrize("name", NAMES)
def test_docstring_has_formula_reference_and_args(name: str) -> None:
    doc = inspect.getdoc(FUSIONS[name]) or ""
    assert "Args:" in doc and "dims:" in doc
    assert re.search(r"(19|20)\d\d", doc), "the docstring names the paper and its year"


def test_registry_and_yaml_agree() -> None:
    assert {p.stem for p in CONF.glob("*.yaml")} == set(FUSIONS)


@pytest.mark.parametrize("name", NAMES)
def test_yaml_instantiates_the_registered_class(name: str) -> None:
    path = CONF / f"{name}.yaml"
    assert path.read_text().startswith("# "), "first line is a one-line description"
    cfg = OmegaConf.create({"seed": 0, "fusion": OmegaConf.load(path)}).fusion  # ${seed} resolves
    assert hydra.utils.get_class(cfg._target_) is FUSIONS[name]
    params = inspect.signature(FUSIONS[name].__init__).parameters
    assert set(cfg) - {"_target_", BUDGET_KEY} <= set(params), "yaml keys are constructor arguments"
    assert cfg[BUDGET_KEY] is None, "sizes as configured unless a budget is set"
    extra = {"num_outputs": NUM_OUTPUTS} if FUSIONS[name].emits_logits else {}
    fusion = build_fusion(cfg, DIMS3, **extra)
    assert type(fusion) is FUSIONS[name]
    out = fusion.eval()(encode(DIMS3, 2), torch.ones(2, 3, dtype=torch.bool))
    assert out.shape == (2, fusion.out_dim)


def test_max_modalities_refusal_names_alternatives() -> None:
    class Pairwise(Fusion):
        max_modalities = 2
        alternatives = "lowrank, tensor"

    with pytest.raises(FusionError, match="lowrank, tensor"):
        Pairwise(DIMS3)
    assert Pairwise(DIMS2).modalities == ["image", "text"]


# ---------------------------------------------------------------- shared layers


def test_masked_attention_ignores_masked_keys_and_empty_rows() -> None:
    torch.manual_seed(0)
    attention = MaskedAttention(8, heads=2).eval()
    query, context = torch.randn(3, 4, 8), torch.randn(3, 5, 8)
    mask = torch.tensor([[1, 1, 0, 0, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    out = attention(query, context, mask)
    junk = torch.where(mask[..., None], context, 1e4 * torch.randn(context.shape))
    torch.testing.assert_close(attention(query, junk, mask), out)
    assert torch.isfinite(out).all()
    # A row with no key to attend to gets a zero attention output (only the output bias).
    torch.testing.assert_close(out[1], attention.out.bias.expand(4, 8))


def test_attention_block_can_update_only_some_rows() -> None:
    torch.manual_seed(0)
    block = AttentionBlock(8, heads=2).eval()
    x, mask = (
        torch.randn(2, 6, 8),
        torch.tensor([[1, 1, 1, 0, 1, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool),
    )
    torch.testing.assert_close(block(x[:, :1], mask, context=x), block(x, mask)[:, :1])


# ---------------------------------------------------------------- reference values


def test_tensor_fusion_is_the_explicit_outer_product() -> None:
    dims = {"a": 3, "b": 4, "c": 2}
    torch.manual_seed(0)
    fusion = TensorFusion(dims, width=2, hidden=0).eval()
    x = {m: torch.randn(5, d) for m, d in dims.items()}
    encoded = {
        m: EncoderOutput(v.unsqueeze(1), torch.ones(5, 1, dtype=torch.bool), v)
        for m, v in x.items()
    }
    present = torch.tensor(
        [[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=torch.bool
    )
    out = fusion(encoded, present)
    assert out.shape == (5, 27) and fusion.out_dim == 27
    for row in range(5):
        vecs = []
        for i, m in enumerate(dims):
            z = fusion.project.linears[m](x[m][row]) if present[row, i] else torch.zeros(2)
            vecs.append(torch.cat([torch.ones(1), z]))
        expected = torch.einsum("i,j,k->ijk", *vecs).flatten()
        torch.testing.assert_close(out[row], expected)


def test_tensor_fusion_refuses_an_oversized_outer_product() -> None:
    with pytest.raises(FusionError, match="lowrank"):
        TensorFusion({m: 4 for m in "abcdef"}, width=8)


def test_lowrank_factors_are_registered_parameters() -> None:
    fusion = LowRankFusion(DIMS3, rank=3, hidden=5)
    params = dict(fusion.named_parameters())
    shapes = sorted(tuple(p.shape) for n, p in params.items() if n.startswith("factors."))
    assert shapes == sorted((3, d + 1, 5) for d in DIMS3.values())
    assert {"rank_weights", "bias"} <= set(params)
    assert all(p.requires_grad for p in params.values())
    assert (
        sum(p.numel() for p in fusion.parameters())
        == sum(3 * (d + 1) * 5 for d in DIMS3.values()) + 3 + 5
    )


def test_lowrank_matches_its_explicit_formula() -> None:
    torch.manual_seed(0)
    fusion = LowRankFusion(DIMS3, rank=3, hidden=4).eval()
    encoded, present = encode(DIMS3, 6), random_present(6, 3)
    out = fusion(encoded, present)
    for row in range(6):
        terms = torch.ones(3, 4)
        for i, (m, factor) in enumerate(zip(DIMS3, fusion.factors, strict=True)):
            x = encoded[m].pooled[row] if present[row, i] else torch.zeros(DIMS3[m])
            terms = terms * torch.einsum("i,rio->ro", with_one(x), factor)
        expected = (fusion.rank_weights[:, None] * terms).sum(0) + fusion.bias
        torch.testing.assert_close(out[row], expected)


@pytest.mark.parametrize("projected", [False, True], ids=["raw", "projected"])
def test_full_rank_lowrank_equals_tensor_fusion_then_linear(projected: bool) -> None:
    """With rank = (d_a+1)(d_b+1) the factors can hold any weight W: LMF == W vec(TFN), on the
    raw inputs (the paper's LMF) or on the same projections as tensor (mmrun's default)."""
    dims, out_dim = {"a": 3, "b": 3}, 4
    torch.manual_seed(0)
    weight, bias = torch.randn(4, 4, out_dim), torch.randn(out_dim)
    tensor = TensorFusion(dims, width=3, hidden=out_dim)
    lowrank = LowRankFusion(dims, rank=16, hidden=out_dim, width=3 if projected else None)
    eye = torch.eye(4)
    with torch.no_grad():
        if projected:
            lowrank.project.load_state_dict(tensor.project.state_dict())
        for linear in () if projected else tensor.project.linears.values():  # z_m = x_m
            linear.weight.copy_(torch.eye(3))
            linear.bias.zero_()
        tensor.head.weight.copy_(weight.reshape(16, out_dim).T)
        tensor.head.bias.copy_(bias)
        for r, (i, j) in enumerate(itertools.product(range(4), range(4))):
            lowrank.factors[0][r] = eye[i][:, None].expand(4, out_dim)
            lowrank.factors[1][r] = eye[j][:, None] * weight[i, j]
        lowrank.rank_weights.fill_(1.0)
        lowrank.bias.copy_(bias)
    encoded = encode({"image": 3, "text": 3}, 5)
    encoded = {"a": encoded["image"], "b": encoded["text"]}
    present = torch.tensor([[1, 1], [1, 0], [0, 1], [1, 1], [1, 1]], dtype=torch.bool)
    torch.testing.assert_close(
        lowrank(encoded, present), tensor(encoded, present), rtol=1e-4, atol=1e-5
    )


def test_tensor_and_lowrank_defaults_fuse_the_same_projected_inputs() -> None:
    tensor, lowrank = (OmegaConf.load(CONF / f"{name}.yaml") for name in ("tensor", "lowrank"))
    assert lowrank.width == tensor.width
    fusion = build_fusion(lowrank, DIMS3)
    shape = (lowrank.rank, tensor.width + 1, lowrank.hidden)
    assert {tuple(f.shape) for f in fusion.factors} == {shape}


def test_mcb_fft_equals_circular_convolution_and_outer_product_sketch() -> None:
    dims, size = {"a": 5, "b": 7}, 16
    fusion = MCBFusion(dims, dim=size, seed=3)
    x = {m: torch.randn(2, d) for m, d in dims.items()}
    encoded = {
        m: EncoderOutput(v.unsqueeze(1), torch.ones(2, 1, dtype=torch.bool), v)
        for m, v in x.items()
    }
    joint = fusion.compact_bilinear(encoded, torch.ones(2, 2, dtype=torch.bool))
    sa, sb = fusion.sketch(0, x["a"]), fusion.sketch(1, x["b"])
    convolution = torch.zeros(2, size)
    for k in range(size):
        for j in range(size):
            convolution[:, k] += sa[:, j] * sb[:, (k - j) % size]
    torch.testing.assert_close(joint, convolution, rtol=1e-4, atol=1e-5)
    # Count sketch of the outer product with hash (h_a(i) + h_b(j)) mod D and sign s_a(i) s_b(j).
    ha, hb = fusion.hashes[:5], fusion.hashes[5:]
    sga, sgb = fusion.signs[:5], fusion.signs[5:]
    direct = torch.zeros(2, size)
    for i in range(5):
        for j in range(7):
            direct[:, (ha[i] + hb[j]) % size] += sga[i] * sgb[j] * x["a"][:, i] * x["b"][:, j]
    torch.testing.assert_close(joint, direct, rtol=1e-4, atol=1e-5)
    # An absent modality is the identity of convolution: the other's sketch comes through.
    only_a = fusion.compact_bilinear(encoded, torch.tensor([[True, False], [True, False]]))
    torch.testing.assert_close(only_a, sa, rtol=1e-4, atol=1e-5)


def test_mcb_sketch_is_fixed_by_the_seed() -> None:
    a, b, c = MCBFusion(DIMS2, seed=1), MCBFusion(DIMS2, seed=1), MCBFusion(DIMS2, seed=2)
    assert torch.equal(a.hashes, b.hashes) and torch.equal(a.signs, b.signs)
    assert not torch.equal(a.hashes, c.hashes)
    assert {"hashes", "signs"} <= set(a.state_dict()) and not list(a.parameters())


def test_film_without_conditioner_is_identity_modulation() -> None:
    fusion = FUSIONS["film"](DIMS3, conditioner="text", hidden=6).eval()
    encoded = encode(DIMS3, 3)
    present = torch.tensor([[True, False, True]] * 3)
    out = fusion(encoded, present)
    z = {m: fusion.project.linears[m](encoded[m].pooled) for m in ("image", "audio")}
    torch.testing.assert_close(out[:, :6], torch.zeros(3, 6))
    torch.testing.assert_close(out[:, 6:], (z["image"] + z["audio"]) / 2)
    with pytest.raises(FusionError, match="image, text, audio"):
        FUSIONS["film"](DIMS3, conditioner="video")


def test_late_fusion_combinations() -> None:
    encoded, present = encode(DIMS3, 4), random_present(4, 3)
    fusions = {
        c: LateFusion(DIMS3, num_outputs=5, combine=c).eval() for c in ("mean", "weighted", "poe")
    }
    for f in fusions.values():
        f.heads.load_state_dict(fusions["mean"].heads.state_dict())
    heads = fusions["mean"].heads
    logits = torch.stack([heads[m](encoded[m].pooled) for m in DIMS3], 1) * present[..., None]
    count = present.sum(1, keepdim=True)
    with torch.no_grad():
        fusions["weighted"].weight_logits.copy_(torch.tensor([0.0, 1.0, 2.0]))
        torch.testing.assert_close(fusions["mean"](encoded, present), logits.sum(1) / count)
        poe = fusions["poe"](encoded, present)
        torch.testing.assert_close(poe, logits.sum(1))
        # Product of softmax experts == softmax of the summed logits.
        experts = torch.where(present[..., None], torch.softmax(logits, -1), torch.ones(()))
        product = experts.prod(1)
        torch.testing.assert_close(torch.softmax(poe, -1), product / product.sum(-1, keepdim=True))
        w = torch.exp(torch.tensor([0.0, 1.0, 2.0])) * present
        expected = (w[..., None] / w.sum(1)[:, None, None] * logits).sum(1)
        torch.testing.assert_close(fusions["weighted"](encoded, present), expected)
    with pytest.raises(FusionError, match="mean, weighted, poe"):
        LateFusion(DIMS3, num_outputs=2, combine="vote")
