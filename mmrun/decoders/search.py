"""Decoding a ``Decoder``: greedy and beam search, batched on the device.

Both return ``LongTensor [B, max_length]``: the ids generated after BOS. A sequence that emits
EOS keeps it and is padded with 0 after it; one that never does is cut at ``max_length``.
Neither the padding id 0 nor BOS (unless it is also EOS) is ever generated: their
log-probability is set to -inf, so a 0 in the output always means padding.

Both run the whole batch with one ``decoder.step`` per position (B rows for greedy, B x
beam_size for beam search), with no Python loop over samples or hypotheses, and stop as soon
as every sample has finished. Call them with the decoder in eval mode; they build no graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmrun.decoders.base import Decoder, State

PAD = 0


def allowed(scores: torch.Tensor, bos: int, eos: int) -> torch.Tensor:
    """``scores [..., V]`` with the ids that are never generated (padding, BOS) set to -inf."""
    banned = [PAD] if bos == eos else [PAD, bos]
    return scores.index_fill(-1, torch.tensor(banned, device=scores.device), float("-inf"))


def log_probs(logits: torch.Tensor, bos: int, eos: int) -> torch.Tensor:
    """The model's next-token log-probabilities, at least float32, never-generated ids -inf."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return allowed(logits.log_softmax(-1), bos, eos)


@torch.no_grad()
def greedy(
    decoder: Decoder,
    memory: torch.Tensor,
    memory_mask: torch.Tensor,
    bos: int,
    eos: int,
    max_length: int,
) -> torch.Tensor:
    """The most likely next token at every step: y_t = argmax_v p(v | y_<t, memory)."""
    batch, device = memory.shape[0], memory.device
    state = decoder.init_state(memory, memory_mask)
    tokens = torch.full((batch,), bos, dtype=torch.long, device=device)
    out = torch.zeros(batch, max_length, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    for t in range(max_length):
        logits, state = decoder.step(state, tokens)
        tokens = allowed(logits, bos, eos).argmax(-1).masked_fill(finished, PAD)
        out[:, t] = tokens
        finished |= tokens == eos
        if finished.all():
            break
    return out


@torch.no_grad()
def beam_search(
    decoder: Decoder,
    memory: torch.Tensor,
    memory_mask: torch.Tensor,
    bos: int,
    eos: int,
    max_length: int,
    beam_size: int,
    length_penalty: float = 1.0,
) -> torch.Tensor:
    """Beam search in which finished hypotheses take beam slots, batched over samples.

    Each sample keeps at most ``beam_size`` live hypotheses, scored by their log-probability
    s(y) = sum_t log p(y_t | y_<t, memory). At each step every live hypothesis is extended by
    every token; of all the extensions of a sample the best ``beam_size - f`` by s are kept,
    where f counts the hypotheses of that sample already finished. A kept extension that ends
    with EOS, or that reaches ``max_length``, is finished (set aside); the others stay live. A
    sample is done when ``beam_size`` of its hypotheses have finished (or none is live), which
    is why ``beam_size=1`` is exactly greedy decoding. The output is the finished hypothesis
    with the highest length-normalised score

        score(y) = s(y) / |y| ** length_penalty,

    |y| counting the generated tokens with the EOS (not BOS). ``length_penalty`` 0 ranks by
    log-probability alone (favouring short captions), 1 by mean log-probability per token; this
    is the plain form of the length normalisation of Wu et al., "Google's Neural Machine
    Translation System", 2016, arXiv:1609.08144 (their lp = ((5 + |y|) / 6) ** alpha). Ties go
    to the earlier-found hypothesis.

    The search starts with one hypothesis (BOS) per sample, so its first step runs B rows and
    cannot select copies of one hypothesis; from then on all B x beam_size hypotheses advance
    together with one ``decoder.step`` per position. Each step keeps ``beam_size`` slots per
    sample; a slot with no live hypothesis (finished, or no room left) scores -inf, is never
    selected again and never finishes. The state rows follow the kept hypotheses through
    ``index_select``, except the entries in ``decoder.static_state`` (the memory), which keep
    one row per sample shared by its beams.
    """
    batch, device = memory.shape[0], memory.device
    dtype = torch.promote_types(memory.dtype, torch.float32)  # that of the log-probabilities
    state = decoder.init_state(memory, memory_mask)
    tokens = torch.full((batch, 1), bos, dtype=torch.long, device=device)
    scores = torch.zeros(batch, 1, dtype=dtype, device=device)  # of the live hypotheses
    history = torch.zeros(batch, 1, 0, dtype=torch.long, device=device)  # their tokens
    finished = torch.zeros(batch, 1, dtype=torch.long, device=device)
    best_score = torch.full((batch,), float("-inf"), dtype=dtype, device=device)
    best = torch.zeros(batch, max_length, dtype=torch.long, device=device)
    samples = torch.arange(batch, device=device)
    for t in range(max_length):
        logits, state = decoder.step(state, tokens.view(-1))
        width = scores.shape[1]  # 1 at the first step, then beam_size (less if V is smaller)
        logp = log_probs(logits, bos, eos).view(batch, width, -1)
        candidates = (scores[..., None] + logp).view(batch, -1)
        top, index = candidates.topk(min(beam_size, candidates.shape[1]), 1)
        beam, tokens = index // logp.shape[-1], index % logp.shape[-1]
        slot = torch.arange(top.shape[1], device=device)
        kept = (slot < beam_size - finished) & top.isfinite()
        ends = kept & ((tokens == eos) | (t == max_length - 1))
        history = torch.cat(
            [history.gather(1, beam[..., None].expand(-1, -1, t)), tokens[..., None]], 2
        )
        normalised = (top / (t + 1) ** length_penalty).masked_fill(~ends, float("-inf"))
        candidate = normalised.argmax(1)
        candidate_score = normalised[samples, candidate]
        better = candidate_score > best_score
        best = torch.where(
            better[:, None], F.pad(history[samples, candidate], (0, max_length - t - 1)), best
        )
        best_score = torch.where(better, candidate_score, best_score)
        finished += ends.sum(1, keepdim=True)
        scores = top.masked_fill(~kept | ends, float("-inf"))
        if not scores.isfinite().any():
            break
        state = reorder(state, (samples[:, None] * width + beam).view(-1), decoder.static_state)
    return best


def reorder(state: State, rows: torch.Tensor, static: tuple[str, ...]) -> State:
    """The state of the hypotheses ``rows`` (the old row of each new row); entries in
    ``static`` are per sample and stay as they are."""
    return {
        name: value if name in static else value.index_select(0, rows)
        for name, value in state.items()
    }
