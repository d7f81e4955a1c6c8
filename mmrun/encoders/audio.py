"""Audio encoders over raw waveforms ``[B, L]``."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.data.spec import ModalitySpec
from mmrun.encoders.base import EncoderOutput
from mmrun.errors import ConfigError


class WaveformConvEncoder(nn.Module):
    """Strided 1-D convolutions over the waveform; tokens are the frames of the last layer.

    In the style of the sample-level 1-D CNNs of Dai et al., "Very Deep Convolutional Neural
    Networks for Raw Waveforms", ICASSP 2017, arXiv:1610.00087.

    Args:
        spec: the audio modality (shape ``[L]``).
        channels: output channels of each strided block.
        kernel_size: kernel of each convolution (stride is kernel_size // 2).
        out_dim: width of tokens and pooled vector.
        dropout: dropout on the outputs.
    """

    def __init__(
        self,
        spec: ModalitySpec,
        channels: list[int],
        kernel_size: int = 8,
        out_dim: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(spec.shape) != 1:
            raise ConfigError(
                f"encoder/audio=cnn1d reads a waveform [L], but modality {spec.name!r} has shape {list(spec.shape)} "
                f"(a spectrogram); use encoder/audio=melcnn, melgru or transformer"
            )
        blocks: list[nn.Module] = []
        in_channels = 1
        for width in channels:
            blocks += [
                nn.Conv1d(in_channels, width, kernel_size, stride=kernel_size // 2, bias=False),
                nn.BatchNorm1d(width),
                nn.GELU(),
            ]
            in_channels = width
        self.features = nn.Sequential(*blocks)
        self.project = nn.Linear(in_channels, out_dim)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = out_dim

    def forward(self, waveform: torch.Tensor) -> EncoderOutput:
        frames = self.features(waveform.unsqueeze(1)).transpose(1, 2)  # [B, T, C]
        tokens = self.dropout(self.project(frames))
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return EncoderOutput(tokens=tokens, mask=mask, pooled=tokens.mean(1))
