"""Encoders of precomputed features and of other frame sequences.

``features`` modalities hold vectors ``[D]`` or sequences ``[T, D]`` (zero rows are
padding, as in the CMU-MOSI/MOSEI releases). The recurrent and Transformer encoders here
also read log-mel spectrograms (``audio`` kind, ``[n_mels, frames]``) frame by frame, so
``encoder/audio=melgru`` and ``encoder/audio=transformer`` are the same modules.
"""

from __future__ import annotations

import torch
from torch import nn

from mmrun.data.spec import ModalitySpec
from mmrun.encoders.base import EncoderOutput, masked_mean, single_token
from mmrun.encoders.recurrent import RecurrentStack
from mmrun.encoders.transformer import TokenTransformer
from mmrun.errors import ConfigError

# The encoder to suggest when a modality is not a sequence.
_VECTOR_FIX = {"features": "encoder/features=linear", "audio": "encoder/audio=cnn1d"}


def sequence_dims(spec: ModalitySpec) -> tuple[int, int]:
    """``(steps, width)`` of a sequence modality: ``[T, D]`` features or ``[n_mels, frames]`` audio."""
    if len(spec.shape) != 2:
        what = "a log-mel spectrogram [n_mels, frames]" if spec.kind == "audio" else "a sequence [T, D]"
        raise ConfigError(
            f"encoder/{spec.kind} needs {what}, but modality {spec.name!r} has shape {list(spec.shape)}; "
            f"use {_VECTOR_FIX.get(spec.kind, 'an encoder for vectors')}"
        )
    if spec.kind == "audio":
        return spec.shape[1], spec.shape[0]
    return spec.shape[0], spec.shape[1]


def frames(x: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The input as steps ``[B, T, D]`` and its mask (a step is real unless it is all zeros)."""
    steps = x.transpose(1, 2) if kind == "audio" else x
    return steps, steps.ne(0).any(-1)


class LinearFeatureEncoder(nn.Module):
    """A linear map of each vector (or of each step of a sequence) to ``out_dim``.

    A vector gives one token; a sequence gives one token per step and pooled is the masked
    mean. The usual baseline over precomputed features, as in Liang et al., "MultiBench:
    Multiscale Benchmarks for Multimodal Representation Learning", NeurIPS 2021 Datasets
    and Benchmarks, arXiv:2107.07502.

    Args:
        spec: the features modality (shape ``[D]`` or ``[T, D]``).
        out_dim: width of tokens and pooled vector.
        dropout: dropout on the outputs.
    """

    def __init__(self, spec: ModalitySpec, out_dim: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        self.kind = spec.kind
        self.is_sequence = len(spec.shape) == 2
        in_dim = sequence_dims(spec)[1] if self.is_sequence else spec.shape[0]
        self.project = nn.Sequential(nn.Linear(in_dim, out_dim), nn.Dropout(dropout))
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        if not self.is_sequence:
            return single_token(self.project(x))
        steps, mask = frames(x, self.kind)
        tokens = self.project(steps)
        return EncoderOutput(tokens=tokens, mask=mask, pooled=masked_mean(tokens, mask))


class RecurrentSequenceEncoder(nn.Module):
    """A (bi)directional GRU or LSTM over the steps of a sequence (see ``RecurrentStack``).

    Over log-mel frames this is the recurrent half of Choi et al., "Convolutional
    Recurrent Neural Networks for Music Classification", ICASSP 2017, arXiv:1609.04243.

    Args:
        spec: a features modality ``[T, D]`` or an audio spectrogram ``[n_mels, frames]``.
        cell: ``gru`` or ``lstm``.
        hidden: state width per direction.
        bidirectional: read the sequence both ways.
        out_dim: width of tokens and pooled vector.
        dropout: dropout on the outputs.
    """

    def __init__(
        self,
        spec: ModalitySpec,
        cell: str = "gru",
        hidden: int = 64,
        bidirectional: bool = True,
        out_dim: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.kind = spec.kind
        self.rnn = RecurrentStack(sequence_dims(spec)[1], cell, hidden, bidirectional, out_dim, dropout)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        return self.rnn(*frames(x, self.kind))


class TransformerSequenceEncoder(nn.Module):
    """Each step linearly embedded, plus learned positions, through a small Transformer.

    Over log-mel frames this follows the Audio Spectrogram Transformer with one token per
    frame (Gong et al., "AST: Audio Spectrogram Transformer", Interspeech 2021,
    arXiv:2104.01778); over feature sequences, the unimodal Transformers of Tsai et al.,
    "Multimodal Transformer for Unaligned Multimodal Language Sequences", ACL 2019,
    arXiv:1906.00295.

    Args:
        spec: a features modality ``[T, D]`` or an audio spectrogram ``[n_mels, frames]``.
        out_dim: token width of the Transformer and of the outputs.
        depth, heads, ff_mult, pooling: see ``TokenTransformer``.
        dropout: dropout inside the layers.
    """

    def __init__(
        self,
        spec: ModalitySpec,
        out_dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        ff_mult: int = 2,
        pooling: str = "cls",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.kind = spec.kind
        steps, width = sequence_dims(spec)
        self.embed = nn.Linear(width, out_dim)
        self.transformer = TokenTransformer(out_dim, depth, heads, ff_mult, dropout, max_len=steps, pooling=pooling)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        steps, mask = frames(x, self.kind)
        return self.transformer(self.embed(steps), mask)
