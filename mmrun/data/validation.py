"""Bad rows: collect every problem first, then stop with one message or skip the rows.

Every row is checked before training starts. A problem is ``(row, column, reason)``; the
report names up to 20 bad rows as ``manifest.csv:LINE column: reason`` plus the total count.
With ``dataset.on_error=raise`` (default) the run stops with a ``DataError`` (exit code 2,
nothing written to the run folder is lost); with ``on_error=skip`` the bad rows are dropped,
the log says how many, and they are written to ``skipped_rows.csv`` in the run folder with
their line number, the problems and the original cells, ready to be fixed.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import defaultdict
from pathlib import Path

from mmrun.data.table import Table
from mmrun.errors import ConfigError, DataError

log = logging.getLogger("mmrun")
ON_ERROR = ("raise", "skip")
LISTED_ROWS = 20
SKIPPED_FILE = "skipped_rows.csv"


class Problems:
    """Problems found in the rows of one table, in row order."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.by_row: dict[int, list[tuple[str, str]]] = defaultdict(list)

    def add(self, row: int, column: str, reason: str) -> None:
        self.by_row[row].append((column, reason))

    def add_all(self, column: str, problems: dict[int, str]) -> None:
        for row, reason in problems.items():
            self.add(row, column, reason)

    @property
    def rows(self) -> set[int]:
        return set(self.by_row)

    def skipped(self) -> dict:
        """The bad rows as plain data: their line, problems and original cells, ready to be fixed."""
        table = self.table
        rows = []
        for row in sorted(self.by_row):
            reasons = "; ".join(f"{column}: {reason}" for column, reason in self.by_row[row])
            cells = ["" if table.rows[row][c] is None else str(table.rows[row][c]) for c in table.columns]
            rows.append([table.lines[row], reasons, *cells])
        return {"table": table.name, "total": len(table.rows), "header": ["line", "problems", *table.columns],
                "rows": rows}

    def message(self) -> str:
        """One line: the first ``LISTED_ROWS`` bad rows with their problems and the total."""
        table = self.table
        rows = sorted(self.by_row)
        listed = "; ".join(
            f"{table.where(row, column)}: {reason}" for row in rows[:LISTED_ROWS] for column, reason in self.by_row[row]
        )
        more = f"; ... and {len(rows) - LISTED_ROWS} more bad rows" if len(rows) > LISTED_ROWS else ""
        return (
            f"{table.name} has {len(rows)} bad row{'s' if len(rows) != 1 else ''} of {len(table.rows)}: {listed}{more}. "
            f"Fix or remove them, or set dataset.on_error=skip to use the other rows"
        )


def run_folder() -> Path | None:
    """The current Hydra run folder, or None outside a Hydra run."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else None


def write_skipped(skipped: dict, folder: Path, name: str = SKIPPED_FILE) -> Path:
    """Write a skip report (``Problems.skipped``) to ``folder/name`` atomically."""
    target = folder / name
    temporary = folder / f".{name}.{os.getpid()}.tmp"
    folder.mkdir(parents=True, exist_ok=True)
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(skipped["header"])
        writer.writerows(skipped["rows"])
    os.replace(temporary, target)
    return target


def report_skipped(skipped: dict, name: str = SKIPPED_FILE) -> None:
    """Log how many rows a run skips and list them in the run folder's ``name`` (``skipped_rows.csv``)."""
    folder = run_folder()
    where = f"; listed in {write_skipped(skipped, folder, name)}" if folder is not None else ""
    log.warning("skipped %d bad row(s) of %d in %s%s", len(skipped["rows"]), skipped["total"], skipped["table"], where)


def resolve(problems: Problems, on_error: str) -> dict | None:
    """Raise on bad rows (``on_error=raise``), or report them and return the skip report (``skip``).

    Returns None when every row is good.
    """
    if on_error not in ON_ERROR:
        raise ConfigError(f"dataset.on_error={on_error!r}; use raise (stop on bad rows) or skip (drop them)")
    if not problems.rows:
        return None
    if on_error == "raise":
        raise DataError(problems.message())
    skipped = problems.skipped()
    report_skipped(skipped)
    return skipped


def require_every_split(table: Table, split_column: str | None, sizes: dict[str, int], skipped: int) -> None:
    """Refuse a table that leaves a split without usable rows, with advice that fits the table.

    ``split_column`` is the column the rows were split by (None: ``dataset.splits`` fractions),
    ``sizes`` the usable rows per split and ``skipped`` the bad rows dropped (``on_error=skip``).
    """
    empty = [split for split, size in sizes.items() if size == 0]
    if not empty:
        return
    counts = ", ".join(f"{split} {size}" for split, size in sizes.items())
    fixes = [f"fix the {skipped} skipped bad row{'s' if skipped != 1 else ''}"] if skipped else []
    if split_column:
        fixes += [f"add rows with {split_column}={'/'.join(empty)}",
                  "set dataset.split_column=null to split by dataset.splits fractions"]
    else:
        fixes += ["add rows", "change the dataset.splits fractions (train, val, test) so that every split gets a row"]
    raise DataError(f"{table.name}: no usable rows in the {', '.join(empty)} split{'s' if len(empty) > 1 else ''} "
                    f"({counts}); {', '.join(fixes[:-1])} or {fixes[-1]}")
