"""Reference values for linear_sum, concat_mlp, tucker, xattn_gated and hypernetwork: each output
recomputed by hand from the paper's equation with the fusion's own weights, plus what happens
to an absent query or conditioner and the options each fusion refuses.

(The behaviour every fusion shares, shapes, masking, gradients and budgets, is checked for
these too by the tests parametrised over the registry in test_fusion*.py.)
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import compose_train
from test_fusion import DIMS2, DIMS3, encode, random_present
from torch import nn

from mmrun.config_check import check_config
from mmrun.errors import ConfigError, FusionError
from mmrun.fusion.hypernetwork import HyperNetworkFusion
from mmrun.fusion.mmf import ConcatMLPFusion, LinearSumFusion
from mmrun.fusion.tensor import TensorFusion
from mmrun.fusion.tucker import TuckerFusion
from mmrun.fusion.xattn import GatedCrossAttentionFusion

ACTIVATIONS = {"relu": torch.relu, "gelu": F.gelu, "tanh": torch.tanh}


def pooled_inputs(dims: dict[str, int], batch: int, seed: int = 0):
    """Random encoder outputs and a random presence in which every modality is absent somewhere."""
    encoded = encode(dims, batch, seed)
    present = random_present(batch, len(dims), seed)
    return encoded, present


def affine(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """x W^T + b written out, so the references do not call the modules under test."""
    return x @ linear.weight.T + linear.bias


# ---------------------------------------------------------------- linear_sum


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_linear_sum_is_the_output_map_of_the_summed_activated_projections(
    activation: str,
) -> None:
    torch.manual_seed(0)
    fusion = LinearSumFusion(DIMS3, width=6, hidden=4, activation=activation).eval()
    encoded, present = pooled_inputs(DIMS3, 8)
    out = fusion(encoded, present)
    act = ACTIVATIONS[activation]
    for row in range(8):
        total = torch.zeros(6)
        for i, m in enumerate(DIMS3):
            if present[row, i]:
                total = total + act(affine(fusion.project.linears[m], encoded[m].pooled[row]))
        torch.testing.assert_close(out[row], affine(fusion.out, total))


def test_linear_sum_normalize_is_signed_sqrt_then_l2() -> None:
    torch.manual_seed(0)
    fusion = LinearSumFusion(DIMS3, width=6, hidden=4, activation="tanh", normalize=True).eval()
    encoded, present = pooled_inputs(DIMS3, 5)
    out = fusion(encoded, present)
    for row in range(5):
        z = sum(
            torch.tanh(affine(fusion.project.linears[m], encoded[m].pooled[row]))
            for i, m in enumerate(DIMS3)
            if present[row, i]
        )
        z = torch.sign(z) * z.abs().sqrt()
        torch.testing.assert_close(out[row], affine(fusion.out, z / z.norm()), atol=1e-4, rtol=1e-4)


def test_linear_sum_activates_before_the_sum_so_modalities_do_not_interact() -> None:
    """Activation before the sum (MMF's order) makes h additive over modalities: the mixed
    difference f(a,b) - f(a,b') - f(a',b) + f(a',b') vanishes, which an activation after the
    sum (as in concat_mlp) would not give."""
    torch.manual_seed(0)
    dims = DIMS2
    fusions = {
        "linear_sum": LinearSumFusion(dims, width=8, hidden=4).eval(),
        "concat_mlp": ConcatMLPFusion(dims, hidden=8).eval(),
    }
    a, b = encode(dims, 3, seed=1), encode(dims, 3, seed=2)
    every = torch.ones(3, 2, dtype=torch.bool)

    def mixed(fusion) -> torch.Tensor:
        f = {
            (i, t): fusion({"image": (a, b)[i]["image"], "text": (a, b)[t]["text"]}, every)
            for i, t in itertools.product(range(2), range(2))
        }
        return f[0, 0] - f[0, 1] - f[1, 0] + f[1, 1]

    with torch.no_grad():
        torch.testing.assert_close(mixed(fusions["linear_sum"]), torch.zeros(3, 4))
        assert mixed(fusions["concat_mlp"]).abs().max() > 1e-3


# ---------------------------------------------------------------- concat_mlp


def test_concat_mlp_is_an_mlp_over_the_zero_filled_concatenation() -> None:
    torch.manual_seed(0)
    fusion = ConcatMLPFusion(DIMS3, hidden=3, sizes=[7, 5], activation="tanh").eval()
    linears = [m for m in fusion.mlp if isinstance(m, nn.Linear)]
    assert [tuple(lin.weight.shape) for lin in linears] == [(7, 40), (5, 7), (3, 5)]
    encoded, present = pooled_inputs(DIMS3, 6)
    out = fusion(encoded, present)
    for row in range(6):
        x = torch.cat(
            [
                encoded[m].pooled[row] if present[row, i] else torch.zeros(d)
                for i, (m, d) in enumerate(DIMS3.items())
            ]
        )
        for lin in linears[:-1]:
            x = torch.tanh(affine(lin, x))
        torch.testing.assert_close(out[row], affine(linears[-1], x))


def test_concat_mlp_defaults_to_two_hidden_layers_of_its_own_width() -> None:
    fusion = ConcatMLPFusion(DIMS3, hidden=9)
    linears = [m for m in fusion.mlp if isinstance(m, nn.Linear)]
    assert [tuple(lin.weight.shape) for lin in linears] == [(9, 40), (9, 9), (9, 9)]
    assert fusion.out_dim == 9


def test_mmf_fusions_refuse_bad_options() -> None:
    with pytest.raises(FusionError, match="fusion.activation='swish'.*relu, gelu, tanh"):
        LinearSumFusion(DIMS3, activation="swish")
    with pytest.raises(FusionError, match="fusion.activation='swish'.*relu, gelu, tanh"):
        ConcatMLPFusion(DIMS3, activation="swish")
    with pytest.raises(FusionError, match=r"fusion.sizes=\[\]"):
        ConcatMLPFusion(DIMS3, sizes=[])
    with pytest.raises(FusionError, match="fusion.hidden=0"):
        ConcatMLPFusion(DIMS3, hidden=0)


# ---------------------------------------------------------------- tucker


def test_tucker_is_the_explicit_contraction_with_its_full_core() -> None:
    torch.manual_seed(0)
    fusion = TuckerFusion(DIMS3, width=3, core=5, hidden=4).eval()
    assert tuple(fusion.core.shape) == (3, 3, 3, 5)
    encoded, present = pooled_inputs(DIMS3, 8)
    out = fusion(encoded, present)
    for row in range(8):
        factors = [
            torch.tanh(affine(fusion.project.linears[m], encoded[m].pooled[row]))
            if present[row, i]
            else fusion.null[i]
            for i, m in enumerate(DIMS3)
        ]
        z = torch.einsum("i,j,k,ijko->o", *factors, fusion.core) + fusion.core_bias
        torch.testing.assert_close(out[row], affine(fusion.out, z))


def test_tucker_of_two_modalities_is_a_bilinear_layer() -> None:
    """The two-modality case is block.bootstrap.pytorch's Tucker: nn.Bilinear as the core."""
    torch.manual_seed(0)
    fusion = TuckerFusion(DIMS2, width=4, core=6, hidden=5).eval()
    encoded, every = encode(DIMS2, 4), torch.ones(4, 2, dtype=torch.bool)
    x = [torch.tanh(fusion.project.linears[m](encoded[m].pooled)) for m in DIMS2]
    z = F.bilinear(x[0], x[1], fusion.core.permute(2, 0, 1), fusion.core_bias)
    with torch.no_grad():
        torch.testing.assert_close(fusion(encoded, every), fusion.out(z))


def test_tucker_absent_modality_is_its_learned_null_vector() -> None:
    torch.manual_seed(0)
    fusion = TuckerFusion(DIMS3, width=3, core=4, hidden=2).eval()
    encoded = encode(DIMS3, 2)
    present = torch.tensor([[True, False, True]] * 2)
    with torch.no_grad():
        before = fusion(encoded, present)
        fusion.null[1] += 0.5  # the absent text's stand-in
        after = fusion(encoded, present)
        fusion.null[0] += 0.5  # image is present: its null vector is unused
        torch.testing.assert_close(fusion(encoded, present), after)
    assert not torch.allclose(before, after)


def test_tucker_refuses_an_oversized_core_naming_the_option() -> None:
    dims = {m: 4 for m in "abcde"}
    with pytest.raises(FusionError, match=r"10\^5.*fusion.width.*fusion=mutan"):
        TuckerFusion(dims, width=10)
    assert TuckerFusion(dims, width=9, core=1).core.numel() == 9**5  # 59,049: within the limit


# ---------------------------------------------------------------- xattn_gated


def projected_tokens(fusion: GatedCrossAttentionFusion, encoded, i: int, m: str, row: int):
    """The real tokens of modality ``m`` (index ``i``) in ``row``, projected by hand."""
    lin = fusion.tokens.linears[m]
    real = encoded[m].tokens[row][encoded[m].mask[row]]
    return affine(lin, real) + fusion.tokens.type_embedding[i]


def reference_xattn(fusion: GatedCrossAttentionFusion, encoded, present, row: int) -> torch.Tensor:
    """One block of Flamingo's gated cross-attention with one head, for one sample."""
    (block,) = fusion.blocks
    b, width = block.block, fusion.out_dim
    q_index, query = fusion.query_index, fusion.query
    x = projected_tokens(fusion, encoded, q_index, query, row) if present[row, q_index] else None
    if x is None or len(x) == 0:
        x = fusion.null_query[None]
    context = torch.cat(
        [
            projected_tokens(fusion, encoded, i, m, row)
            for i, m in enumerate(fusion.modalities)
            if i != q_index and present[row, i]
        ]
        or [torch.zeros(0, width)]
    )

    def norm(layer: nn.LayerNorm, t: torch.Tensor) -> torch.Tensor:
        centred = t - t.mean(-1, keepdim=True)
        return (
            centred / (centred.square().mean(-1, keepdim=True) + layer.eps).sqrt() * (layer.weight)
            + layer.bias
        )

    q = affine(b.attention.q, norm(b.norm_q, x))
    k, v = affine(b.attention.kv, norm(b.norm_kv, context)).split(width, -1)
    if len(context):
        attended = torch.softmax(q @ k.T / math.sqrt(width), -1) @ v
    else:
        attended = torch.zeros_like(q)
    y = x + torch.tanh(block.attn_gate) * affine(b.attention.out, attended)
    first, last = b.ffn[0], b.ffn[3]
    dense = affine(last, F.gelu(affine(first, norm(b.norm_ffn, y))))
    y = y + torch.tanh(block.ffw_gate) * dense
    return y.mean(0)


@pytest.mark.parametrize("query", ["image", "text"])
def test_xattn_gated_matches_a_hand_computed_single_head_block(query: str) -> None:
    torch.manual_seed(0)
    fusion = GatedCrossAttentionFusion(DIMS3, query=query, width=8, heads=1, gate_init=0.7)
    fusion.eval()
    with torch.no_grad():
        fusion.blocks[0].ffw_gate.fill_(-0.4)  # the two gates differ
        for norm in (m for m in fusion.modules() if isinstance(m, nn.LayerNorm)):
            norm.weight.normal_(1.0, 0.3)  # three LayerNorms, told apart
            norm.bias.normal_(0.0, 0.3)
    encoded, present = pooled_inputs(DIMS3, 8)
    present[0] = torch.tensor([False, True, True])  # the image query is absent
    present[1] = torch.tensor([True, False, False])  # image alone: an empty context
    present[2] = torch.tensor([False, True, False])  # text alone
    out = fusion(encoded, present)
    for row in range(8):
        expected = reference_xattn(fusion, encoded, present, row)
        torch.testing.assert_close(out[row], expected, atol=1e-5, rtol=1e-4)


def test_xattn_gated_with_closed_gates_is_the_pooled_query_tokens() -> None:
    torch.manual_seed(0)
    fusion = GatedCrossAttentionFusion(DIMS3, width=8, heads=2, layers=2, gate_init=0.0).eval()
    encoded, every = encode(DIMS3, 4), torch.ones(4, 3, dtype=torch.bool)
    out = fusion(encoded, every)
    for row in range(4):
        pooled = projected_tokens(fusion, encoded, 0, "image", row).mean(0)
        torch.testing.assert_close(out[row], pooled)
    # Flamingo's initialisation: the other modalities do not reach the output yet.
    moved = dict(encoded, text=encode(DIMS3, 4, seed=7)["text"])
    torch.testing.assert_close(fusion(moved, every), out)
    # The default opens the gates: tanh(1) on both paths, and the others do reach the output.
    default = GatedCrossAttentionFusion(DIMS3, width=8, heads=2).eval()
    assert default.blocks[0].attn_gate.item() == default.blocks[0].ffw_gate.item() == 1.0
    assert not torch.allclose(default(moved, every), default(encoded, every))


def test_xattn_gated_absent_query_uses_the_learned_null_token() -> None:
    torch.manual_seed(0)
    fusion = GatedCrossAttentionFusion(DIMS3, query="text", width=8, heads=2).eval()
    encoded = encode(DIMS3, 3)
    present = torch.tensor([[True, False, True]] * 3)
    with torch.no_grad():
        before = fusion(encoded, present)
        fusion.null_query.add_(0.3)
        after = fusion(encoded, present)
    assert not torch.allclose(before, after), "the null token stands in for the query"
    # Samples without their query still read the others: different others, different outputs.
    assert not torch.allclose(after[0], after[1])


def test_xattn_gated_refuses_bad_options() -> None:
    with pytest.raises(FusionError, match="fusion.query='video'.*image, text, audio"):
        GatedCrossAttentionFusion(DIMS3, query="video")
    with pytest.raises(FusionError, match="fusion.heads=3"):
        GatedCrossAttentionFusion(DIMS3, width=8, heads=3)
    with pytest.raises(FusionError, match="fusion.layers=0"):
        GatedCrossAttentionFusion(DIMS3, layers=0)


# ---------------------------------------------------------------- hypernetwork


def reference_hypernetwork(fusion: HyperNetworkFusion, encoded, present, row: int) -> torch.Tensor:
    """Generate the conditioner's layer by hand, then apply it to each present other modality."""
    c = fusion.cond_index
    x_c = encoded[fusion.conditioner].pooled[row]
    e = affine(fusion.embed, x_c) if present[row, c] else fusion.null_embedding
    flat = fusion.weights.weight @ e + fusion.weights.bias  # [width * hidden]
    matrix = flat.reshape(fusion.width, fusion.hidden)
    bias = fusion.bias.weight @ e + fusion.bias.bias
    mapped = [
        matrix.T @ affine(fusion.project.linears[m], encoded[m].pooled[row])
        for i, m in enumerate(fusion.modalities)
        if i != c and present[row, i]
    ]
    return bias + (torch.stack(mapped).mean(0) if mapped else 0)


@pytest.mark.parametrize("conditioner", ["image", "audio"])
def test_hypernetwork_applies_the_layer_generated_from_the_conditioner(
    conditioner: str,
) -> None:
    torch.manual_seed(0)
    fusion = HyperNetworkFusion(DIMS3, conditioner=conditioner, width=5, embed=3, hidden=4)
    fusion.eval()
    encoded, present = pooled_inputs(DIMS3, 8)
    present[0] = torch.tensor([True, True, True])
    out = fusion(encoded, present)
    for row in range(8):
        expected = reference_hypernetwork(fusion, encoded, present, row)
        torch.testing.assert_close(out[row], expected, atol=1e-5, rtol=1e-4)


def test_hypernetwork_absent_conditioner_generates_from_the_null_embedding() -> None:
    torch.manual_seed(0)
    fusion = HyperNetworkFusion(DIMS3, width=5, embed=3, hidden=4).eval()
    encoded = encode(DIMS3, 3)
    present = torch.tensor([[False, True, True], [False, True, False], [True, False, False]])
    out = fusion(encoded, present)
    for row in range(2):
        torch.testing.assert_close(out[row], reference_hypernetwork(fusion, encoded, present, row))
    with torch.no_grad():
        fusion.null_embedding.add_(1.0)
        moved = fusion(encoded, present)
    assert not torch.allclose(moved[:2], out[:2]), "rows without the conditioner use the null"
    torch.testing.assert_close(moved[2], out[2])
    # The conditioner alone: only the generated bias, which depends on it.
    e = affine(fusion.embed, encoded["image"].pooled[2])
    torch.testing.assert_close(out[2], affine(fusion.bias, e))


def test_hypernetwork_of_two_modalities_is_tensor_fusion_of_its_projections() -> None:
    """With two modalities and embed == width, h = b(e) + W(e)^T u is a linear layer on
    [1; e] (x) [1; u]: tensor fusion with the hypernetwork's projections as its own."""
    w, hidden = 3, 4
    torch.manual_seed(0)
    hyper = HyperNetworkFusion(DIMS2, width=w, embed=w, hidden=hidden).eval()
    tensor = TensorFusion(DIMS2, width=w, hidden=hidden).eval()
    core = torch.zeros(hidden, w + 1, w + 1)  # core[o, i, j]: weight of [1; e]_i [1; u]_j
    with torch.no_grad():
        hyper.null_embedding.zero_()  # tensor's absent modality is [1; 0]
        tensor.project.linears["image"].load_state_dict(hyper.embed.state_dict())
        tensor.project.linears["text"].load_state_dict(hyper.project.linears["text"].state_dict())
        generated = hyper.weights.weight.view(w, hidden, w)  # [j, o, i]
        core[:, 0, 0] = hyper.bias.bias
        core[:, 1:, 0] = hyper.bias.weight
        core[:, 0, 1:] = hyper.weights.bias.view(w, hidden).T
        core[:, 1:, 1:] = generated.permute(1, 2, 0)
        tensor.head.weight.copy_(core.flatten(1))
        tensor.head.bias.zero_()
    encoded = encode(DIMS2, 4)
    present = torch.tensor([[1, 1], [1, 0], [0, 1], [1, 1]], dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(hyper(encoded, present), tensor(encoded, present))


def test_hypernetwork_refuses_an_unknown_conditioner() -> None:
    with pytest.raises(FusionError, match="fusion.conditioner='video'.*image, text, audio"):
        HyperNetworkFusion(DIMS3, conditioner="video")


# ---------------------------------------------------------------- config keys


@pytest.mark.parametrize(
    "overrides",
    [
        ["fusion=linear_sum", "fusion.activation=swish"],
        ["fusion=linear_sum", "fusion.normalize=maybe"],
        ["fusion=concat_mlp", "fusion.sizes=[256,0]"],
        ["fusion=tucker", "fusion.core=0"],
        ["fusion=xattn_gated", "fusion.gate_init=open"],
        ["fusion=hypernetwork", "fusion.embed=-4"],
    ],
    ids=lambda overrides: overrides[-1],
)
def test_new_option_values_are_refused_before_anything_is_built(overrides: list[str]) -> None:
    with pytest.raises(ConfigError, match=f"^{overrides[-1].split('=')[0]}=.* must be"):
        check_config(compose_train(overrides), "train")


def test_new_option_values_in_range_pass() -> None:
    for overrides in (
        ["fusion=concat_mlp", "fusion.sizes=[512,256]", "fusion.activation=gelu"],
        ["fusion=xattn_gated", "fusion.gate_init=0", "fusion.query=text"],
        ["fusion=hypernetwork", "fusion.conditioner=text", "fusion.embed=8"],
        ["fusion=linear_sum", "fusion.normalize=true"],
    ):
        check_config(compose_train(overrides), "train")
