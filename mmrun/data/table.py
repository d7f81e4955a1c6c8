"""Read a manifest table (CSV, JSONL or Parquet) into rows with their line numbers.

Every row keeps the line it came from, so an error can point at ``manifest.csv:LINE``:
the physical line where a CSV record starts (the header is line 1), the line of a JSONL
record, or the 1-based row number of a Parquet file. Values are kept as read: strings from
CSV, JSON types from JSONL and Parquet; an empty cell is ``None``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrun.errors import DataError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


@dataclass
class Table:
    """The rows of a manifest.

    Attributes:
        path: the manifest file.
        columns: column names in file order.
        rows: one ``{column: value}`` dict per sample (``None`` for an empty cell).
        lines: the line (row number for Parquet) each sample came from.
    """

    path: Path
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int]

    @property
    def name(self) -> str:
        return self.path.name

    def where(self, index: int, column: str) -> str:
        """``manifest.csv:LINE column`` for error messages."""
        return f"{self.name}:{self.lines[index]} {column}"


def _empty_to_none(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and value != value:  # NaN from Parquet or JSON
        return None
    return value


def _read_delimited(path: Path, delimiter: str) -> Table:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if not header:
            raise DataError(f"{path} is empty; a manifest needs a header line naming its columns")
        columns = [name.strip() for name in header]
        duplicated = sorted({c for c in columns if columns.count(c) > 1})
        if duplicated:
            raise DataError(f"{path}:1 names the column(s) {duplicated} twice; give every column a unique name")
        rows, lines = [], []
        start = reader.line_num + 1
        for record in reader:
            if record and any(cell.strip() for cell in record):
                if len(record) != len(columns):
                    raise DataError(
                        f"{path.name}:{start}: {len(record)} cells but the header has {len(columns)} columns; "
                        f"quote cells that contain '{delimiter}' and give every row one cell per column"
                    )
                rows.append({c: _empty_to_none(v) for c, v in zip(columns, record)})
                lines.append(start)
            start = reader.line_num + 1
    return Table(path, columns, rows, lines)


def _read_jsonl(path: Path) -> Table:
    columns: list[str] = []
    rows, lines = [], []
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                raise DataError(f"{path.name}:{number}: not valid JSON ({error.msg}); write one JSON object per line") from None
            if not isinstance(record, dict):
                raise DataError(f"{path.name}:{number}: a JSONL manifest needs one JSON object per line, got {type(record).__name__}")
            columns += [c for c in record if c not in columns]
            rows.append(record)
            lines.append(number)
    rows = [{c: _empty_to_none(row.get(c)) for c in columns} for row in rows]
    return Table(path, columns, rows, lines)


def _read_parquet(path: Path) -> Table:
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise DataError(
            f"{path.name} is a Parquet file, which needs pyarrow: pip install 'mmrun[parquet]'"
        ) from None
    try:
        records = pq.read_table(path).to_pylist()
    except Exception as error:  # pyarrow raises several types for unreadable files
        raise DataError(f"{path} cannot be read as Parquet ({error}); check the file or export it as CSV") from None
    columns = list(records[0]) if records else []
    rows = [{c: _empty_to_none(r.get(c)) for c in columns} for r in records]
    return Table(path, columns, rows, list(range(1, len(rows) + 1)))


def read_table(path: str | Path) -> Table:
    """Read a manifest; the format comes from the file extension."""
    file = Path(path).expanduser()
    kind = FORMATS.get(file.suffix.lower())
    if kind is None:
        raise DataError(
            f"dataset.path={str(path)!r} has an unknown extension; use a .csv, .tsv, .jsonl or .parquet manifest"
        )
    if not file.is_file():
        raise DataError(f"dataset.path={str(path)!r} does not exist (looked in {file.resolve().parent}); pass the manifest's path")
    if kind == "jsonl":
        table = _read_jsonl(file)
    elif kind == "parquet":
        table = _read_parquet(file)
    else:
        table = _read_delimited(file, "\t" if kind == "tsv" else ",")
    if not table.rows:
        raise DataError(f"{file} has no data rows; add one row per sample below the header")
    return table
