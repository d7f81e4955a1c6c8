"""Decoding throughput: mmrun's batched greedy and beam search against a plain per-sample loop.

For each decoder (``conf/decoder/gru.yaml``, ``conf/decoder/transformer.yaml``, default sizes)
built with random weights (fixed seed), in eval mode under ``torch.no_grad``, on a random memory
of ``--batch`` samples (``--tokens`` tokens of width ``--dim``; each sample has a random number
of real tokens, and the first has none):

* **batched**: ``mmrun.decoders.search.greedy`` and ``beam_search`` over the whole batch;
* **reference**: ``reference_greedy`` and ``reference_beam_search`` below, which decode one
  sample at a time, one position at a time, with Python lists of hypotheses (the live
  hypotheses of that one sample advance together through ``decoder.step``), following the
  same rules.

Both decode the same samples with the same model. The batched searches run ``--repeats`` times,
greedy and beam alternating so that a change in the machine's load hits both, best time kept;
the references run once. It prints captions/s of each and their ratio,
and whether the outputs are identical ("same outputs: yes/no"; the exit status is 1 if not),
then whether batched beam search is no slower than ``beam_size`` greedy runs (issue 15, part 7).
The random decoders' output layers are sharpened (``--sharpen``, ``--eos-bias``; see
``make_decoder``) so that, as with a trained model, captions differ between samples and end at
varied lengths instead of being nearly flat draws that run to ``max_length``.

    python scripts/bench_decoding.py
    python scripts/bench_decoding.py --batch 64 --beam 3 --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

import torch
from omegaconf import OmegaConf

from mmrun.components import build
from mmrun.decoders.base import Decoder
from mmrun.decoders.search import beam_search, greedy

CONF = Path(__file__).resolve().parents[1] / "conf" / "decoder"
DECODERS = ("gru", "transformer")
BOS, EOS = 1, 2  # id 0 is padding


def reference_log_probs(logits: torch.Tensor, bos: int, eos: int) -> torch.Tensor:
    """Log-softmax (at least float32) with padding and BOS (unless it is EOS) at -inf."""
    logp = logits.to(torch.promote_types(logits.dtype, torch.float32)).log_softmax(-1)
    logp[..., 0] = float("-inf")
    if bos != eos:
        logp[..., bos] = float("-inf")
    return logp


@torch.no_grad()
def reference_greedy(
    decoder: Decoder,
    memory: torch.Tensor,
    memory_mask: torch.Tensor,
    bos: int,
    eos: int,
    max_length: int,
) -> torch.Tensor:
    """Greedy decoding one sample at a time, one token at a time."""
    out = torch.zeros(memory.shape[0], max_length, dtype=torch.long)
    for b in range(memory.shape[0]):
        state = decoder.init_state(memory[b : b + 1], memory_mask[b : b + 1])
        token = bos
        for t in range(max_length):
            logits, state = decoder.step(state, torch.tensor([token], device=memory.device))
            token = int(reference_log_probs(logits[0], bos, eos).argmax())
            out[b, t] = token
            if token == eos:
                break
    return out.to(memory.device)


@torch.no_grad()
def reference_beam_search(
    decoder: Decoder,
    memory: torch.Tensor,
    memory_mask: torch.Tensor,
    bos: int,
    eos: int,
    max_length: int,
    beam_size: int,
    length_penalty: float = 1.0,
) -> torch.Tensor:
    """Beam search one sample at a time, with the rules of ``mmrun.decoders.search.beam_search``:
    keep the best ``beam_size - finished`` extensions; those ending with EOS or at ``max_length``
    are finished; return the finished one with the best log-probability / length**penalty."""
    out = torch.zeros(memory.shape[0], max_length, dtype=torch.long)
    dtype = torch.promote_types(memory.dtype, torch.float32)
    for b in range(memory.shape[0]):
        state = decoder.init_state(memory[b : b + 1], memory_mask[b : b + 1])
        live: list[list[int]] = [[]]  # the live hypotheses' tokens
        scores = torch.zeros(1, dtype=dtype, device=memory.device)  # their log-probabilities
        finished, best, best_score = 0, [], float("-inf")
        for t in range(max_length):
            last = torch.tensor([seq[-1] if seq else bos for seq in live], device=memory.device)
            logits, state = decoder.step(state, last)
            logp = reference_log_probs(logits, bos, eos)
            vocab = logp.shape[-1]
            candidates = (scores[:, None] + logp).flatten()
            top, index = candidates.topk(min(beam_size - finished, len(candidates)))
            normalised = (top / (t + 1) ** length_penalty).tolist()
            rows, positions, next_live = [], [], []
            for position, (value, norm, i) in enumerate(
                zip(top.tolist(), normalised, index.tolist())
            ):
                if value == float("-inf"):
                    break
                row, token = divmod(i, vocab)
                seq = live[row] + [token]
                if token == eos or t == max_length - 1:
                    finished += 1
                    if norm > best_score:
                        best, best_score = seq, norm
                else:
                    rows.append(row)
                    positions.append(position)
                    next_live.append(seq)
            if not next_live:
                break
            live, scores = next_live, top[positions]
            picked = torch.tensor(rows, device=memory.device)
            state = {  # per-sample (static) entries have the one row of this sample
                name: value if name in decoder.static_state else value.index_select(0, picked)
                for name, value in state.items()
            }
        out[b, : len(best)] = torch.tensor(best, dtype=torch.long)
    return out.to(memory.device)


def make_decoder(
    name: str, vocab: int, dim: int, max_length: int, sharpen: float, eos_bias: float
) -> Decoder:
    """The decoder at its default size with random weights, its output layer sharpened.

    A random decoder's next-token distribution is nearly flat, and a random transformer with
    tied embeddings mostly copies its input token; neither looks like a trained captioner. So
    the transformer's output layer is untied (same size and speed) and every decoder's output
    weights are multiplied by ``sharpen`` and its EOS bias raised by ``eos_bias``: captions
    then vary from sample to sample and end at varied lengths.
    """
    torch.manual_seed(0)
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    if "tie_embeddings" in cfg:
        cfg.tie_embeddings = False
    decoder = build(cfg, "decoder", vocab_size=vocab, memory_dim=dim, max_length=max_length)
    with torch.no_grad():
        decoder.output.weight.mul_(sharpen)
        decoder.output.bias[EOS] += eos_bias
    return decoder.eval()


def make_memory(batch: int, tokens: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random memory; sample b has a random number of real tokens (the first sample none)."""
    g = torch.Generator().manual_seed(1)
    memory = torch.randn(batch, tokens, dim, generator=g)
    lengths = torch.randint(1, tokens + 1, (batch,), generator=g)
    lengths[0] = 0
    return memory, torch.arange(tokens)[None, :] < lengths[:, None]


def seconds(run) -> tuple[float, torch.Tensor]:
    """Wall time of one run, and its output."""
    start = time.perf_counter()
    out = run()
    return time.perf_counter() - start, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=17, help="memory tokens per sample")
    parser.add_argument("--dim", type=int, default=128, help="memory width")
    parser.add_argument("--vocab", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=16)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--sharpen", type=float, default=4.0, help="output weight multiplier")
    parser.add_argument("--eos-bias", type=float, default=3.0, help="added to the EOS logit")
    parser.add_argument("--repeats", type=int, default=5, help="batched runs (best time kept)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    memory, mask = make_memory(args.batch, args.tokens, args.dim)
    common = {"bos": BOS, "eos": EOS, "max_length": args.max_length}
    beam = {**common, "beam_size": args.beam}
    print(
        f"decoding {args.batch} captions: memory {args.tokens} x {args.dim}, vocab {args.vocab}, "
        f"max_length {args.max_length}, beam {args.beam}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, cpu; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    print(
        f"{'decoder':<12} {'search':<8} {'batched cap/s':>14} {'reference cap/s':>16} "
        f"{'ratio':>7} {'same':>5} {'mean length':>12}"
    )
    same_all, fast_all = True, True
    for name in DECODERS:
        decoder = make_decoder(
            name, args.vocab, args.dim, args.max_length, args.sharpen, args.eos_bias
        )
        greedy(decoder, memory[:8], mask[:8], **common)  # warm-up
        searches = {
            "greedy": (greedy, reference_greedy, common),
            f"beam{args.beam}": (beam_search, reference_beam_search, beam),
        }
        # Batched runs alternate between the searches, so that a change in the machine's load
        # hits both; the best of the repeats is kept.
        fast, outputs = dict.fromkeys(searches, float("inf")), {}
        for _ in range(args.repeats):
            for search, (batched, _, options) in searches.items():
                took, outputs[search] = seconds(partial(batched, decoder, memory, mask, **options))
                fast[search] = min(fast[search], took)
        for search, (_, reference, options) in searches.items():
            slow, expected = seconds(partial(reference, decoder, memory, mask, **options))
            same = torch.equal(outputs[search], expected)
            same_all &= same
            length = float((outputs[search] != 0).sum(1).float().mean())
            print(
                f"{name:<12} {search:<8} {args.batch / fast[search]:>14,.0f} "
                f"{args.batch / slow:>16,.0f} {slow / fast[search]:>6.1f}x "
                f"{'yes' if same else 'no':>5} {length:>12.1f}"
            )
        ratio = fast[f"beam{args.beam}"] / (args.beam * fast["greedy"])
        fast_all &= ratio <= 1.0
        print(
            f"{name:<12} beam {args.beam} takes {ratio:.2f}x the time of {args.beam} greedy runs: "
            f"no slower than greedy x {args.beam}: {'yes' if ratio <= 1.0 else 'no'}"
        )
    print(f"same outputs: {'yes' if same_all else 'no'}")
    print(f"beam {args.beam} no slower than greedy x {args.beam}: {'yes' if fast_all else 'no'}")
    return 0 if same_all else 1


if __name__ == "__main__":
    sys.exit(main())
