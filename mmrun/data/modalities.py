"""One reader per modality kind: read the cells, fit on training rows, make the tensor.

Every reader is built from one ``Modality`` (name, kind, columns) of the manifest and
exposes the same three steps, so the datamodule treats all kinds alike:

* ``read(table)``: parse or decode the cells; afterwards ``missing`` (bool ``[N]``: no value
  for this sample, which ``dataset.allow_missing`` may accept) and ``problems``
  (``{row: (column, reason)}``, covering missing values and unusable ones) are set;
* ``fit(rows)``: fit the preprocessing on the given (training) rows; returns plain JSON-able
  state that is saved in the checkpoint;
* ``tensor(state)``: the per-sample tensor of every row, and ``spec(state)`` its
  ``ModalitySpec``;
* ``inputs()``: fingerprints (``[path, size, mtime_ns]``) of the files read besides the table,
  so a cached build is used only while they are unchanged (``mmrun.data.prepared``).

Layouts (the contract with the encoders): image ``float [C, H, W]``; text ``int64 [T]`` with
0 = padding and ``vocab_size`` set; audio ``float [n_mels, frames]`` (log-mel); tabular
``float [F]``; categorical ``int64 [K]`` ids in one id space of ``vocab_size`` ids, 0 =
unknown (see ``mmrun.data.preprocess.tabular``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import torch

from mmrun.data.cache import TensorCache, file_fingerprint
from mmrun.data.columns import Modality
from mmrun.data.files import decode_column
from mmrun.data.preprocess import audio, image, tabular, text
from mmrun.data.spec import ModalitySpec
from mmrun.data.table import Table

log = logging.getLogger("mmrun")


class Reader:
    """Common state of the readers (see the module docstring)."""

    def __init__(self, modality: Modality) -> None:
        self.modality = modality
        self.missing = torch.zeros(0, dtype=torch.bool)
        self.problems: dict[int, tuple[str, str]] = {}

    @property
    def column(self) -> str:
        return self.modality.columns[0]

    def inputs(self) -> list[list]:
        return []


class FileReader(Reader):
    """Image or audio paths, decoded once through the cache; fitted statistics normalise them."""

    def __init__(self, modality: Modality, options, cache: TensorCache) -> None:
        super().__init__(modality)
        self.options = options
        self.cache = cache
        self.module = image if modality.kind == "image" else audio
        self.data = torch.zeros(0)
        self.cache_hit = False
        self.files: list = []  # per row: [path, size, mtime_ns] of its file, or None for an empty cell

    def read(self, table: Table) -> None:
        dtype = torch.uint8 if self.modality.kind == "image" else torch.float32
        decoded, self.cache_hit = decode_column(
            table, self.column, lambda path: self.module.decode(path, self.options), self.options.shape, dtype,
            {"kind": self.modality.kind, **asdict(self.options)}, self.cache,
        )
        self.data, self.missing, self.files = decoded.data, decoded.missing, decoded.files
        self.problems = {row: (self.column, reason) for row, reason in decoded.problems.items()}

    def inputs(self) -> list[list]:
        return [f for f in self.files if f is not None]

    def fit(self, rows: torch.Tensor) -> dict:
        return self.module.fit(self.data[rows], self.options)

    def tensor(self, state: dict) -> torch.Tensor:
        return self.module.transform(self.data, state)

    def spec(self, state: dict) -> ModalitySpec:
        return ModalitySpec(self.modality.name, self.modality.kind, tuple(self.options.shape))


class TextReader(Reader):
    """A free-text column; an empty cell is a missing value."""

    def __init__(self, modality: Modality, options: text.TextOptions) -> None:
        super().__init__(modality)
        self.options = options
        self.cells: list[str | None] = []

    def read(self, table: Table) -> None:
        self.cells = [None if row[self.column] is None else str(row[self.column]) for row in table.rows]
        self.missing = torch.tensor([c is None for c in self.cells], dtype=torch.bool)
        self.problems = {i: (self.column, "empty text") for i, c in enumerate(self.cells) if c is None}

    def inputs(self) -> list[list]:
        return [file_fingerprint(path) for path in text.tokenizer_files(self.options)]

    def fit(self, rows: torch.Tensor) -> dict:
        return text.fit([self.cells[i] for i in rows.tolist() if self.cells[i] is not None], self.options)

    def tensor(self, state: dict) -> torch.Tensor:
        return text.transform(self.cells, state)

    def spec(self, state: dict) -> ModalitySpec:
        return ModalitySpec(self.modality.name, "text", (state["length"],), vocab_size=text.vocab_size(state))


class TabularReader(Reader):
    """Numeric columns as one vector; empty cells are imputed (never missing), text is a problem."""

    def __init__(self, modality: Modality, options: tabular.TabularOptions) -> None:
        super().__init__(modality)
        self.options = options
        self.values = torch.zeros(0)

    def read(self, table: Table) -> None:
        columns = self.modality.columns
        self.values = torch.full((len(table.rows), len(columns)), float("nan"))
        self.missing = torch.zeros(len(table.rows), dtype=torch.bool)
        for i, row in enumerate(table.rows):
            for j, column in enumerate(columns):
                try:
                    number = tabular.parse_number(row[column])
                except (TypeError, ValueError):
                    self.problems[i] = (column, f"{row[column]!r} is not a number (numeric column)")
                    continue
                if number is not None:
                    self.values[i, j] = number

    def fit(self, rows: torch.Tensor) -> dict:
        return tabular.fit_numeric(list(self.modality.columns), self.values[rows], self.options.standardize,
                                    self.options.missing_flags)

    def tensor(self, state: dict) -> torch.Tensor:
        return tabular.transform_numeric(self.values, state)

    def spec(self, state: dict) -> ModalitySpec:
        return ModalitySpec(self.modality.name, "tabular", (tabular.width(state),))


class CategoricalReader(Reader):
    """Categorical columns as one id vector; empty or unseen values get id 0."""

    def __init__(self, modality: Modality, options: tabular.CategoricalOptions) -> None:
        super().__init__(modality)
        self.options = options
        self.cells: list[list] = []

    def read(self, table: Table) -> None:
        self.cells = [[row[c] for row in table.rows] for c in self.modality.columns]
        self.missing = torch.zeros(len(table.rows), dtype=torch.bool)

    def fit(self, rows: torch.Tensor) -> dict:
        index = rows.tolist()
        return tabular.fit_categorical(list(self.modality.columns), [[c[i] for i in index] for c in self.cells],
                                       self.options.min_frequency)

    def tensor(self, state: dict) -> torch.Tensor:
        return tabular.transform_categorical(self.cells, state)

    def spec(self, state: dict) -> ModalitySpec:
        return ModalitySpec(self.modality.name, "categorical", (len(self.modality.columns),),
                            vocab_size=tabular.categorical_vocab_size(state))


READERS = {"text": TextReader, "tabular": TabularReader, "categorical": CategoricalReader}


def make_reader(modality: Modality, options, cache: TensorCache) -> Reader:
    """The reader of ``modality``'s kind; image and audio files go through ``cache``."""
    if modality.kind in ("image", "audio"):
        return FileReader(modality, options, cache)
    return READERS[modality.kind](modality, options)


def log_cache(readers: dict[str, Reader], cache: TensorCache) -> None:
    """One log line: which file columns the data cache held, and which were decoded and stored."""
    files = [r for r in readers.values() if isinstance(r, FileReader)]
    if not files:
        return
    where = cache.folder or "disabled (dataset.cache=false)"
    hits = [r.column for r in files if r.cache_hit]
    if len(hits) == len(files):
        log.info("data cache hit for %s: nothing decoded (%s)", ", ".join(hits), where)
    else:
        decoded = [r.column for r in files if not r.cache_hit]
        log.info("data cache miss for %s: decoded and stored (%s)", ", ".join(decoded), where)
