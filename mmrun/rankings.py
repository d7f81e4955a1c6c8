"""``rankings.csv``: each query's best targets, written by ``mmrun eval`` (and ``mmrun predict``)
for ranking tasks (recommendation: ``write_user_rankings``; retrieval below).

Retrieval: one line per (query, rank): ``direction`` (``q2t``: the task's query side searching the target
side; ``t2q``: the reverse), ``query_row`` and ``target_row`` (the rows' lines in the manifest,
or positions in the split for built-in data; a side ranked once per group shows its group's
first row), ``rank`` (1 = best), ``score`` (cosine similarity) and ``positive`` (1 when the
target is one of the query's positives). Lines are sorted by direction, query row and rank.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import torch


def ranking_lines(direction: str, ranked: dict[str, Any], row_ids: torch.Tensor) -> list[list]:
    """The lines of one direction from ``RetrievalTask.rankings[direction]``."""
    result = ranked["result"]
    queries, targets = ranked["queries"].cpu(), ranked["targets"].cpu()
    query_groups, target_groups = ranked["query_groups"].cpu(), ranked["target_groups"].cpu()
    lines = []
    for q, (indices, scores) in enumerate(zip(result.top_indices.tolist(), result.top_scores.tolist())):
        for rank, (t, score) in enumerate(zip(indices, scores), start=1):
            if t < 0:  # fewer candidates than top_k
                break
            positive = int(query_groups[q] == target_groups[t])
            lines.append([direction, int(row_ids[queries[q]]), rank, int(row_ids[targets[t]]), f"{score:.6f}",
                          positive])
    return sorted(lines, key=lambda line: (line[1], line[2]))


def write_rankings(path: Path, rankings: dict[str, dict[str, Any]], row_ids: torch.Tensor) -> None:
    """Write ``rankings.csv`` atomically (a temporary file renamed into place)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["direction", "query_row", "rank", "target_row", "score", "positive"])
        for direction, ranked in rankings.items():
            writer.writerows(ranking_lines(direction, ranked, row_ids))
    os.replace(temporary, path)


def write_user_rankings(path: Path, ranked: dict[str, Any], names: dict[str, list]) -> None:
    """Write a recommendation ``rankings.csv`` atomically: per user, the best items of the catalogue.

    Columns: ``user`` and ``item`` (the data's ids, or 0-based indices for built-in data),
    ``rank``, ``score``, ``positive`` (1 when the user interacted with the item in the scored
    split) and ``cold`` (1 for an item never seen in training). Items the user met in earlier
    splits are not ranked.
    """
    result, users, cold = ranked["result"], ranked["users"].tolist(), ranked["cold"]
    ptr, idx = (t.cpu() for t in ranked["positives"])
    user_names, item_names = names.get("user") or [], names.get("item") or []
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "rank", "item", "score", "positive", "cold"])
        for q, (indices, scores) in enumerate(zip(result.top_indices.tolist(), result.top_scores.tolist())):
            liked = set(idx[ptr[q]:ptr[q + 1]].tolist())
            user = user_names[users[q]] if user_names else users[q]
            for rank, (item, score) in enumerate(zip(indices, scores), start=1):
                if item < 0:
                    break
                writer.writerow([user, rank, item_names[item] if item_names else item, f"{score:.6f}",
                                 int(item in liked), int(cold[item])])
    os.replace(temporary, path)
