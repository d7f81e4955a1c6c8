"""Contrastive losses between two batches of L2-normalised embeddings, with several positives.

Rows with the same group id are positives of each other (five captions of one image), every
other pair is a negative. A row whose side has none of its modalities (``valid`` False) takes
no part: it is neither a query nor a candidate. Under DDP the other ranks' embeddings are gathered with their
gradients (``torch.distributed.nn.functional.all_gather``), so each rank's rows are
contrasted with the global batch, as in open_clip's ``gather_with_grad`` + ``local_loss``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _world_size() -> int:
    distributed = torch.distributed
    return distributed.get_world_size() if distributed.is_available() and distributed.is_initialized() else 1


def gather_batch(tensor: torch.Tensor, with_grad: bool) -> torch.Tensor:
    """Every rank's ``tensor`` concatenated in rank order (itself when not distributed).

    ``with_grad`` keeps the graph: the gradient of a gathered row flows back to the rank that
    made it. Ranks must hold equally long batches: training shards are cut equal; evaluation
    shards are not, so without gradients (validation, test) each rank keeps its own batch.
    """
    if _world_size() == 1 or not torch.is_grad_enabled():  # validation: ranks' batches may differ in size
        return tensor
    if with_grad:
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(tensor))
    parts = [torch.empty_like(tensor) for _ in range(_world_size())]
    torch.distributed.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def same_group(rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """``[len(rows), len(columns)]`` bool: True where a row and a column share a group id."""
    return rows.unsqueeze(1) == columns.unsqueeze(0)


class InfoNCELoss(nn.Module):
    """CLIP's symmetric cross-entropy over ``scale * q @ t.T`` (Radford et al., "Learning
    Transferable Visual Models From Natural Language Supervision", ICML 2021, arXiv:2103.00020;
    InfoNCE: van den Oord et al., 2018, arXiv:1807.03748).

    The logit scale is learned, starts at ``1 / temperature`` and is clamped at ``max_scale``
    (100, as in CLIP). A row with several positives has a target spread evenly over them.
    ``symmetric=False`` keeps the query -> target half only: the in-batch sampled softmax of
    two-tower recommenders (Yi et al., RecSys 2019).
    """

    def __init__(self, temperature: float = 0.07, max_scale: float = 100.0, symmetric: bool = True) -> None:
        super().__init__()
        self.symmetric = symmetric
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.max_log_scale = math.log(max_scale)

    def scale(self) -> torch.Tensor:
        return self.log_scale.clamp(max=self.max_log_scale).exp()

    def forward(self, queries: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
        all_queries, all_targets = gather_batch(queries, True), gather_batch(targets, True)
        all_groups, all_valid = gather_batch(groups, False), gather_batch(valid, False)
        scale = self.scale()
        forward = self._cross_entropy(scale * queries @ all_targets.T, groups, all_groups, valid, all_valid)
        if not self.symmetric:  # sampled softmax over the batch's targets (recommendation)
            return forward
        return 0.5 * (forward + self._cross_entropy(scale * targets @ all_queries.T, groups, all_groups, valid,
                                                    all_valid))

    @staticmethod
    def _cross_entropy(logits: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor, valid_rows: torch.Tensor,
                       valid_columns: torch.Tensor) -> torch.Tensor:
        positives = (same_group(rows, columns) & valid_columns.unsqueeze(0)).float()
        logits = logits.float().masked_fill(~valid_columns.unsqueeze(0), -1e9)  # -inf would make 0 * -inf
        keep = valid_rows & (positives.sum(1) > 0)
        if not keep.any():
            return logits.sum() * 0.0  # no pair to learn from; keeps the graph
        target = positives[keep] / positives[keep].sum(1, keepdim=True)
        return F.cross_entropy(logits[keep], target)


class SigLIPLoss(nn.Module):
    """Pairwise sigmoid loss over ``t' q @ t.T + b`` (Zhai et al., "Sigmoid Loss for Language
    Image Pre-Training", ICCV 2023, arXiv:2303.15343).

    Every pair is a binary problem (positive: same group); the sum is divided by the number of
    rows. Temperature and bias are learned and start as in the paper: ``t' = 10``, ``b = -10``.
    """

    def __init__(self, temperature: float = 10.0, bias: float = -10.0) -> None:
        super().__init__()
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    def scale(self) -> torch.Tensor:
        """The learned temperature ``t'``: the scale of a similarity in the pair logits."""
        return self.log_temperature.exp()

    def forward(self, queries: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
        all_targets, all_groups = gather_batch(targets, True), gather_batch(groups, False)
        all_valid = gather_batch(valid, False)
        logits = (self.scale() * queries @ all_targets.T + self.bias).float()
        signs = same_group(groups, all_groups).float() * 2 - 1
        pairs = (valid.unsqueeze(1) & all_valid.unsqueeze(0)).float()
        return -(F.logsigmoid(signs * logits) * pairs).sum() / valid.sum().clamp(min=1)
