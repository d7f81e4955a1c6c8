"""A 2-D CNN over log-mel spectrograms ``[n_mels, frames]``."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.data.spec import ModalitySpec
from mmrun.encoders.base import EncoderOutput
from mmrun.encoders.features import sequence_dims
from mmrun.encoders.image import vgg_blocks
from mmrun.errors import ConfigError


class MelCNNEncoder(nn.Module):
    """VGG-style conv blocks over the spectrogram as a one-channel image; tokens are time steps.

    After the last block the frequency axis is averaged away, so each remaining time step
    is one token (projected to ``out_dim``) and pooled is their mean. Hershey et al., "CNN
    Architectures for Large-Scale Audio Classification", ICASSP 2017, arXiv:1609.09430.

    Args:
        spec: the audio modality (shape ``[n_mels, frames]``, both at least
            ``2 ** len(channels)``).
        channels: output channels of each block (each block halves both axes).
        out_dim: width of tokens and pooled vector.
        dropout: dropout on the outputs.
    """

    def __init__(self, spec: ModalitySpec, channels: list[int], out_dim: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        steps, n_mels = sequence_dims(spec)
        if min(steps, n_mels) < 2 ** len(channels):
            raise ConfigError(
                f"encoder/audio=melcnn: {len(channels)} blocks halve the {n_mels}x{steps} spectrogram of "
                f"modality {spec.name!r} below one cell; use fewer encoder.audio.channels"
            )
        self.features = vgg_blocks(1, channels)
        self.project = nn.Linear(channels[-1], out_dim)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = out_dim

    def forward(self, spectrogram: torch.Tensor) -> EncoderOutput:
        grid = self.features(spectrogram.unsqueeze(1))  # [B, C, mels', frames']
        tokens = self.dropout(self.project(grid.mean(2).transpose(1, 2)))
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return EncoderOutput(tokens=tokens, mask=mask, pooled=tokens.mean(1))
