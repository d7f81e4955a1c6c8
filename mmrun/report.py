"""Run summaries: the final metrics table and ``metrics.json``."""

from __future__ import annotations

import json
import math
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

METRICS_SCHEMA_VERSION = 1
_PACKAGES = ("mmrun", "torch", "pytorch-lightning", "torchmetrics", "hydra-core", "omegaconf")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(directory: str | Path) -> str | None:
    """The commit checked out in ``directory``, or None outside a git work tree."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write strict JSON atomically: a reader never sees half a file, nor a bare NaN.

    NaN and infinite numbers (not JSON) are written as null, and a ``notes`` list names them.
    """
    notes: list[str] = []
    clean = _finite(data, "", notes)
    if notes:
        clean["notes"] = [*clean.get("notes", []), *notes]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(clean, indent=2, sort_keys=False, allow_nan=False) + "\n")
    tmp.replace(path)


def _finite(value: Any, key: str, notes: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v, f"{key}.{k}" if key else str(k), notes) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, f"{key}[{i}]", notes) for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        notes.append(f"{key} was {value}, written as null")
        return None
    return value


def metrics_table(title: str, sections: dict[str, dict[str, float]]) -> Table:
    """A rich table with one row per metric and one column per section (e.g. best val, test)."""
    table = Table(title=title)
    table.add_column("metric")
    for name in sections:
        table.add_column(name, justify="right")
    names = sorted({key.split("/", 1)[-1] for values in sections.values() for key in values})
    for metric in names:
        row = []
        for values in sections.values():
            match = [v for k, v in values.items() if k.split("/", 1)[-1] == metric]
            row.append(f"{match[0]:.4f}" if match and match[0] is not None else "")
        table.add_row(metric, *row)
    return table


def print_table(table: Table) -> None:
    Console().print(table)
