"""Image encoders."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.data.spec import ModalitySpec
from mmrun.encoders.base import EncoderOutput


def vgg_blocks(in_channels: int, channels: list[int]) -> nn.Sequential:
    """Blocks of (3x3 conv, BatchNorm, GELU, 2x2 max-pool), one per entry of ``channels``."""
    blocks: list[nn.Module] = []
    for width in channels:
        blocks += [nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.GELU(), nn.MaxPool2d(2)]
        in_channels = width
    return nn.Sequential(*blocks)


class ConvImageEncoder(nn.Module):
    """A small VGG-style CNN: blocks of (3x3 conv, BatchNorm, GELU, 2x2 max-pool).

    Tokens are the cells of the last feature map projected to ``out_dim`` (so token-level
    fusions can attend to image regions); ``pooled`` is their mean. After Simonyan and
    Zisserman, "Very Deep Convolutional Networks", ICLR 2015, arXiv:1409.1556.

    Args:
        spec: the image modality (shape ``[C, H, W]``).
        channels: output channels of each block.
        out_dim: width of tokens and pooled vector.
        dropout: dropout on the outputs.
    """

    def __init__(self, spec: ModalitySpec, channels: list[int], out_dim: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        self.features = vgg_blocks(spec.shape[0], channels)
        self.project = nn.Linear(channels[-1], out_dim)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = out_dim

    def forward(self, images: torch.Tensor) -> EncoderOutput:
        grid = self.features(images)  # [B, C, h, w]
        tokens = self.dropout(self.project(grid.flatten(2).transpose(1, 2)))
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return EncoderOutput(tokens=tokens, mask=mask, pooled=tokens.mean(1))
