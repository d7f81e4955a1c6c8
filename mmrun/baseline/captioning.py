"""The classical baseline of a captioning run: captions that need no model of language.

Two candidates, selected on validation CIDEr-D and scored on test with the run's own metrics:

* ``most frequent caption``: every item gets the training split's most frequent caption (as
  normalised words);
* ``nearest neighbour``: every item gets a caption of the training item nearest to it by cosine
  similarity of the classical baseline's standardised features of the condition modalities
  (``mmrun.baseline.features``: pooled pixels, log-mel and waveform band statistics, ...), the
  caption-retrieval baseline of Devlin et al., "Exploring Nearest Neighbor Approaches for
  Image Captioning", arXiv:1505.04467 (here the neighbour's first caption, without consensus
  re-ranking).

A captioning model that does not beat them has learnt little beyond the caption distribution.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Any

import numpy as np
import torch

from mmrun.baseline.features import SPLITS, build_blocks, dense_view
from mmrun.baseline.models import better

MAX_TRAIN_ITEMS = 20000  # nearest neighbours are searched among at most this many training items


def caption_baseline(splits: dict[str, dict[str, torch.Tensor]], spec, task, seed: int, monitor: str,
                     monitor_mode: str) -> dict[str, Any]:
    """Both candidates on the run's splits (``task``: the ``CaptioningTask``), selected on validation
    by the run's ``monitor``, in the classical baseline's result format (``mmrun.baseline.run``;
    ``train_rows`` counts training items, the rows a caption is taken from)."""
    from mmrun.metrics.captioning import caption_scores, normalise
    from mmrun.tasks.captioning import caption_items

    started = time.perf_counter()
    items = {s: caption_items(splits[s]["label"].long().cpu(), splits[s][task.target].cpu(), task.text)
             for s in SPLITS}
    train_captions = items["train"]["references"]
    counts = Counter(normalise(caption) for refs in train_captions for caption in refs)
    if not counts:
        return {"error": "the training split has no caption"}
    frequent = counts.most_common(1)[0][0]
    neighbours, searched = nearest_training_items(splits, spec, task, items, seed)
    candidates = {
        "most frequent caption": {s: [frequent] * len(items[s]["first"]) for s in ("val", "test")},
        "nearest neighbour": {s: [train_captions[i][0] if train_captions[i] else frequent for i in neighbours[s]]
                              for s in ("val", "test")},
    }
    results: dict[str, dict[str, Any]] = {}
    for name, captions in candidates.items():
        results[name] = {}
        for split in ("val", "test"):
            scored = [i for i, refs in enumerate(items[split]["references"]) if refs]
            scores = caption_scores([captions[split][i] for i in scored],
                                    [items[split]["references"][i] for i in scored], task.metrics) if scored else {}
            results[name][split] = {f"{split}/{metric}": float(value) for metric, value in scores.items()}
    best = "most frequent caption"
    if better(results["nearest neighbour"]["val"].get(monitor), results[best]["val"].get(monitor), monitor_mode):
        best = "nearest neighbour"
    total = len(items["train"]["first"])
    return {"best": best, "monitor": monitor, "monitor_mode": monitor_mode, "val": results[best]["val"],
            "test": results[best]["test"], "candidates": results, "train_rows": searched, "train_rows_total": total,
            "subsampled": searched < total, "time_s": round(time.perf_counter() - started, 3)}


def nearest_training_items(splits, spec, task, items, seed: int) -> tuple[dict[str, np.ndarray], int]:
    """For each val and test item, the index of the nearest training item (cosine similarity of the
    condition modalities' standardised features, one row per item), and how many training items
    were searched (at most ``MAX_TRAIN_ITEMS``, drawn at random)."""
    rng = np.random.default_rng(seed)
    train_first = items["train"]["first"].numpy()
    kept = np.arange(len(train_first))
    if len(kept) > MAX_TRAIN_ITEMS:
        kept = np.sort(rng.choice(len(kept), MAX_TRAIN_ITEMS, replace=False))
    condition = dataclasses.replace(spec, modalities=tuple(m for m in spec.modalities if m.name in task.condition))
    columns = torch.tensor([spec.modality_names.index(m.name) for m in condition.modalities])
    rows = {s: items[s]["first"] if s != "train" else items[s]["first"][torch.as_tensor(kept)] for s in SPLITS}
    views = {s: {**{m.name: splits[s][m.name][rows[s]] for m in condition.modalities},
                 "present": splits[s]["present"][rows[s]][:, columns]} for s in SPLITS}
    features = dense_view(build_blocks(views, condition), seed)

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    train = unit(features["train"])
    return {s: kept[np.argmax(unit(features[s]) @ train.T, axis=1)] for s in ("val", "test")}, len(kept)
