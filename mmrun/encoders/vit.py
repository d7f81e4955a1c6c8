"""A small Vision Transformer image encoder."""

from __future__ import annotations

import torch
from torch import nn

from mmrun.data.spec import ModalitySpec
from mmrun.encoders.base import EncoderOutput
from mmrun.encoders.transformer import TokenTransformer
from mmrun.errors import ConfigError


class ViTImageEncoder(nn.Module):
    """Non-overlapping patches, linearly embedded, plus learned positions, through a Transformer.

    Tokens are [CLS] and the patches; pooled is the [CLS] token or the patch mean.
    Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition
    at Scale", ICLR 2021, arXiv:2010.11929.

    Args:
        spec: the image modality (shape ``[C, H, W]``; H and W divisible by ``patch_size``).
        patch_size: side of the square patches.
        out_dim: token width of the Transformer and of the outputs.
        depth, heads, ff_mult, pooling: see ``TokenTransformer``.
        dropout: dropout inside the layers.
    """

    def __init__(
        self,
        spec: ModalitySpec,
        patch_size: int = 4,
        out_dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        ff_mult: int = 2,
        pooling: str = "cls",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        channels, height, width = spec.shape
        if height % patch_size or width % patch_size:
            raise ConfigError(
                f"encoder/image=vit: patch_size={patch_size} does not divide the {height}x{width} images of "
                f"modality {spec.name!r}; set encoder.image.patch_size to a divisor of both sides"
            )
        self.patches = nn.Conv2d(channels, out_dim, patch_size, stride=patch_size)
        num_patches = (height // patch_size) * (width // patch_size)
        self.transformer = TokenTransformer(out_dim, depth, heads, ff_mult, dropout, max_len=num_patches, pooling=pooling)
        self.out_dim = out_dim

    def forward(self, images: torch.Tensor) -> EncoderOutput:
        patches = self.patches(images).flatten(2).transpose(1, 2)  # [B, N, D]
        mask = torch.ones(patches.shape[:2], dtype=torch.bool, device=patches.device)
        return self.transformer(patches, mask)
