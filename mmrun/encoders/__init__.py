"""Encoders: one module per modality kind, all returning an ``EncoderOutput``."""

from mmrun.encoders.base import EncoderOutput

__all__ = ["EncoderOutput"]
