"""ResNet-18/34 image encoder (basic residual blocks), written in plain torch."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.data.spec import ModalitySpec
from mmrun.encoders.base import EncoderOutput
from mmrun.errors import ConfigError

# Residual blocks per stage of the two basic-block layouts of the paper (Table 1).
LAYOUTS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
# Images at most this large get the CIFAR stem (3x3 conv, no max-pool) instead of 7x7/2 + pool.
SMALL_IMAGE = 64


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNetImageEncoder(nn.Module):
    """ResNet-18 or ResNet-34: four stages of basic blocks at widths w, 2w, 4w, 8w.

    Images up to 64 pixels get the CIFAR stem of the paper's section 4.2 (one 3x3 conv, no
    pooling); larger ones the ImageNet stem (7x7 stride-2 conv and 3x3 max-pool). Tokens are
    the cells of the last feature map projected to ``out_dim``; pooled is their mean (global
    average pooling). He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
    arXiv:1512.03385.

    Args:
        spec: the image modality (shape ``[C, H, W]``).
        depth: 18 or 34.
        width: channels of the first stage (64 in the paper; small by default for CPUs).
        out_dim: width of tokens and pooled vector.
        dropout: dropout on the outputs.
    """

    def __init__(self, spec: ModalitySpec, depth: int = 18, width: int = 16, out_dim: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        if depth not in LAYOUTS:
            raise ConfigError(f"encoder/image=resnet: depth={depth} is not supported; use one of {sorted(LAYOUTS)}")
        channels, height, image_width = spec.shape
        if max(height, image_width) <= SMALL_IMAGE:
            stem = [nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        else:
            stem = [
                nn.Conv2d(channels, width, 7, 2, 3, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            ]
        layers: list[nn.Module] = list(stem)
        in_channels = width
        for stage, blocks in enumerate(LAYOUTS[depth]):
            out_channels = width * 2**stage
            for index in range(blocks):
                layers.append(BasicBlock(in_channels, out_channels, 2 if stage and index == 0 else 1))
                in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.project = nn.Linear(in_channels, out_dim)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = out_dim

    def forward(self, images: torch.Tensor) -> EncoderOutput:
        grid = self.features(images)  # [B, 8w, h, w]
        tokens = self.dropout(self.project(grid.flatten(2).transpose(1, 2)))
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return EncoderOutput(tokens=tokens, mask=mask, pooled=tokens.mean(1))
