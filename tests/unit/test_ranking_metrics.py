"""Full-split ranking metrics (mmrun.metrics.ranking): parity with torchmetrics, ties, chunking."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.retrieval import (
    RetrievalHitRate,
    RetrievalMAP,
    RetrievalMRR,
    RetrievalNormalizedDCG,
    RetrievalRecall,
)

from mmrun.metrics import ranking
from mmrun.metrics.ranking import positives_from_groups, ranking_metrics

KS = (1, 5, 10)
ALL_KS = {"hit_ks": KS, "recall_ks": KS, "ndcg_ks": KS}


def csr(lists: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    ptr = torch.tensor([0] + [len(x) for x in lists]).cumsum(0)
    return ptr, torch.tensor([i for x in lists for i in x], dtype=torch.int64)


def dense(pairs: tuple[torch.Tensor, torch.Tensor], n_rows: int, n_cols: int) -> torch.Tensor:
    ptr, idx = pairs
    out = torch.zeros(n_rows, n_cols, dtype=torch.bool)
    out[torch.repeat_interleave(torch.arange(n_rows), ptr.diff()), idx] = True
    return out


def normalised(n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(n, dim, generator=generator), dim=1)


def index_order_preds(scores: torch.Tensor) -> torch.Tensor:
    """Scores replaced by Nt .. 1 in the documented order (score descending, ties by ascending
    index): no ties left, all > 0 (torchmetrics 1.9 MAP/MRR/Recall ignore positives scored <= 0)."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices  # stable: index order in ties
    n = scores.shape[1]
    return torch.empty_like(scores).scatter_(1, order, torch.arange(n, 0, -1, dtype=torch.float32).expand_as(scores))


def torchmetrics_reference(preds: torch.Tensor, relevant: torch.Tensor, keep: torch.Tensor, ks=KS) -> dict[str, float]:
    """torchmetrics' retrieval metrics with ``indexes`` on the kept entries of the full matrices,
    queries without a kept positive skipped; mean/median rank of the best positive by brute force."""
    relevant = relevant & keep
    rows = torch.arange(len(preds))[:, None].expand_as(preds)
    p, t, i = preds[keep], relevant[keep], rows[keep]
    out = {}
    for name, cls in (("hit", RetrievalHitRate), ("recall", RetrievalRecall), ("ndcg", RetrievalNormalizedDCG)):
        for k in ks:
            out[f"{name}@{k}"] = cls(top_k=k, empty_target_action="skip")(p, t, indexes=i).item()
    out["mrr"] = RetrievalMRR(empty_target_action="skip")(p, t, indexes=i).item()
    out["map"] = RetrievalMAP(empty_target_action="skip")(p, t, indexes=i).item()
    best = []
    for r in torch.nonzero(relevant.any(1)).flatten():
        ranks = [int(((preds[r] > preds[r, j]) & keep[r]).sum()) + 1 for j in torch.nonzero(relevant[r]).flatten()]
        best.append(min(ranks))
    best = torch.tensor(best, dtype=torch.float64)
    out["mean_rank"] = best.mean().item()
    out["median_rank"] = best.quantile(0.5).item()  # midpoint of the two middle values for an even count
    return out


def assert_metrics_close(got: dict[str, float], expected: dict[str, float], tol: float = 1e-6) -> None:
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=tol), key


def random_case(seed: int, n_q: int = 70, n_t: int = 90, dim: int = 8):
    g = torch.Generator().manual_seed(seed)
    queries, targets = normalised(n_q, dim, g), normalised(n_t, dim, g)
    lists = [torch.randint(0, n_t, (int(torch.randint(0, 14, (1,), generator=g)),), generator=g).tolist() for _ in range(n_q)]
    lists[3] = lists[3] + lists[3][:2]  # duplicate positives count once
    return g, queries, targets, csr(lists)


# -- parity with torchmetrics ---------------------------------------------------------------


def test_parity_with_torchmetrics_for_group_positives():
    g = torch.Generator().manual_seed(0)
    queries, targets = normalised(60, 8, g), normalised(80, 8, g)
    query_groups = torch.randint(0, 24, (60,), generator=g)  # some groups have no target: skipped queries
    target_groups = torch.randint(0, 20, (80,), generator=g)  # about 4 positives per query
    positives = positives_from_groups(query_groups, target_groups)
    result = ranking_metrics(queries, targets, positives, **ALL_KS)

    relevant = query_groups[:, None] == target_groups[None, :]
    expected = torchmetrics_reference(index_order_preds(queries @ targets.T), relevant, torch.ones_like(relevant))
    assert_metrics_close(result.metrics, expected)
    assert result.queries == int(relevant.any(1).sum()) and result.queries + result.skipped == 60
    assert 0 < result.skipped < 60 and int(relevant.sum(1).max()) > 3


def test_parity_with_torchmetrics_for_random_positives_exclusions_and_candidates():
    g, queries, targets, positives = random_case(1)
    n_q, n_t = len(queries), len(targets)
    excluded_lists = [torch.randint(0, n_t, (int(torch.randint(0, 20, (1,), generator=g)),), generator=g).tolist() for _ in range(n_q)]
    pos_dense = dense(positives, n_q, n_t)
    assert pos_dense[0].any() and pos_dense[2].sum() > 1 and not pos_dense[1].any()  # query 1: none given
    excluded_lists[0] = torch.nonzero(pos_dense[0]).flatten().tolist()  # every positive excluded: skipped
    excluded_lists[2] = torch.nonzero(pos_dense[2]).flatten().tolist()[:1]  # one positive excluded
    excluded = csr(excluded_lists)
    candidates = torch.rand(n_t, generator=g) < 0.7
    result = ranking_metrics(queries, targets, positives, excluded=excluded, candidates=candidates, **ALL_KS)

    keep = candidates[None, :] & ~dense(excluded, n_q, n_t)
    expected = torchmetrics_reference(index_order_preds(queries @ targets.T), pos_dense, keep)
    assert_metrics_close(result.metrics, expected)
    assert result.queries == int((pos_dense & keep).any(1).sum())
    # the exclusions and the candidate mask change the values: the test would see them ignored
    assert result.metrics != ranking_metrics(queries, targets, positives, **ALL_KS).metrics
    assert result.metrics != ranking_metrics(queries, targets, positives, excluded=excluded, **ALL_KS).metrics


def test_tiny_memory_budget_gives_the_same_values_in_many_chunks(monkeypatch):
    _g, queries, targets, positives = random_case(2)
    excluded = csr([[j for j in range(i % 5)] for i in range(len(queries))])
    kwargs = dict(excluded=excluded, top_k=7, **ALL_KS)
    whole = ranking_metrics(queries, targets, positives, **kwargs)
    calls = []
    real_mm = torch.mm
    monkeypatch.setattr(torch, "mm", lambda *a, **k: calls.append(len(a[0])) or real_mm(*a, **k))

    eight_rows = 2 * 8 * (4 * len(targets) + 24 * 7) / 2**20  # 8 rows of scores and top-k, as much for masks
    assert ranking._chunk_rows(len(targets), eight_rows, torch.device("cpu"), 7)[0] == 8
    chunked = ranking_metrics(queries, targets, positives, memory_mb=eight_rows, **kwargs)
    assert calls == [8] * 9  # 70 queries: 9 chunks, the last padded to 8 rows
    assert chunked.metrics == whole.metrics
    assert torch.equal(chunked.top_indices, whole.top_indices)
    assert torch.equal(chunked.top_scores, whole.top_scores)  # same scores, bit for bit

    calls.clear()
    assert ranking._chunk_rows(len(targets), 1e-4, torch.device("cpu"), 7)[:2] == (1, 1)
    single = ranking_metrics(queries, targets, positives, memory_mb=1e-4, **kwargs)
    assert calls == [1] * 70
    # one-row products may round a score's last bit differently (BLAS), nothing more
    assert_metrics_close(single.metrics, whole.metrics)
    assert torch.equal(single.top_indices, whole.top_indices)
    assert torch.allclose(single.top_scores, whole.top_scores, rtol=0, atol=1e-6)


def test_accelerator_sizing_gives_the_same_values(monkeypatch):
    """Off CPU a comparison block is the whole chunk, one positive per op; run that layout here."""
    _g, queries, targets, positives = random_case(6)
    kwargs = dict(excluded=csr([[1, 2]] * len(queries)), top_k=5, **ALL_KS)
    cpu = ranking_metrics(queries, targets, positives, **kwargs)
    real = ranking._chunk_rows
    rows, block, floats = real(len(targets), 0.05, torch.device("cuda"), 5)
    assert rows == block > 8 and floats == 2 * rows * len(targets)
    monkeypatch.setattr(ranking, "_chunk_rows", lambda n, mb, device, k: real(n, mb, torch.device("cuda"), k))
    accelerator_layout = ranking_metrics(queries, targets, positives, memory_mb=0.05, **kwargs)
    assert accelerator_layout.metrics == cpu.metrics
    assert torch.equal(accelerator_layout.top_indices, cpu.top_indices)


def test_many_positives_take_the_binary_search_path_with_the_same_values(monkeypatch):
    _g, queries, targets, positives = random_case(3)
    ptr, idx = positives
    ties = torch.cat([targets, targets[:10]])  # exact duplicates: ties resolved on this path too
    n_t = len(ties)
    positives = csr([sorted(set(idx[ptr[i] : ptr[i + 1]].tolist()) | ({i % 10 + 90} if i % 2 else set())) for i in range(len(queries))])
    excluded = csr([[5, 6] for _ in range(len(queries))])
    per_pass = ranking_metrics(queries, ties, positives, excluded=excluded, **ALL_KS)
    calls = []
    real_search = ranking._count_by_search
    monkeypatch.setattr(ranking, "_SEARCH_MIN_POSITIVES", 2)
    monkeypatch.setattr(ranking, "_count_by_search", lambda *a: calls.append(1) or real_search(*a))
    searched = ranking_metrics(queries, ties, positives, excluded=excluded, **ALL_KS)
    assert calls
    keep = ~dense(excluded, len(queries), n_t)
    expected = torchmetrics_reference(index_order_preds(queries @ ties.T), dense(positives, len(queries), n_t), keep)
    assert_metrics_close(searched.metrics, expected)
    assert searched.metrics == per_pass.metrics


# -- ties ------------------------------------------------------------------------------------


def test_ties_are_broken_by_target_index():
    # One query, scores [2, 1, 2, 2]: targets 0, 2, 3 tie for the first place.
    queries = torch.tensor([[1.0, 0.0]])
    targets = torch.tensor([[2.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.0, 0.0]])
    result = ranking_metrics(queries, targets, csr([[3]]), hit_ks=(1, 2, 3), top_k=4)
    assert result.metrics["mean_rank"] == 3  # behind targets 0 and 2, equal score, lower index
    assert result.metrics["mrr"] == pytest.approx(1 / 3)
    assert [result.metrics[f"hit@{k}"] for k in (1, 2, 3)] == [0, 0, 1]
    assert result.top_indices.tolist() == [[0, 2, 3, 1]]
    assert result.top_scores.tolist() == [[2.0, 2.0, 2.0, 1.0]]
    # the tie rule does not favour positives: target 2 ranks second, as in the top-k
    assert ranking_metrics(queries, targets, csr([[2]])).metrics["mean_rank"] == 2
    # an excluded tied target takes no rank
    assert ranking_metrics(queries, targets, csr([[3]]), excluded=csr([[0]])).metrics["mean_rank"] == 2


def test_torchmetrics_does_not_order_ties_by_index():
    """Why the tie parity test ranks the reference by index order: torchmetrics does not.

    Its NDCG averages the gain over tied scores (by design, as scikit-learn); its MRR, MAP, hit
    rate and recall take the order of ``torch.topk`` / ``torch.argsort``, unspecified for ties
    (torch 2.13 on CPU puts another of 50 tied targets first). Here all 50 targets tie and the
    positive is target 0: first by the documented rule.
    """
    preds = torch.ones(50)
    target = torch.zeros(50, dtype=torch.bool)
    target[0] = True
    indexes = torch.zeros(50, dtype=torch.long)
    assert RetrievalNormalizedDCG(top_k=1)(preds, target, indexes=indexes).item() == pytest.approx(1 / 50)
    result = ranking_metrics(torch.ones(1, 1), torch.ones(50, 1), csr([[0]]), ndcg_ks=(1,))
    assert result.metrics["mrr"] == 1 and result.metrics["ndcg@1"] == 1


def test_parity_with_many_exactly_equal_scores():
    g = torch.Generator().manual_seed(4)
    queries = torch.randint(-2, 3, (50, 3), generator=g).float()  # integer embeddings: scores tie a lot
    targets = torch.randint(-2, 3, (60, 3), generator=g).float()
    target_groups = torch.randint(0, 12, (60,), generator=g)
    query_groups = torch.randint(0, 12, (50,), generator=g)
    positives = positives_from_groups(query_groups, target_groups)
    excluded = csr([[i % 60, (7 * i) % 60] for i in range(50)])
    candidates = torch.arange(60) % 9 != 4
    scores = queries @ targets.T
    assert (scores[:, :, None] == scores[:, None, :]).sum() > 5 * scores.numel()  # each score shared by 4+ others on average

    result = ranking_metrics(queries, targets, positives, excluded=excluded, candidates=candidates, top_k=12, memory_mb=1e-3, **ALL_KS)
    relevant = query_groups[:, None] == target_groups[None, :]
    keep = candidates[None, :] & ~dense(excluded, 50, 60)
    preds = index_order_preds(scores)
    assert_metrics_close(result.metrics, torchmetrics_reference(preds, relevant, keep))
    # top-k in the same order: remaining targets by (score desc, index asc)
    for q in range(50):
        order = [int(j) for j in torch.argsort(preds[q], descending=True) if keep[q, j]]
        assert result.top_indices[q].tolist() == order[:12]
        assert torch.equal(result.top_scores[q], scores[q, order[:12]])
    # the ties matter: torchmetrics on the raw scores (shifted > 0, ties kept) gives other values
    raw = torchmetrics_reference(scores + 100, relevant, keep)
    assert any(abs(raw[k] - result.metrics[k]) > 1e-3 for k in ("ndcg@10", "mrr", "map"))


# -- hand-computed example ---------------------------------------------------------------


def hand_example():
    # queries are unit vectors e0, e1, e2, so scores[i, j] = targets[j, i]
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.4, 0.6], [0.7, 0.6, 0.1, 0.0]])
    queries = torch.eye(3)
    targets = scores.T.contiguous()
    positives = csr([[2, 3], [0], [1]])
    excluded = csr([[], [3], [1]])
    return queries, targets, positives, excluded


def test_hand_computed_example():
    queries, targets, positives, excluded = hand_example()
    result = ranking_metrics(
        queries, targets, positives, excluded=excluded, hit_ks=(1, 2, 3), recall_ks=(2, 3), ndcg_ks=(2, 3), top_k=4
    )
    # query 0: order 0, 2, 3, 1: positives 2, 3 at ranks 2, 3
    # query 1: target 3 excluded, order 1, 2, 0: positive 0 at rank 3
    # query 2: its only positive is excluded: skipped
    assert (result.queries, result.skipped) == (2, 1)
    l3 = 1 / math.log2(3)
    expected = {
        "hit@1": 0.0,
        "hit@2": 0.5,
        "hit@3": 1.0,
        "recall@2": (1 / 2 + 0) / 2,
        "recall@3": (1 + 1) / 2,
        "ndcg@2": (l3 / (1 + l3) + 0) / 2,
        "ndcg@3": ((l3 + 1 / 2) / (1 + l3) + (1 / 2) / 1) / 2,
        "mrr": (1 / 2 + 1 / 3) / 2,
        "map": ((1 / 2 + 2 / 3) / 2 + 1 / 3) / 2,
        "mean_rank": 2.5,
        "median_rank": 2.5,
    }
    assert list(result.metrics) == list(expected)
    assert_metrics_close(result.metrics, expected, tol=1e-12)
    assert result.top_indices.tolist() == [[0, 2, 3, 1], [1, 2, 0, -1], [0, 2, 3, -1]]
    top = result.top_scores
    assert top.dtype == torch.float32 and torch.isnan(top[1:, 3]).all()
    assert torch.allclose(top[:, :3], torch.tensor([[0.9, 0.5, 0.3], [0.8, 0.4, 0.2], [0.7, 0.1, 0.0]]))


def test_hand_example_with_candidates_and_odd_median():
    queries, targets, positives, excluded = hand_example()
    # target 0 is no candidate: query 1 loses its positive; query 0 ranks 2, 3, 1 -> positives at 1, 2
    candidates = torch.tensor([False, True, True, True])
    result = ranking_metrics(queries, targets, positives, excluded=excluded, candidates=candidates, hit_ks=(1,), top_k=2)
    assert (result.queries, result.skipped) == (1, 2)
    assert result.metrics == {"hit@1": 1.0, "mrr": 1.0, "map": 1.0, "mean_rank": 1.0, "median_rank": 1.0}
    assert result.top_indices.tolist() == [[2, 3], [1, 2], [2, 3]]  # original target indices

    # three evaluated queries with best ranks 2, 1, 4: median 2 (odd count), mean 7/3
    result = ranking_metrics(queries, targets, csr([[2], [1], [3]]), hit_ks=())
    assert result.metrics["median_rank"] == 2 and result.metrics["mean_rank"] == pytest.approx(7 / 3)


def test_no_evaluated_query_gives_nan_metrics():
    queries, targets, _, _ = hand_example()
    result = ranking_metrics(queries, targets, csr([[], [], []]), top_k=1)
    assert (result.queries, result.skipped) == (0, 3)
    assert all(math.isnan(v) for v in result.metrics.values())
    assert result.top_indices[:, 0].tolist() == [0, 1, 0]


# -- positives_from_groups and validation -------------------------------------------------


def test_positives_from_groups():
    ptr, idx = positives_from_groups(torch.tensor([1, 2, 3, 1]), torch.tensor([2, 1, 1, 5, 2]))
    assert ptr.tolist() == [0, 2, 4, 4, 6]
    assert idx.tolist() == [1, 2, 0, 4, 1, 2]
    assert ptr.dtype == idx.dtype == torch.int64


def test_positives_from_groups_matches_the_dense_definition():
    g = torch.Generator().manual_seed(5)
    query_groups, target_groups = torch.randint(0, 30, (200,), generator=g), torch.randint(0, 30, (300,), generator=g)
    positives = positives_from_groups(query_groups, target_groups)
    assert torch.equal(dense(positives, 200, 300), query_groups[:, None] == target_groups[None, :])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"positives": (torch.tensor([0, 1, 1]), torch.tensor([0]))}, "ptr must have 4"),
        ({"positives": (torch.tensor([0, 1, 1, 1]), torch.tensor([4]))}, r"target indices in \[0, 4\)"),
        ({"excluded": (torch.tensor([0, 2, 1, 2]), torch.tensor([0, 1]))}, "non-decreasing"),
        ({"candidates": torch.ones(3, dtype=torch.bool)}, "candidates must be"),
        ({"hit_ks": (0,)}, "hit_ks must be positive"),
        ({"top_k": -1}, "top_k"),
        ({"queries": torch.ones(3, 2)}, "same D"),
        ({"queries": torch.full((3, 3), float("nan"))}, "NaN"),
    ],
)
def test_invalid_inputs_are_refused(change, message):
    queries, targets, positives, _ = hand_example()
    kwargs = {"queries": queries, "targets": targets, "positives": positives}
    kwargs.update(change)
    with pytest.raises(ValueError, match=message):
        ranking_metrics(**kwargs)
