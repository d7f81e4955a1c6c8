"""``captions.csv``: one line per captioned item, written by ``mmrun eval`` (and ``mmrun predict``).

Columns: ``row`` (the item's first row: its line in the manifest, or its position in the split for
built-in data), ``generated`` (the caption the model wrote, as words of the caption vocabulary),
``references`` (the item's captions in the data as the tokenizer read them: lowercased words of
the vocabulary, unknown words left out, cut at ``dataset.text.max_length``; joined by `` | ``;
empty when the data has none) and ``cider`` (the item's CIDEr-D against them; empty without
references). Lines are sorted by ``row``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import torch

SEPARATOR = " | "


def write_captions(path: Path, outputs: dict[str, Any], row_ids: torch.Tensor) -> None:
    """Write ``captions.csv`` atomically (a temporary file renamed into place) from
    ``CaptioningTask.outputs`` (``rows``: positions in the scored split)."""
    lines = [[int(row_ids[row]), candidate, SEPARATOR.join(references), "" if cider is None else f"{cider:.6f}"]
             for row, candidate, references, cider in zip(outputs["rows"].tolist(), outputs["candidates"],
                                                          outputs["references"], outputs["cider"], strict=True)]
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "generated", "references", "cider"])
        writer.writerows(sorted(lines, key=lambda line: line[0]))
    os.replace(temporary, path)
