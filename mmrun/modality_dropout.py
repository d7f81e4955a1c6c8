"""``model.modality_dropout``: ModDrop, whole modalities dropped from training samples.

ModDrop (Neverova et al., "ModDrop: adaptive multi-modal gesture recognition", IEEE TPAMI
2016, arXiv:1501.00102) drops each modality of a training sample with probability p, so
that the model learns to predict from any subset and degrades gracefully when a modality is
missing at test time. A dropped modality arrives exactly as missing data does: its rows are
zero-filled and its column of the batch's ``present`` mask is False, so every fusion treats
it as absent. A sample never loses all of its modalities: the task names groups of
modalities (``TaskFamily.modality_groups``: one group for prediction, one per side for the
two-tower tasks), and when a draw would drop every present modality of a group, one of them,
chosen at random, is kept. Draws use torch's global generator on the batch's device, which
the run's seed sets, so a run is reproducible.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from mmrun.errors import ConfigError

KEY = "model.modality_dropout"
# model.modality_dropout=auto, by task family. Prediction: 0.25, chosen on small real tables
# (README, Quality: the real-scans table's test accuracy rose from 0.983 to 0.990 over three
# seeds); the two-tower and captioning families were measured without it and keep 0.
AUTO_RATE = {"prediction": 0.25}


def _refusal(value: Any) -> ConfigError:
    return ConfigError(f"{KEY}={value} must be auto, a rate in [0, 1) or a rate per modality, "
                       f"e.g. {KEY}=0.3 or {KEY}={{image: 0.5, audio: 0.2}}")


def _is_rate(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value < 1.0


def parse_rates(value: Any, droppable: list[str]) -> dict[str, float]:
    """``{modality: rate}`` from the config value: one rate for every droppable modality, or a
    mapping that names some of them (the others keep 0); raises ``ConfigError`` otherwise."""
    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if value is None:
        return {}
    if not isinstance(value, dict):
        if not _is_rate(value):
            raise _refusal(value)
        return dict.fromkeys(droppable, float(value))
    for name, rate in value.items():
        if name not in droppable:
            raise ConfigError(f"{KEY} names {name!r}, which this run cannot drop; its droppable modalities are "
                              f"{', '.join(droppable) or 'none'}")
        if not _is_rate(rate):
            raise ConfigError(f"{KEY}.{name}={rate} must be a rate in [0, 1), e.g. {KEY}.{name}=0.3")
    return {name: float(rate) for name, rate in value.items()}


class ModalityDropout(nn.Module):
    """Drop whole modalities of training samples (module docstring); a no-op in eval mode.

    Args:
        rates: ``{modality: probability of dropping it from a sample}`` (from ``parse_rates``).
        groups: lists of modality names of which a sample keeps at least one present; a
            modality in no group is never dropped.
        order: the modality names in the order of the ``present`` mask's columns.
    """

    def __init__(self, rates: dict[str, float], groups: list[list[str]], order: list[str]) -> None:
        super().__init__()
        self.names = [name for name in order if rates.get(name, 0.0) > 0.0]
        self.columns = [order.index(name) for name in self.names]
        rate = torch.tensor([rates.get(name, 0.0) for name in order])
        self.register_buffer("rate", rate, persistent=False)  # follows the module's device; not in checkpoints
        self.groups = [[order.index(name) for name in group] for group in groups if set(group) & set(self.names)]

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self.training or not self.names:
            return batch
        present = batch["present"]
        drop = present & (torch.rand(present.shape, device=present.device) < self.rate)
        for columns in self.groups:
            drop[:, columns] &= ~self._kept(present[:, columns], drop[:, columns])
        filled = {}
        for name, column in zip(self.names, self.columns):
            values = batch[name]
            rows = drop[:, column].view(-1, *(1,) * (values.dim() - 1))
            filled[name] = values.masked_fill(rows, 0)
        return {**batch, **filled, "present": present & ~drop}

    @staticmethod
    def _kept(present: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        """``[B, G]``: the one modality, chosen at random among a row's present ones, that is kept
        where the draw dropped every present modality of the group (False elsewhere)."""
        lost = present.any(1) & ~(present & ~drop).any(1)
        scores = torch.rand(present.shape, device=present.device).masked_fill(~present, -1.0)
        chosen = nn.functional.one_hot(scores.argmax(1), present.shape[1]).bool()
        return chosen & lost.unsqueeze(1)


def build_modality_dropout(value: Any, groups: list[list[str]], order: list[str],
                           family: str = "prediction") -> ModalityDropout:
    """The module for ``model.modality_dropout=value`` (``auto``: the task ``family``'s rate,
    ``AUTO_RATE``), checked against the droppable modalities."""
    if value == "auto":
        value = AUTO_RATE.get(family, 0.0)
    droppable = [name for name in order if any(name in group for group in groups)]
    return ModalityDropout(parse_rates(value, droppable), groups, order)
