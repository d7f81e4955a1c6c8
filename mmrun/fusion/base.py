"""The fusion contract and the registry of fusion names.

A fusion is an ``nn.Module`` built from ``dims = {modality: width}`` (keys in the same order
as the columns of the ``present`` mask) and its own config. It exposes ``out_dim`` and
``forward(encoded, present) -> [B, out_dim]`` where ``encoded`` maps each modality to its
``EncoderOutput`` and ``present [B, M]`` says which modalities each sample really has.

Rules every fusion follows:

* an absent modality contributes nothing: changing its input must not change the output;
* a sample with any non-empty subset of modalities still gets a finite output;
* a fusion that needs at least / at most some number of modalities says so in
  ``min_modalities`` / ``max_modalities`` and is refused with a ``FusionError`` otherwise;
* a fusion that decides at the prediction level sets ``emits_logits = True``; it is then
  built with ``num_outputs`` and the model skips the shared head;
* every registered class declares, in its own body, ``equivalence``: the function class it
  computes when every modality is present. Two fusions share a class when each can represent
  exactly the other's functions (``weighted`` declares ``"sum"``: its softmax weights fold into
  the projections), so their gaps in a sweep are noise, not a finding.
  ``equivalent_over`` names the options that leave the class unchanged (``late``: ``combine``).
  ``mmrun.fusion_classes`` reads both without importing torch, for `mmrun list fusion` and the
  sweep report;
* ``budget_knob`` names the constructor argument that sets the fusion's size (its width,
  rank, ...), which ``fusion.param_budget`` scales (``mmrun.fusion.budget``); a knob that must be
  a multiple of another option names it in ``budget_multiple_of`` (``heads``, ``chunks``).

``register("name")`` adds a class to ``FUSIONS``; ``conf/fusion/<name>.yaml`` points at the
registered class, and a test checks that the two agree.
"""

from __future__ import annotations

from typing import Callable, ClassVar, TypeVar

import torch
from torch import nn

from mmrun.encoders.base import EncoderOutput
from mmrun.errors import FusionError

FUSIONS: dict[str, type["Fusion"]] = {}

F = TypeVar("F", bound=type)


def register(name: str) -> Callable[[F], F]:
    """Class decorator: make a fusion available as ``fusion=<name>``."""

    def add(cls: F) -> F:
        if name in FUSIONS:
            raise ValueError(f"fusion name {name!r} registered twice")
        cls.fusion_name = name
        FUSIONS[name] = cls
        return cls

    return add


class Fusion(nn.Module):
    """Base class: stores the modality order and checks the modality count."""

    fusion_name: ClassVar[str] = ""
    emits_logits: ClassVar[bool] = False
    uses_tokens: ClassVar[bool] = False
    min_modalities: ClassVar[int] = 1
    max_modalities: ClassVar[int | None] = None
    alternatives: ClassVar[str] = "concat, attention"
    equivalence: ClassVar[str] = ""  # every registered class declares its own (see above)
    equivalent_over: ClassVar[tuple[str, ...]] = ()
    budget_knob: ClassVar[str] = "hidden"
    budget_multiple_of: ClassVar[str | None] = None

    out_dim: int

    def __init__(self, dims: dict[str, int]) -> None:
        super().__init__()
        self.modalities = list(dims)
        self.dims = dict(dims)
        count = len(self.modalities)
        name = self.fusion_name or type(self).__name__
        if count < self.min_modalities:
            raise FusionError(
                f"fusion={name} needs at least {self.min_modalities} modalities but the data has "
                f"{count} ({', '.join(self.modalities)}); add modalities with "
                f"dataset.modalities=[...] or pick a fusion that takes one, e.g. fusion=concat"
            )
        if self.max_modalities is not None and count > self.max_modalities:
            raise FusionError(
                f"fusion={name} combines at most {self.max_modalities} modalities but the data has "
                f"{count} ({', '.join(self.modalities)}); choose fewer with dataset.modalities=[...] "
                f"or use one of: {self.alternatives}"
            )

    def chosen_modality(self, choice: str | None, key: str) -> str:
        """The modality an option names (``fusion.query``, ``fusion.conditioner``); None: the first one."""
        chosen = choice or self.modalities[0]
        if chosen not in self.dims:
            raise FusionError(
                f"fusion.{key}={chosen!r} is not a modality of this data; "
                f"choose one of: {', '.join(self.modalities)}"
            )
        return chosen

    def forward(self, encoded: dict[str, EncoderOutput], present: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # every registered subclass overrides forward
