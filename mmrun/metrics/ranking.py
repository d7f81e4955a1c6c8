"""Full-split ranking metrics for cross-modal retrieval and recommendation, in bounded memory.

*Full-split* evaluation ranks every query against every target of the split, not against the
other items of a batch or a sample of negatives: image-to-text and text-to-image R@K over a whole
test set, as in CLIP's retrieval evaluation (Radford et al., "Learning Transferable Visual Models
From Natural Language Supervision", ICML 2021, arXiv:2103.00020), or a recommender scored against
the whole item catalogue. For Nq queries and Nt targets the similarity matrix has Nq x Nt entries
(40 GB in float32 for 100,000 x 100,000), so :func:`ranking_metrics` never holds it: it computes
the scores one chunk of queries at a time (one chunk's working set stays under ``memory_mb``) and
keeps from each chunk only what the metrics need: the exact rank of every positive, found by
counting comparisons instead of sorting, and, on request, each query's top-k targets.

Rank convention
---------------
For one query, the *remaining* targets are those not excluded for it (``excluded``) and inside
the candidate set (``candidates``); the others take no part in its ranking. A remaining target
``t`` with score ``s(t)`` (dot product with the query) has the rank

    rank(t) = 1 + #{remaining u : s(u) > s(t)} + #{remaining u : s(u) == s(t) and u < t}

that is, targets are ordered by descending score and **ties are broken by ascending target index**
(the row in ``targets``). Every remaining target gets a distinct rank, the metrics are
deterministic, and a tie never favours the positive: it ranks after equal-scored targets that come
first in ``targets``, whatever their relevance. ``top_indices`` follow the same order.

How other tools treat ties (torchmetrics 1.9, read from its source): the retrieval metrics order
tied scores however ``torch.argsort`` / ``torch.topk`` return them, which is unspecified and in
practice not index order; ``RetrievalNormalizedDCG`` averages the gain over each group of tied
scores (scikit-learn's ``ndcg_score`` convention). With tied scores their values can so differ from
these; without ties they agree (tests/unit/test_ranking_metrics.py checks parity to 1e-6). Note also
that torchmetrics 1.9 ``RetrievalMAP``, ``RetrievalMRR`` and ``RetrievalRecall`` count a relevant
target whose score is <= 0 as not relevant (``torch.where(preds > 0, target, 0)``), which matters
for cosine similarities; the metrics here depend on the order of the scores only.

Metrics
-------
All are means over the evaluated queries (those with at least one remaining positive); ``n`` is a
query's number of remaining positives and ``r_1 < r_2 < ... < r_n`` their ranks.

* ``hit@K``: 1 if ``r_1 <= K``. CLIP and open_clip call this "recall@K" (one relevant caption
  found is a success); torchmetrics ``RetrievalHitRate``.
* ``recall@K``: ``#{i : r_i <= K} / n``, the recommender Recall@K; torchmetrics ``RetrievalRecall``.
* ``ndcg@K``: binary relevance, ``DCG = sum over r_i <= K of 1 / log2(r_i + 1)`` divided by the
  ideal ``sum over i <= min(n, K) of 1 / log2(i + 1)`` (Järvelin & Kekäläinen, "Cumulated
  gain-based evaluation of IR techniques", ACM TOIS 20(4), 2002); torchmetrics
  ``RetrievalNormalizedDCG``.
* ``mrr``: ``1 / r_1``; torchmetrics ``RetrievalMRR``.
* ``map``: average precision over the full ranking, ``(1/n) sum_i i / r_i``; torchmetrics
  ``RetrievalMAP``.
* ``mean_rank``, ``median_rank``: of ``r_1`` (1-based), as open_clip reports them (the median of an
  even count is the mean of the two middle values; open_clip floors it).

Scores and memory
-----------------
Scores are float32 dot products on the inputs' device, one matrix product per chunk of queries.
A chunk holds a multiple of 8 queries (the last one padded with zero rows) because BLAS libraries
may round the scores of a product of a few rows differently in the last bit (MKL does below 8
rows); in our measurements with MKL every query then gets bit for bit the scores of one product
of all the queries, ``queries @ targets.T``, so chunking cannot change a rank. ``memory_mb`` bounds
the working set: the chunk's score block, its top-k buffers and the comparison masks (on CPU at
most 8 MB), though a chunk has at least one query row. Index bookkeeping adds
O(Nq + Nt + positives + exclusions).

Cost
----
The scores cost one matrix product (Nq x Nt x D). Each positive then costs two vectorised
comparison passes over its query's row (strictly greater, greater-or-equal: the second finds exact
ties, which are then resolved by index); queries are processed in order of their number of
positives so that a chunk's queries need about the same number of passes. Queries with very many
positives switch to a binary search of the row in their sorted positive scores (``log P`` per
target instead of ``P``). On CPU the passes run over blocks of rows small enough to stay in cache.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

CSR = tuple[Tensor, Tensor]

# On CPU the comparisons run over blocks of a few rows, with a mask buffer of this size, so that a
# block's rows and masks stay in the last-level cache across the comparisons with its positives.
_CPU_BLOCK_BYTES = 8 * 2**20
_SLOTS_PER_OP = 4
# Blocks whose largest query has more positives than this count by binary search instead of
# comparisons per positive (measured crossover on CPU: about 200 positives per query).
_SEARCH_MIN_POSITIVES = 192
# Chunks have a multiple of this many query rows when the memory budget allows (see the loop).
_ROW_MULTIPLE = 8
# float32 sums of 0/1 masks are exact up to 2**24 targets; wider rows sum in float64.
_EXACT_FLOAT32_COUNT = 2**24


@dataclass
class RankingResult:
    """What :func:`ranking_metrics` returns.

    ``metrics``: metric name -> mean over the evaluated queries (NaN when none was evaluated).
    ``queries``: queries evaluated; ``skipped``: queries left without any positive (no positive
    given, or all of them excluded or outside the candidates), not in the means.
    ``top_indices`` / ``top_scores`` (only when ``top_k > 0``, else None): [Nq, top_k] on CPU, the
    best targets of every query (skipped ones included) in rank order, as indices into the
    ``targets`` given and their float32 scores; past a query's number of remaining targets the
    rows are padded with -1 and NaN.
    """

    metrics: dict[str, float]
    queries: int
    skipped: int
    top_indices: Tensor | None = None
    top_scores: Tensor | None = None


def positives_from_groups(query_groups: Tensor, target_groups: Tensor) -> CSR:
    """The positives of each query: the targets with the same group id, as CSR ``(ptr, idx)``.

    ``query_groups`` [Nq] and ``target_groups`` [Nt] are integer ids (say the image id of each
    caption and of each image, or a class). Query ``i``'s positives are
    ``idx[ptr[i]:ptr[i + 1]]``, in ascending target order; ``ptr`` is [Nq + 1] and ``idx`` [nnz],
    both int64 on ``query_groups``' device. Built by sorting the target ids and binary search,
    O((Nq + Nt) log Nt + nnz): no Nq x Nt comparison.
    """
    query_groups = _ids(query_groups, "query_groups")
    target_groups = _ids(target_groups, "target_groups").to(query_groups.device)
    sorted_groups, order = torch.sort(target_groups, stable=True)  # stable: ascending index per group
    lo = torch.searchsorted(sorted_groups, query_groups, right=False)
    hi = torch.searchsorted(sorted_groups, query_groups, right=True)
    counts = hi - lo
    ptr = torch.zeros(len(query_groups) + 1, dtype=torch.int64, device=query_groups.device)
    torch.cumsum(counts, 0, out=ptr[1:])
    return ptr, order[_range_positions(lo, counts, ptr)]


def ranking_metrics(
    queries: Tensor,
    targets: Tensor,
    positives: CSR,
    *,
    excluded: CSR | None = None,
    candidates: Tensor | None = None,
    hit_ks: Iterable[int] = (1, 5, 10),
    recall_ks: Iterable[int] = (),
    ndcg_ks: Iterable[int] = (),
    top_k: int = 0,
    memory_mb: float = 256,
) -> RankingResult:
    """Rank every query against every target and return the mean ranking metrics.

    Args:
        queries: [Nq, D] query embeddings; targets: [Nt, D] target embeddings, on one device.
            Scores are the dot products ``queries @ targets.T`` in float32 on that device, so
            pass L2-normalised embeddings for cosine similarity. They must be finite.
        positives: CSR ``(ptr [Nq + 1], idx [nnz])`` of each query's relevant target indices
            (see :func:`positives_from_groups`); duplicates count once.
        excluded: CSR of target indices removed from each query's ranking (items already seen
            in training, the query itself in a same-modality search, ...): they take no rank
            and are no longer positives of that query.
        candidates: bool [Nt]: only these targets are ranked, for every query (None: all).
            Positives outside it are dropped.
        hit_ks, recall_ks, ndcg_ks: the K of ``hit@K``, ``recall@K``, ``ndcg@K``.
        top_k: also return each query's ``top_k`` best targets and their scores.
        memory_mb: bound on one chunk's working set (its score block, comparison masks and
            top-k buffers); the chunk has at least one query whatever the bound.

    Returns:
        A :class:`RankingResult`. The metrics (``hit@K``, ``recall@K``, ``ndcg@K``, ``mrr``,
        ``map``, ``mean_rank``, ``median_rank``) and the rank convention (ties broken by target
        index) are described in this module's docstring.
    """
    if queries.dim() != 2 or targets.dim() != 2 or queries.shape[1] != targets.shape[1]:
        raise ValueError(
            f"queries and targets must be [N, D] with the same D, got {tuple(queries.shape)} and {tuple(targets.shape)}"
        )
    if queries.device != targets.device:
        raise ValueError(f"queries are on {queries.device} but targets on {targets.device}")
    hit_ks, recall_ks, ndcg_ks = (_ks(ks, name) for ks, name in ((hit_ks, "hit_ks"), (recall_ks, "recall_ks"), (ndcg_ks, "ndcg_ks")))
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0, got {top_k!r}")
    if not memory_mb > 0:
        raise ValueError(f"memory_mb must be > 0, got {memory_mb!r}")
    device = queries.device
    n_queries, n_targets = queries.shape[0], targets.shape[0]

    with torch.no_grad():
        # Candidates: rank within the candidate targets only, renumbered 0..n_kept-1 in index order
        # (the renumbering keeps the order, so ties are still broken by the original index).
        kept = renumber = None
        if candidates is not None:
            if candidates.shape != (n_targets,) or candidates.dtype != torch.bool:
                raise ValueError(f"candidates must be a bool tensor of shape ({n_targets},)")
            kept = torch.nonzero(candidates.cpu()).flatten()
            renumber = torch.full((n_targets,), -1, dtype=torch.int64)
            renumber[kept] = torch.arange(len(kept))
        n_kept = n_targets if kept is None else len(kept)

        pos_q, pos_t = _pairs(positives, n_queries, n_targets, renumber, n_kept, "positives")
        excl_q, excl_t = _pairs(excluded, n_queries, n_targets, renumber, n_kept, "excluded")
        if len(excl_q) and len(pos_q):  # an excluded positive is no positive
            kept_pos = ~torch.isin(pos_q * n_kept + pos_t, excl_q * n_kept + excl_t)
            pos_q, pos_t = pos_q[kept_pos], pos_t[kept_pos]
        n_pos = torch.bincount(pos_q, minlength=n_queries)
        pos_start = torch.cumsum(n_pos, 0) - n_pos
        n_excl = torch.bincount(excl_q, minlength=n_queries)
        excl_start = torch.cumsum(n_excl, 0) - n_excl

        q_emb = queries.detach().to(torch.float32)
        t_emb = targets.detach().to(torch.float32)
        if kept is not None:
            t_emb = t_emb[kept.to(device)]
        _check_finite(q_emb, t_emb)

        ranks = torch.zeros(len(pos_q), dtype=torch.int64)
        top_indices = top_scores = None
        if top_k:
            top_indices = torch.full((n_queries, top_k), -1, dtype=torch.int64)
            top_scores = torch.full((n_queries, top_k), float("nan"), dtype=torch.float32)

        # Queries to score (all of them when top-k is asked for), fewest positives first.
        todo = torch.arange(n_queries) if top_k else torch.nonzero(n_pos).flatten()
        todo = todo[torch.argsort(n_pos[todo], stable=True)]
        if n_kept and len(todo):
            rows, block, floats = _chunk_rows(n_kept, memory_mb, device, top_k)
            # BLAS kernels can round a score's last bit differently for products of a few rows
            # (MKL: fewer than 8); chunks of a multiple of 8 rows, the last one padded with zero
            # queries, give every query the scores it gets in one product of all the queries.
            pad = _ROW_MULTIPLE if rows >= _ROW_MULTIPLE else 1
            rows -= rows % pad
            scores_buffer = torch.empty(-(-min(rows, len(todo)) // pad) * pad, n_kept, device=device)
            masks = torch.empty(floats, device=device)
            for begin in range(0, len(todo), rows):
                qids = todo[begin : begin + rows]
                chunk_queries = q_emb[qids.to(device)]
                if len(qids) % pad:
                    chunk_queries = torch.cat([chunk_queries, chunk_queries.new_zeros(pad - len(qids) % pad, chunk_queries.shape[1])])
                torch.mm(chunk_queries, t_emb.T, out=scores_buffer[: len(chunk_queries)])
                scores = scores_buffer[: len(qids)]
                if len(excl_q):
                    row, flat = _gather_ranges(excl_start[qids], n_excl[qids])
                    if len(flat):
                        scores[row.to(device), excl_t[flat].to(device)] = float("-inf")
                _rank_positives(scores, qids, n_pos, pos_start, pos_t, ranks, masks, block)
                if top_k:
                    _top_k(scores, qids, top_k, n_kept - n_excl[qids], kept, top_indices, top_scores, masks)

        metrics, evaluated = _metrics(ranks, pos_q, n_pos, pos_start, hit_ks, recall_ks, ndcg_ks)
    return RankingResult(metrics, evaluated, n_queries - evaluated, top_indices, top_scores)


def _rank_positives(
    scores: Tensor, qids: Tensor, n_pos: Tensor, pos_start: Tensor, pos_t: Tensor, ranks: Tensor, masks: Tensor, block: int
) -> None:
    """Exact ranks of the positives of one chunk's queries, written into ``ranks``.

    Slot ``k`` of row ``r`` is the k-th positive of that query (in target order). Each slot's
    threshold is the positive's own score; counting the row's scores above it (strictly, then
    with equality) gives its rank when no other target has exactly the same score, and flags the
    ties, which are then counted by index. ``masks`` is a flat float buffer for the comparisons of
    ``block`` rows with one or more slots at a time.
    """
    counts_per_row = n_pos[qids]
    slots = int(counts_per_row.max())
    if slots == 0:
        return
    n_rows, n_targets = scores.shape
    device = scores.device
    slot = torch.arange(slots)
    valid = slot < counts_per_row[:, None]
    where = torch.where(valid, pos_start[qids][:, None] + slot, 0)  # index into the positive arrays
    target = torch.where(valid, pos_t[where], 0)
    valid_d = valid.to(device)
    target_d = target.to(device)
    thresholds = scores.gather(1, target_d).masked_fill_(~valid_d, float("inf"))  # +inf: counts nothing
    # s > nextafter(t, -inf) is s >= t: one comparison op gives both counts.
    pair = torch.stack([thresholds, torch.nextafter(thresholds, thresholds.new_tensor(float("-inf")))])
    above = torch.zeros(2, n_rows, slots, dtype=torch.int64, device=device)  # (> s, >= s) per slot
    sum_dtype = torch.float32 if n_targets < _EXACT_FLOAT32_COUNT else torch.float64
    for lo in range(0, n_rows, block):
        hi = min(lo + block, n_rows)
        rows = scores[lo:hi]
        used = int(counts_per_row[lo:hi].max())  # rows come sorted by count: padding slots are few
        if used > _SEARCH_MIN_POSITIVES:
            step = max(1, len(masks) // (6 * n_targets))  # int64 temporaries: 24 bytes per score
            for a in range(lo, hi, step):
                b = min(a + step, hi)
                above[:, a:b, :used] = _count_by_search(scores[a:b], thresholds[a:b, :used])
            continue
        # Compare the rows with several slots' thresholds per op, as many as the masks hold.
        group = max(1, min(used, len(masks) // (2 * (hi - lo) * n_targets)))
        block_pair = pair[:, lo:hi, :used].permute(2, 0, 1).unsqueeze(-1).contiguous()  # [used, 2, rows, 1]
        block_counts = torch.empty(used, 2, hi - lo, dtype=sum_dtype, device=device)
        for k in range(0, used, group):
            g = min(group, used - k)
            mask = masks[: g * 2 * (hi - lo) * n_targets].view(g, 2, hi - lo, n_targets)
            torch.gt(rows, block_pair[k : k + g], out=mask)
            torch.sum(mask, -1, dtype=sum_dtype, out=block_counts[k : k + g])
        above[:, lo:hi, :used] = block_counts.permute(1, 2, 0).to(torch.int64)
    above = above.cpu()
    rank = above[0] + 1
    # >= counts the positive itself; anything more is a target with exactly the same score, which
    # ranks before the positive if it comes first in the targets.
    tied = valid & (above[1] - above[0] > 1)
    if tied.any():
        rank[tied] += _equal_before(scores, tied, target, thresholds, max(1, 4 * len(masks) // (7 * n_targets)))
    ranks[where[valid]] = rank[valid]


def _count_by_search(rows: Tensor, thresholds: Tensor) -> Tensor:
    """``[2, rows, P]`` counts of scores > and >= each threshold, by binary search of each score
    in its row's sorted thresholds: O(Nt log P) per row instead of O(Nt P) for many positives."""
    n_rows, slots = thresholds.shape
    ordered, order = torch.sort(thresholds, dim=1)
    offsets = torch.arange(n_rows, device=rows.device)[:, None] * (slots + 1)
    out = torch.empty(2, n_rows, slots, dtype=torch.int64, device=rows.device)
    for i, right in enumerate((False, True)):
        # below[j] = number of thresholds < s_j (or <= s_j); s_j > (>=) the m-th smallest threshold
        # iff below[j] > m, so the counts are suffix sums of the histogram of ``below``.
        below = torch.searchsorted(ordered, rows, right=right)
        histogram = torch.bincount((below + offsets).flatten(), minlength=n_rows * (slots + 1)).view(n_rows, slots + 1)
        suffix = histogram.flip(1).cumsum(1).flip(1)[:, 1:]  # suffix[m] = #{j : below[j] > m}
        out[i].scatter_(1, order, suffix)
    return out


def _equal_before(scores: Tensor, tied: Tensor, target: Tensor, thresholds: Tensor, block: int) -> Tensor:
    """For the tied slots: the number of targets with exactly the positive's score and a lower
    index (``block`` tied slots at a time: 7 bytes of temporaries per score)."""
    rows, slots = torch.nonzero(tied, as_tuple=True)
    device = scores.device
    columns = torch.arange(scores.shape[1], device=device)
    counts = []
    for lo in range(0, len(rows), block):
        r = rows[lo : lo + block].to(device)
        s = slots[lo : lo + block].to(device)
        equal = (scores[r] == thresholds[r, s][:, None]) & (columns < target.to(device)[r, s][:, None])
        counts.append(equal.sum(1).cpu())
    return torch.cat(counts)


def _top_k(
    scores: Tensor,
    qids: Tensor,
    top_k: int,
    remaining: Tensor,
    kept: Tensor | None,
    top_indices: Tensor,
    top_scores: Tensor,
    masks: Tensor,
) -> None:
    """Each row's ``top_k`` best targets in rank order (score descending, then index ascending)."""
    k = min(top_k, scores.shape[1])
    values, indices = torch.topk(scores, k, dim=1)
    # topk breaks ties arbitrarily: where targets tied with the k-th score were left out (more
    # targets >= that score than k), take the tied ones with the lowest indices instead.
    kth = values[:, -1:]
    at_least = torch.empty(len(scores), dtype=torch.int64, device=scores.device)
    block = max(1, len(masks) // scores.shape[1])
    for lo in range(0, len(scores), block):
        hi = min(lo + block, len(scores))
        mask = masks[: (hi - lo) * scores.shape[1]].view(hi - lo, -1)
        torch.ge(scores[lo:hi], kth[lo:hi], out=mask)
        at_least[lo:hi] = mask.sum(-1, dtype=torch.float64).to(torch.int64)
    cut = torch.nonzero((at_least > k) & torch.isfinite(kth[:, 0])).flatten().tolist()
    for r in cut:
        row = scores[r]
        better = torch.nonzero(row > kth[r]).flatten()
        equal = torch.nonzero(row == kth[r]).flatten()[: k - len(better)]
        indices[r] = torch.cat([better, equal])
        values[r] = row[indices[r]]
    order = torch.argsort(indices, dim=1)
    indices, values = indices.gather(1, order), values.gather(1, order)
    order = torch.argsort(values, dim=1, descending=True, stable=True)
    indices, values = indices.gather(1, order).cpu(), values.gather(1, order).cpu()
    if kept is not None:
        indices = kept[indices]
    past = torch.arange(k) >= remaining[:, None]  # excluded targets (scored -inf) are no results
    indices[past], values[past] = -1, float("nan")
    top_indices[qids, :k] = indices
    top_scores[qids, :k] = values


def _metrics(
    ranks: Tensor,
    pos_q: Tensor,
    n_pos: Tensor,
    pos_start: Tensor,
    hit_ks: list[int],
    recall_ks: list[int],
    ndcg_ks: list[int],
) -> tuple[dict[str, float], int]:
    """Mean metrics over the queries with positives, from the ranks of all positives (float64)."""
    evaluated = torch.nonzero(n_pos).flatten()
    names = [f"hit@{k}" for k in hit_ks] + [f"recall@{k}" for k in recall_ks] + [f"ndcg@{k}" for k in ndcg_ks]
    names += ["mrr", "map", "mean_rank", "median_rank"]
    if not len(evaluated):
        return {name: math.nan for name in names}, 0
    # Positives are grouped by query; sort each group's ranks ascending (ranks are distinct).
    ranks = ranks[torch.argsort(pos_q * (int(ranks.max()) + 1) + ranks)]
    r = ranks.to(torch.float64)
    n = n_pos[evaluated].to(torch.float64)
    first = ranks[pos_start[evaluated]].to(torch.float64)  # best-ranked positive per query
    group = torch.repeat_interleave(torch.arange(len(evaluated)), n_pos[evaluated])  # query of each positive

    def per_query(values: Tensor) -> Tensor:  # sum over each query's positives
        return torch.zeros(len(evaluated), dtype=torch.float64).index_add_(0, group, values)

    metrics: dict[str, float] = {}
    for k in hit_ks:
        metrics[f"hit@{k}"] = (first <= k).to(torch.float64).mean().item()
    for k in recall_ks:
        metrics[f"recall@{k}"] = (per_query((r <= k).to(torch.float64)) / n).mean().item()
    for k in ndcg_ks:
        dcg = per_query(torch.where(r <= k, 1.0 / torch.log2(r + 1.0), 0.0))
        ideal = torch.cumsum(1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64)), 0)
        metrics[f"ndcg@{k}"] = (dcg / ideal[n.clamp(max=k).to(torch.int64) - 1]).mean().item()
    metrics["mrr"] = (1.0 / first).mean().item()
    position = torch.arange(1, len(ranks) + 1, dtype=torch.float64) - pos_start[pos_q].to(torch.float64)
    metrics["map"] = (per_query(position / r) / n).mean().item()
    metrics["mean_rank"] = first.mean().item()
    ordered = torch.sort(first).values
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    metrics["median_rank"] = median.item()
    return metrics, len(evaluated)


def _chunk_rows(n_targets: int, memory_mb: float, device: torch.device, top_k: int) -> tuple[int, int, int]:
    """Rows per chunk, rows per comparison block and the comparison buffer's size (floats).

    A chunk holds its float32 score block (4 bytes per entry) and top-k buffers. The comparison
    buffer holds the two 0/1 masks (> and >=) of a block's rows for one or more positives. On CPU
    a block is a few rows, small enough that its scores and masks stay in cache across the
    comparisons with all its positives (about ``_SLOTS_PER_OP`` positives per op), and a chunk as
    large as the budget allows (one large matrix product is faster); elsewhere a block is the
    whole chunk, one positive per op.
    """
    budget = memory_mb * 2**20
    per_row = 4 * n_targets + 24 * min(top_k, n_targets)
    if device.type == "cpu":
        floats = max(2 * n_targets, min(_CPU_BLOCK_BYTES, int(budget) // 2) // 4)
        block = max(1, floats // (2 * n_targets * _SLOTS_PER_OP))
        rows = max(block, int((budget - 4 * floats) // per_row))
    else:
        rows = block = max(1, int(budget // (per_row + 8 * n_targets)))
        floats = 2 * rows * n_targets
    return rows, block, floats


def _pairs(
    csr: CSR | None, n_rows: int, n_cols: int, renumber: Tensor | None, n_kept: int, name: str
) -> tuple[Tensor, Tensor]:
    """(row, column) pairs of a CSR on CPU, sorted by row then column, unique, columns renumbered
    to the ``n_kept`` candidates (pairs outside them dropped)."""
    empty = torch.zeros(0, dtype=torch.int64)
    if csr is None:
        return empty, empty
    if not isinstance(csr, (tuple, list)) or len(csr) != 2:
        raise ValueError(f"{name} must be a CSR pair (ptr, idx)")
    ptr, idx = (torch.as_tensor(x).cpu() for x in csr)
    if ptr.dtype.is_floating_point or idx.dtype.is_floating_point or ptr.dtype == torch.bool or idx.dtype == torch.bool:
        raise ValueError(f"{name} ptr and idx must be integer tensors")
    ptr, idx = ptr.to(torch.int64).flatten(), idx.to(torch.int64).flatten()
    if len(ptr) != n_rows + 1 or ptr[0] != 0 or ptr[-1] != len(idx) or bool((ptr[1:] < ptr[:-1]).any()):
        raise ValueError(f"{name} ptr must have {n_rows + 1} non-decreasing entries from 0 to len(idx)")
    if len(idx) and (idx.min() < 0 or idx.max() >= n_cols):
        raise ValueError(f"{name} idx must be target indices in [0, {n_cols})")
    rows = torch.repeat_interleave(torch.arange(n_rows), ptr[1:] - ptr[:-1])
    if renumber is not None:
        idx = renumber[idx]
        rows, idx = rows[idx >= 0], idx[idx >= 0]
    width = max(n_kept, 1)
    key = torch.unique(rows * width + idx)  # sorted
    return key // width, key % width


def _gather_ranges(starts: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
    """For ranges ``[starts[i], starts[i] + counts[i])``: (i, position) of every element."""
    ptr = torch.zeros(len(counts) + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=ptr[1:])
    return torch.repeat_interleave(torch.arange(len(counts)), counts), _range_positions(starts, counts, ptr)


def _range_positions(starts: Tensor, counts: Tensor, ptr: Tensor) -> Tensor:
    """The positions ``starts[i] + 0 .. counts[i] - 1`` of all ranges, concatenated."""
    total = int(ptr[-1])
    within = torch.arange(total, device=starts.device) - torch.repeat_interleave(ptr[:-1], counts, output_size=total)
    return torch.repeat_interleave(starts, counts, output_size=total) + within


def _ids(groups: Tensor, name: str) -> Tensor:
    groups = torch.as_tensor(groups)
    if groups.dim() != 1 or groups.dtype.is_floating_point or groups.dtype.is_complex or groups.dtype == torch.bool:
        raise ValueError(f"{name} must be a 1-D tensor of integer group ids")
    return groups.to(torch.int64)


def _ks(ks: Iterable[int], name: str) -> list[int]:
    ks = list(ks)
    if any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in ks):
        raise ValueError(f"{name} must be positive integers, got {ks}")
    return ks


def _check_finite(queries: Tensor, targets: Tensor) -> None:
    """The scores are finite if the embeddings are and no dot product can overflow float32
    (Cauchy-Schwarz on the largest norms): excluded targets are marked with -inf scores."""
    for name, emb in (("queries", queries), ("targets", targets)):
        if len(emb) and not bool(torch.isfinite(emb).all()):
            raise ValueError(f"{name} contain NaN or infinite values")
    if len(queries) and len(targets):
        bound = queries.double().norm(dim=1).max() * targets.double().norm(dim=1).max()
        if bound >= torch.finfo(torch.float32).max:
            raise ValueError("embedding norms are so large that scores may overflow float32")
