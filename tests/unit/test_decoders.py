"""Caption decoders (mmrun.decoders) and their search: the step/forward contract, masking,
greedy and beam search against the plain per-sample references of scripts/bench_decoding.py,
against exhaustive search, and on hand-made bigram models whose answers are known.

Search comparisons run the models in float64, so that no two candidates are near-tied and the
batched and per-sample computations, which round differently, must pick the same tokens.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from mmrun.components import build
from mmrun.decoders.base import Decoder, State
from mmrun.decoders.gru import GRUDecoder
from mmrun.decoders.search import beam_search, greedy
from mmrun.decoders.transformer import TransformerDecoder
from mmrun.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf" / "decoder"
BOS, EOS = 1, 2
VOCAB, DIM, MAX_LENGTH = 30, 12, 8
VARIANTS = {
    "gru": ("gru", {}),
    "transformer": ("transformer", {}),
    "transformer-sinusoidal-untied": (
        "transformer",
        {"positions": "sinusoidal", "tie_embeddings": False},
    ),
}
# At random initialisation a transformer with tied embeddings mostly copies its input token;
# search tests want varied captions, so they run the untied one (search does not see the tie).
SEARCH_VARIANTS = ["gru", "transformer-sinusoidal-untied"]


def load_bench():
    spec = importlib.util.spec_from_file_location(
        "bench_decoding", ROOT / "scripts" / "bench_decoding.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = load_bench()


def make(
    variant: str,
    vocab: int = VOCAB,
    sharpen: float = 4.0,
    eos_bias: float = 2.0,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> Decoder:
    """A decoder built from its YAML, eval mode; its output layer is sharpened (unless tied to
    the embedding) and EOS made likelier, so that random models write varied captions that end
    at varied lengths."""
    name, options = VARIANTS[variant]
    torch.manual_seed(seed)
    cfg = OmegaConf.merge(OmegaConf.load(CONF / f"{name}.yaml"), options)
    decoder = build(cfg, "decoder", vocab_size=vocab, memory_dim=DIM, max_length=MAX_LENGTH)
    with torch.no_grad():
        if not options.get("tie_embeddings", True) or name == "gru":
            decoder.output.weight.mul_(sharpen)
        decoder.output.bias[EOS] += eos_bias
    return decoder.to(dtype).eval()


def memory_batch(
    batch: int = 9, tokens: int = 5, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random memory; row 0 has no real token, row 1 all, the others a random number."""
    g = torch.Generator().manual_seed(seed)
    memory = torch.randn(batch, tokens, DIM, generator=g, dtype=dtype)
    lengths = torch.randint(1, tokens + 1, (batch,), generator=g)
    lengths[0], lengths[1] = 0, tokens
    return memory, torch.arange(tokens)[None, :] < lengths[:, None]


def teacher_inputs(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(3, VOCAB, (batch, length), generator=g)
    inputs[:, 0] = BOS
    return inputs


def unrolled(decoder: Decoder, memory, mask, inputs) -> torch.Tensor:
    state = decoder.init_state(memory, mask)
    logits = []
    for t in range(inputs.shape[1]):
        step_logits, state = decoder.step(state, inputs[:, t])
        logits.append(step_logits)
    return torch.stack(logits, 1)


def sequence_logprob(
    decoder: Decoder, memory, mask, sequences
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability and length (EOS counted) of decoded ``sequences`` (0-padded), by teacher
    forcing."""
    inputs = torch.cat([torch.full_like(sequences[:, :1], BOS), sequences[:, :-1]], 1)
    with torch.no_grad():
        logp = decoder(memory, mask, inputs).log_softmax(-1)
    real = sequences != 0
    token_logp = logp.gather(-1, sequences[..., None])[..., 0]
    return (token_logp * real).sum(1), real.sum(1)


def check_format(out: torch.Tensor, max_length: int = MAX_LENGTH) -> None:
    """Ids after BOS: no padding before the first EOS, only padding after it, no BOS."""
    assert out.shape[1] == max_length and out.dtype == torch.long
    for row in out.tolist():
        end = row.index(EOS) + 1 if EOS in row else max_length
        assert 0 not in row[:end] and BOS not in row[:end], row
        assert all(token == 0 for token in row[end:]), row


# --- the step / forward contract -------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_step_unrolled_equals_teacher_forcing(variant):
    decoder = make(variant, dtype=torch.float32)
    memory, mask = memory_batch(dtype=torch.float32)
    inputs = teacher_inputs(len(memory), MAX_LENGTH)
    with torch.no_grad():
        expected = decoder(memory, mask, inputs)
        got = unrolled(decoder, memory, mask, inputs)
    assert expected.shape == (len(memory), MAX_LENGTH, VOCAB)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_is_causal(variant):
    decoder = make(variant)
    memory, mask = memory_batch()
    inputs = teacher_inputs(len(memory), MAX_LENGTH)
    changed = inputs.clone()
    changed[:, 5] = (changed[:, 5] + 1 - 3) % (VOCAB - 3) + 3
    with torch.no_grad():
        before, after = decoder(memory, mask, inputs), decoder(memory, mask, changed)
    torch.testing.assert_close(after[:, :5], before[:, :5], atol=1e-12, rtol=0)
    assert (after[:, 5:] - before[:, 5:]).abs().amax(-1).min() > 1e-6  # every row, every later t


@pytest.mark.parametrize("variant", VARIANTS)
def test_memory_mask_is_respected(variant):
    """Padding tokens, even non-finite ones, change nothing; a row without a real memory token
    gets finite logits and finite gradients; a real token does matter."""
    decoder = make(variant)
    memory, mask = memory_batch()
    inputs = teacher_inputs(len(memory), MAX_LENGTH)
    logits = decoder(memory, mask, inputs)
    assert torch.isfinite(logits).all()
    logits[0].logsumexp(-1).sum().backward()  # row 0 has no real memory token
    assert all(torch.isfinite(p.grad).all() for p in decoder.parameters() if p.grad is not None)
    noisy = memory.clone()
    noisy[~mask] = float("nan")
    noisy[0] = float("inf")
    with torch.no_grad():
        torch.testing.assert_close(
            decoder(noisy, mask, inputs), logits.detach(), atol=1e-12, rtol=0
        )
        moved = memory.clone()
        moved[1, 0] += 1.0  # a real token of row 1
        delta = (decoder(moved, mask, inputs) - logits).abs().amax((1, 2))
    assert delta[1] > 1e-6 and delta[0] < 1e-12 and delta[2:].max() < 1e-12


MEMORY_READERS = {
    "gru": ("attend_", "out_context"),
    "transformer": ("cross_attention", "norm_memory", "memory_projection"),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_row_without_memory_gets_zero_attention_output(variant):
    """Whatever the weights that read the memory, a row with no real memory token gets the same
    logits (its attention output is zero), while a row with memory changes."""
    decoder = make(variant)
    memory, mask = memory_batch()
    inputs = teacher_inputs(len(memory), MAX_LENGTH)
    with torch.no_grad():
        before = decoder(memory, mask, inputs)
        for name, parameter in decoder.named_parameters():
            if any(reader in name for reader in MEMORY_READERS[VARIANTS[variant][0]]):
                parameter.add_(torch.randn_like(parameter))
        after = decoder(memory, mask, inputs)
    torch.testing.assert_close(after[0], before[0], atol=1e-12, rtol=0)
    assert (after[1] - before[1]).abs().max() > 1e-3


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_every_parameter(variant):
    decoder = make(variant).train()
    memory, mask = memory_batch()
    inputs = teacher_inputs(len(memory), MAX_LENGTH)
    targets = torch.roll(inputs, -1, 1)
    loss = torch.nn.functional.cross_entropy(decoder(memory, mask, inputs).transpose(1, 2), targets)
    loss.backward()
    for name, parameter in decoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_is_batch_first_and_static_entries_do_not_change(variant):
    decoder = make(variant)
    memory, mask = memory_batch()
    state = decoder.init_state(memory, mask)
    with torch.no_grad():
        _, after = decoder.step(state, torch.full((len(memory),), BOS))
    assert set(after) == set(state) and set(decoder.static_state) <= set(state)
    assert all(value.shape[0] == len(memory) for value in after.values())
    for name in decoder.static_state:
        assert torch.equal(after[name], state[name]), name


@pytest.mark.parametrize("variant", VARIANTS)
def test_hypotheses_share_the_memory_of_their_sample(variant):
    """k hypotheses per sample on consecutive rows, static entries kept at one row per sample,
    step like B x k samples each with its own copy of the memory."""
    decoder = make(variant)
    memory, mask = memory_batch()
    k = 3
    tokens = teacher_inputs(len(memory) * k, 3, seed=1)  # different tokens for each hypothesis
    shared = decoder.init_state(memory, mask)
    shared = {
        name: value if name in decoder.static_state else value.repeat_interleave(k, 0)
        for name, value in shared.items()
    }
    copied = decoder.init_state(memory.repeat_interleave(k, 0), mask.repeat_interleave(k, 0))
    with torch.no_grad():
        for t in range(tokens.shape[1]):
            got, shared = decoder.step(shared, tokens[:, t])
            expected, copied = decoder.step(copied, tokens[:, t])
            torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)
    assert all(shared[name].shape[0] == len(memory) for name in decoder.static_state)


def test_transformer_refuses_positions_past_max_length():
    decoder = make("transformer", eos_bias=-1e4)  # greedy must not stop before step 9
    memory, mask = memory_batch()
    with pytest.raises(ValueError, match="max_length=8"):
        decoder(memory, mask, teacher_inputs(len(memory), MAX_LENGTH + 1))
    with pytest.raises(ValueError, match="max_length=8"):
        greedy(decoder, memory, mask, BOS, EOS, MAX_LENGTH + 1)


# --- configs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name,cls", [("gru", GRUDecoder), ("transformer", TransformerDecoder)])
def test_config_builds_with_the_class_defaults(name, cls):
    path = CONF / f"{name}.yaml"
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and first.endswith(".")  # the `mmrun list decoder` line
    cfg = OmegaConf.load(path)
    decoder = build(cfg, "decoder", vocab_size=VOCAB, memory_dim=DIM, max_length=MAX_LENGTH)
    assert type(decoder) is cls and decoder.vocab_size == VOCAB and decoder.max_length == MAX_LENGTH
    defaults = {
        key: p.default
        for key, p in inspect.signature(cls).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    options = {key: value for key, value in cfg.items() if key != "_target_"}
    assert options == defaults
    cfg.hiden = 3
    with pytest.raises(ConfigError, match="decoder: .*hiden"):
        build(cfg, "decoder", vocab_size=VOCAB, memory_dim=DIM, max_length=MAX_LENGTH)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"heads": 3}, "decoder.heads=3 must divide decoder.width=128"),
        ({"layers": 0}, "decoder.layers=0"),
        ({"positions": "rotary"}, "decoder.positions='rotary'"),
    ],
)
def test_transformer_refuses_bad_options(options, message):
    with pytest.raises(ConfigError, match=message):
        TransformerDecoder(VOCAB, DIM, MAX_LENGTH, **options)


def test_tied_embeddings_share_one_matrix():
    tied, untied = TransformerDecoder(VOCAB, DIM, MAX_LENGTH), make("transformer-sinusoidal-untied")
    assert tied.output.weight is tied.embedding.weight
    assert untied.output.weight is not untied.embedding.weight
    count = sum(p.numel() for p in tied.parameters())
    assert count == sum(p.numel() for p in untied.parameters()) + 8 * 128 - VOCAB * 128


# --- hand-made bigram models -------------------------------------------------------------------


class Bigram(Decoder):
    """p(y_t | y_{t-1}) from a table per sample, ``probabilities [B, V, V]`` (rows: previous
    token); the memory is ignored (it only gives the batch size)."""

    def __init__(self, probabilities: torch.Tensor) -> None:
        super().__init__(vocab_size=probabilities.shape[-1], memory_dim=1, max_length=100)
        self.table = probabilities.log()

    def init_state(self, memory, memory_mask) -> State:
        return {"sample": torch.arange(memory.shape[0])}

    def step(self, state, tokens):
        return self.table[state["sample"], tokens], state

    def forward(self, memory, memory_mask, inputs):
        return torch.stack(
            [self.table[torch.arange(len(inputs)), inputs[:, t]] for t in range(inputs.shape[1])], 1
        )


def bigram(rows: dict[int, dict[int, float]], vocab: int = 6, batch: int = 1) -> Bigram:
    """``rows``: previous token -> {next token: probability}; unlisted rows are uniform, unlisted
    entries share what is left."""
    table = torch.full((vocab, vocab), 1.0 / vocab, dtype=torch.float64)
    for previous, nexts in rows.items():
        rest = (1.0 - sum(nexts.values())) / (vocab - len(nexts))
        table[previous] = rest
        for token, p in nexts.items():
            table[previous, token] = p
    return Bigram(table.expand(batch, vocab, vocab).clone())


def no_memory(batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(batch, 1, 1), torch.ones(batch, 1, dtype=torch.bool)


def test_greedy_stops_at_eos_pads_and_never_writes_padding_or_bos():
    # Padding and BOS are the likeliest "next tokens" here, and must be skipped.
    model = bigram({BOS: {0: 0.5, 3: 0.3}, 3: {BOS: 0.4, 4: 0.3}, 4: {0: 0.6, EOS: 0.3}})
    out = greedy(model, *no_memory(), BOS, EOS, max_length=6)
    assert out.tolist() == [[3, 4, EOS, 0, 0, 0]]


def test_greedy_and_beam_cut_a_sequence_that_never_ends_at_max_length():
    model = bigram({BOS: {3: 0.6, EOS: 0.0}, 3: {3: 0.7, EOS: 0.0}})
    for out in (
        greedy(model, *no_memory(), BOS, EOS, max_length=5),
        beam_search(model, *no_memory(), BOS, EOS, max_length=5, beam_size=3),
    ):
        assert out.tolist() == [[3, 3, 3, 3, 3]]


def test_beam_finds_the_sequence_greedy_misses():
    # Greedy takes 3 (p=.5) then 3 (p=.36): .18. Beam keeps 4 (p=.4) whose EOS (p=.9) gives .36.
    model = bigram(
        {
            BOS: {3: 0.5, 4: 0.4, EOS: 0.1},
            3: {3: 0.36, 4: 0.34, EOS: 0.3},
            4: {EOS: 0.9, 3: 0.05, 4: 0.05},
        },
        vocab=5,
    )
    memory = no_memory()
    assert greedy(model, *memory, BOS, EOS, max_length=2).tolist() == [[3, 3]]
    for penalty in (0.0, 1.0):
        out = beam_search(model, *memory, BOS, EOS, 2, beam_size=2, length_penalty=penalty)
        assert out.tolist() == [[4, EOS]]


def test_length_penalty_counts_the_eos():
    # [EOS]: log .4 = -0.92; [3, EOS]: log .6 + log .55 = -1.11, per token -0.55 (length 2 with
    # the EOS; without it, -1.11 over length 1 would lose to [EOS] under length_penalty=1 too).
    model = bigram({BOS: {EOS: 0.4, 3: 0.6}, 3: {EOS: 0.55, 4: 0.45}}, vocab=5)
    memory = no_memory()
    assert beam_search(model, *memory, BOS, EOS, 2, 3, length_penalty=0.0).tolist() == [[EOS, 0]]
    assert beam_search(model, *memory, BOS, EOS, 2, 3, length_penalty=1.0).tolist() == [[3, EOS]]


def test_a_tie_goes_to_the_hypothesis_found_first():
    # [EOS] and [3, EOS] both have probability exactly 1/2 (log 1 = 0): with length_penalty=0
    # they tie, and the first finished, [EOS], is kept.
    model = bigram({BOS: {EOS: 0.5, 3: 0.5}, 3: {EOS: 1.0}}, vocab=4)
    out = beam_search(model, *no_memory(), BOS, EOS, 2, beam_size=2, length_penalty=0.0)
    assert out.tolist() == [[EOS, 0]]


# --- search on real decoders --------------------------------------------------------------------


@pytest.mark.parametrize("variant", SEARCH_VARIANTS)
def test_greedy_is_the_argmax_of_teacher_forcing_on_its_own_output(variant):
    decoder = make(variant)
    memory, mask = memory_batch()
    out = greedy(decoder, memory, mask, BOS, EOS, MAX_LENGTH)
    check_format(out)
    ended = (out == EOS).any(1)
    assert ended.any() and not ended.all()  # the data exercise both ways of stopping
    inputs = torch.cat([torch.full_like(out[:, :1], BOS), out[:, :-1]], 1)
    with torch.no_grad():
        logits = decoder(memory, mask, inputs)
    logits[..., [0, BOS]] = float("-inf")
    expected = logits.argmax(-1)
    real = out != 0
    assert torch.equal(out[real], expected[real])


@pytest.mark.parametrize("variant", SEARCH_VARIANTS)
def test_rows_that_never_emit_eos_have_max_length_tokens(variant):
    decoder = make(variant, eos_bias=-1e4)
    memory, mask = memory_batch()
    for out in (
        greedy(decoder, memory, mask, BOS, EOS, MAX_LENGTH),
        beam_search(decoder, memory, mask, BOS, EOS, MAX_LENGTH, beam_size=3),
    ):
        assert (out != 0).all() and not (out == EOS).any() and not (out == BOS).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("variant", SEARCH_VARIANTS)
def test_beam_size_one_is_greedy(variant, seed):
    decoder = make(variant, seed=seed)
    memory, mask = memory_batch(batch=16, seed=seed)
    expected = greedy(decoder, memory, mask, BOS, EOS, MAX_LENGTH)
    for penalty in (0.0, 1.0):
        got = beam_search(decoder, memory, mask, BOS, EOS, MAX_LENGTH, 1, penalty)
        assert torch.equal(got, expected)


@pytest.mark.parametrize("variant", SEARCH_VARIANTS)
def test_batched_search_equals_the_per_sample_reference(variant):
    memory, mask = memory_batch(batch=12, seed=3)
    for seed, eos_bias in ((0, 2.0), (1, 0.0)):
        decoder = make(variant, seed=seed, eos_bias=eos_bias)
        out = greedy(decoder, memory, mask, BOS, EOS, MAX_LENGTH)
        assert torch.equal(out, BENCH.reference_greedy(decoder, memory, mask, BOS, EOS, MAX_LENGTH))
        for beam_size, penalty in ((2, 1.0), (3, 0.0), (5, 0.7), (5, 1.0)):
            options = {"bos": BOS, "eos": EOS, "max_length": MAX_LENGTH}
            options.update(beam_size=beam_size, length_penalty=penalty)
            out = beam_search(decoder, memory, mask, **options)
            check_format(out)
            assert torch.equal(
                out, BENCH.reference_beam_search(decoder, memory, mask, **options)
            ), (
                beam_size,
                penalty,
            )


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_beam_with_room_for_every_hypothesis_finds_the_best_sequence(variant):
    """Tokens {EOS, 3, 4} and max_length 3 allow 15 sequences; with beam_size 15 nothing is ever
    pruned, so beam search must return the exhaustive optimum of the normalised score."""
    decoder = make(variant, vocab=5, sharpen=1.0, eos_bias=0.0)
    memory, mask = memory_batch(batch=6, seed=4)
    words = (EOS, 3, 4)
    sequences = (
        [[EOS]]
        + [[a, EOS] for a in (3, 4)]
        + [list(s) for s in itertools.product((3, 4), (3, 4), words)]
    )
    padded = torch.tensor([s + [0] * (3 - len(s)) for s in sequences])
    batch = len(memory)
    rows = torch.arange(batch).repeat_interleave(len(sequences))
    logprob, length = sequence_logprob(decoder, memory[rows], mask[rows], padded.repeat(batch, 1))
    for penalty in (0.0, 0.5, 1.0, 2.0):
        score = (logprob / length.double() ** penalty).view(batch, len(sequences))
        expected = padded[score.argmax(1)]
        got = beam_search(decoder, memory, mask, BOS, EOS, 3, beam_size=15, length_penalty=penalty)
        assert torch.equal(got, expected), penalty


@pytest.mark.parametrize("variant", SEARCH_VARIANTS)
def test_beam_scores_at_least_greedy_on_most_samples(variant):
    """Not guaranteed (a pruned prefix can hide the greedy path) but the point of the search:
    beam 5 matches or beats greedy's normalised score on nearly every sample, beating it on some."""
    decoder = make(variant)
    memory, mask = memory_batch(batch=64, seed=5)
    scores = []
    for out in (
        greedy(decoder, memory, mask, BOS, EOS, MAX_LENGTH),
        beam_search(decoder, memory, mask, BOS, EOS, MAX_LENGTH, beam_size=5, length_penalty=1.0),
    ):
        logprob, length = sequence_logprob(decoder, memory, mask, out)
        scores.append(logprob / length)
    greedy_score, beam_score = scores
    assert (beam_score >= greedy_score - 1e-9).float().mean() >= 0.9
    assert (beam_score > greedy_score + 1e-6).any()
