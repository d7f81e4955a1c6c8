"""Fusion methods. Importing this package fills the ``FUSIONS`` registry."""

from mmrun.fusion import (  # noqa: F401  (imported to register)
    attention,
    bilinear,
    concat,
    deepset,
    elementwise,
    film,
    gated,
    hypernetwork,
    late,
    mcb,
    mi,
    mmf,
    mult,
    nlgate,
    perceiver,
    tensor,
    transformer,
    tucker,
    xattn,
)
from mmrun.fusion.base import FUSIONS, Fusion, register

__all__ = ["FUSIONS", "Fusion", "register"]
