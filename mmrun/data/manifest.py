"""``dataset=manifest``: your own data as a CSV, JSONL or Parquet table, one row per sample.

The build, in order: read the table (``mmrun.data.table``); decide each column's role
(``mmrun.data.columns``: inferred or ``dataset.columns``); assign rows to splits (the
``split`` column, or seeded ``dataset.splits`` fractions over all rows); read every modality
(``mmrun.data.modalities``; image and audio files are decoded once, through
``mmrun.data.cache``); check every row (``mmrun.data.validation``: stop with one message
listing the bad rows, or skip them); fit the preprocessing and the class list on the
training rows; make the split tensors and the ``DataSpec``. The result is cached as a whole
(``mmrun.data.prepared``): a second run with the same manifest, files and settings loads it
and does none of these steps.

Tensors and spec (the contract with the encoders, by ``ModalitySpec.kind``):

* ``image``: ``float [C, H, W]`` standardised per channel; one modality per image column,
  named after the column;
* ``text``: ``int64 [T]`` token ids, 0 = padding, 1 = unknown, ``vocab_size`` set; one per
  text column;
* ``audio``: ``float [n_mels, frames]`` standardised log-mel spectrogram (use a mel encoder:
  ``encoder/audio=melcnn``, the default with this dataset); one per audio column;
* ``tabular``: ``float [F]``, all numeric columns standardised, plus one 0/1 flag per column
  that had empty cells in training; one modality named ``tabular``;
* ``categorical``: ``int64 [K]``, one id per categorical column in a single id space of
  ``vocab_size`` ids (0 = unknown or empty; column k's values are offset by
  ``1 + sizes of columns < k``; the per-column value lists are in the fitted state);
  one modality named ``categorical``.

The batch also holds ``label`` and ``present [N, M]`` (modalities in spec order, sorted by
name; a sample's modality is absent only with ``allow_missing=true``).

Everything fitted on the training rows (column roles, class names, vocabularies,
normalisation statistics) is stored as plain values in ``spec.extra["fitted"]`` and thus in
every checkpoint; ``ManifestDataModule(..., fitted=state)`` applies it unchanged to another
manifest, which is how ``mmrun eval ckpt_path=... dataset.path=new.csv`` works. With
``labels_required=False`` as well (``mmrun predict``) the label column is not read: it may be
absent or have empty cells, and ``label`` holds zeros.
``row_ids`` holds each sample's line in the manifest, per split, for ``predictions.csv``.

``task=retrieval`` (pairs of sides that a contrastive model matches, e.g. image -> caption):
the label column is not read and need not exist; ``label`` holds int64 group codes: rows with
equal values in ``group_column`` (e.g. ``image_id``, five captions per image) are one item
and share a code, codes differ across the whole table, and with ``group_column=null`` every
row is its own item (``mmrun.data.labels.group_codes``). An empty group cell is a bad row.
Without a split column the ``splits`` fractions split the *items*, so an item's rows never
straddle splits. The spec's task is ``retrieval`` with no outputs and no classes; evaluation
on a new table (``fitted``) recomputes the codes from that table.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from mmrun.data import labels as label_rules
from mmrun.data.cache import TensorCache, default_cache_dir
from mmrun.data.columns import ColumnPlan, plan_columns
from mmrun.data.infer import infer_file_options
from mmrun.data.modalities import Reader, log_cache, make_reader
from mmrun.data.prepared import PreparedCache, PreparedManifest
from mmrun.data.preprocess import make_options
from mmrun.data.preprocess.audio import AudioOptions
from mmrun.data.preprocess.augment import AugmentOptions, augment_images, mask_spectrograms
from mmrun.data.preprocess.image import ImageOptions
from mmrun.data.preprocess.tabular import CategoricalOptions, TabularOptions
from mmrun.data.preprocess.text import TextOptions
from mmrun.data.spec import DataSpec
from mmrun.data.table import Table, read_table
from mmrun.data.tensor_datamodule import SPLITS, TensorDataModule
from mmrun.data.validation import Problems, report_skipped, require_every_split, resolve
from mmrun.errors import ConfigError, DataError

log = logging.getLogger("mmrun")
FITTED_VERSION = 1
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "dev": "val", "test": "test", "testing": "test"}
OPTION_TYPES = {"image": ImageOptions, "audio": AudioOptions, "text": TextOptions, "tabular": TabularOptions,
                "categorical": CategoricalOptions, "augment": AugmentOptions}


def plain(value: Any) -> Any:
    """An OmegaConf container from the config as plain dicts and lists; anything else unchanged."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


class ManifestDataModule(TensorDataModule):
    """A manifest table as split tensors (see the module docstring).

    Args:
        path: the manifest (.csv, .tsv, .jsonl or .parquet); relative file paths inside it
            resolve against its folder.
        columns: ``{kind: column or [columns]}`` with kinds image, audio, text, tabular,
            categorical; null = infer from the values (``mmrun.data.columns``).
        label_column: the target column.
        split_column: ``auto`` (a column named ``split`` if there is one), a column name, or
            null (ignore any split column and use ``splits``).
        splits: train/val/test fractions when there is no split column.
        split_seed: seed of the random split by fractions.
        task: ``auto`` (infer from the labels), a task type to read the labels as, or
            ``retrieval`` (no label column; ``label`` = group codes, see the module docstring).
        group_column: retrieval and captioning only: the column whose equal values mark one item (null:
            every row its own item); never a modality.
        caption_column: captioning only (``task.target``): the caption column, read as text
            whatever its values look like.
        modalities: names of the modalities to use (null = all found).
        on_error: ``raise`` (stop on any bad row) or ``skip`` (drop bad rows, write them
            to ``skipped_rows.csv`` in the run folder).
        allow_missing: an empty cell or missing file makes that modality absent for the
            sample instead of a bad row.
        cache: keep decoded image and audio tensors, and the prepared result of the whole
            build, in the cache folder.
        cache_dir: the cache folder (null = ``$MMRUN_CACHE_DIR`` or ``~/.cache/mmrun``).
        cache_check: how a cached file is known to be unchanged: ``stat`` (size, mtime and
            ctime) or ``content`` (a hash of its bytes: slower, but reused across copies of
            the data); see ``mmrun.data.cache.file_fingerprint``.
        image, audio, text, tabular, categorical, augment: preprocessing options (see
            ``mmrun.data.preprocess``).
        fitted: preprocessing state from a checkpoint (``spec.extra["fitted"]``): use it
            instead of fitting on this manifest's training rows.
        labels_required: false (only with ``fitted``) to leave the label column unread, for
            predictions on unlabelled rows.
        **loader_options: ``batch_size``, ``eval_batch_size``, ``seed`` and the other
            ``TensorDataModule`` options.
    """

    def __init__(
        self,
        path: str | None = None,
        columns: dict[str, Any] | None = None,
        label_column: str = "label",
        split_column: str | None = "auto",
        splits: list[float] | tuple[float, ...] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        task: str = "auto",
        modalities: list[str] | None = None,
        on_error: str = "raise",
        allow_missing: bool = False,
        cache: bool = True,
        cache_dir: str | None = None,
        cache_check: str = "stat",
        image: dict | None = None,
        audio: dict | None = None,
        text: dict | None = None,
        tabular: dict | None = None,
        categorical: dict | None = None,
        augment: dict | None = None,
        fitted: dict | None = None,
        labels_required: bool = True,
        group_column: str | None = None,
        caption_column: Any = None,
        **loader_options: Any,
    ) -> None:
        super().__init__(**loader_options)
        if not path:
            raise ConfigError("dataset=manifest needs the table: dataset.path=<manifest.csv|.jsonl|.parquet>")
        if len(splits) != 3 or abs(sum(splits) - 1.0) > 1e-6 or min(splits) < 0:
            raise ConfigError(f"dataset.splits={list(splits)} must be three fractions (train, val, test) summing to 1")
        if task != "auto" and task not in label_rules.TASKS:
            raise ConfigError(f"task={task!r} is unknown; use auto or one of {list(label_rules.TASKS)}")
        # task=captioning: the caption column is read as text, and the rows grouped by item as retrieval's are.
        self.caption_column = caption_column if task == label_rules.CAPTIONING and isinstance(caption_column, str) \
            else None
        self.uncaptioned = False  # mmrun predict on a table without the caption column (_plan)
        if task == label_rules.CAPTIONING:
            task = label_rules.RETRIEVAL
        if fitted is not None and fitted.get("version") != FITTED_VERSION:
            raise DataError("the checkpoint's fitted preprocessing is from another mmrun version; retrain the model")
        # A checkpoint's fitted state knows what it was trained for, whatever dataset.task says now.
        self.retrieval = (fitted["label_kind"] if fitted is not None else task) == label_rules.RETRIEVAL
        if group_column is not None and not self.retrieval:
            raise ConfigError(
                f"dataset.group_column={group_column} only applies to task=retrieval (rows of one item share a "
                f"group id); remove it, or train a retrieval model with task=retrieval"
            )
        if not labels_required and fitted is None:
            raise ConfigError("a manifest is read without labels only with a checkpoint's fitted preprocessing")
        self.path = str(path)
        self.columns = columns
        self.label_column = label_column
        self.split_column = split_column
        self.group_column = group_column
        self.fractions = tuple(float(f) for f in splits)
        self.split_seed = split_seed
        self.task = task
        self.wanted = list(modalities) if modalities is not None else None
        self.on_error = on_error
        self.allow_missing = allow_missing
        self.cache = TensorCache((cache_dir or default_cache_dir()) if cache else None, cache_check)
        given = {"image": image, "audio": audio, "text": text, "tabular": tabular, "categorical": categorical,
                 "augment": augment}
        self.options = {k: make_options(cls, given[k], k) for k, cls in OPTION_TYPES.items()}
        if fitted is not None and "options" in fitted:  # the settings the training files were decoded with
            self._use_options(fitted["options"])
        self.fitted = fitted
        self.labels_required = labels_required
        self.row_ids: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ build
    def build(self) -> tuple[dict[str, dict[str, torch.Tensor]], DataSpec]:
        manifest = self._manifest_path()
        cache = PreparedCache(self.cache, manifest, self._settings())
        prepared = cache.load()
        if prepared is None:
            prepared = self._prepare(manifest)
            cache.store(prepared)
        else:
            log.info("data cache hit for %s: prepared tensors loaded, nothing decoded or fitted (%s)",
                     Path(manifest).name, self.cache.folder)
            if prepared.skipped:
                report_skipped(prepared.skipped)
            self._use_options(prepared.spec.extra["fitted"]["options"])
        self.row_ids = prepared.row_ids
        return prepared.splits, prepared.spec

    def _use_options(self, saved: dict[str, dict]) -> None:
        """Take the resolved image/audio settings a build recorded (checkpoint or prepared cache)."""
        self.options.update({kind: make_options(OPTION_TYPES[kind], values, kind) for kind, values in saved.items()})

    def _settings(self) -> dict[str, Any]:
        """Every setting the build reads besides the manifest and its files (the prepared-cache key)."""
        return {"path": self.path, "columns": plain(self.columns), "label_column": self.label_column,
                "split_column": self.split_column, "splits": list(self.fractions), "split_seed": self.split_seed,
                "group_column": self.group_column, "caption_column": self.caption_column, "task": self.task,
                "modalities": self.wanted,
                "on_error": self.on_error, "allow_missing": self.allow_missing, "labels_required": self.labels_required,
                "options": {k: asdict(v) for k, v in self.options.items()}, "fitted": plain(self.fitted)}

    def _prepare(self, manifest: str) -> PreparedManifest:
        """Read, check, fit and transform the manifest (see the module docstring)."""
        table = read_table(manifest)
        plan = self._plan(table)
        log.info("manifest %s: %d rows; %s", table.name, len(table.rows), plan.describe())
        problems = Problems(table)
        groups = self._groups(table, plan, problems) if self.retrieval else None
        split_of = self._assign_splits(table, plan, problems, groups)
        if self.fitted is None:
            train_rows = [i for i, split in enumerate(split_of) if split == "train"]
            self.options = infer_file_options(self.options, table, plan.modalities, train_rows)
        readers = {m.name: make_reader(m, self.options[m.kind], self.cache) for m in plan.modalities}
        for reader in readers.values():
            reader.read(table)
        log_cache(readers, self.cache)
        present = self._check_modalities(table, readers, problems)

        kind, classes = self._label_kind_and_classes(table, plan, split_of, problems)
        target = groups if groups is not None else self._labels(table, plan, kind, classes, problems)
        skipped = resolve(problems, self.on_error)
        dropped = problems.rows
        keep = torch.tensor([i not in dropped for i in range(len(table.rows))])
        split_index = {s: torch.tensor([i for i, sp in enumerate(split_of) if sp == s and keep[i]], dtype=torch.long)
                       for s in SPLITS}
        if self.fitted is None:  # evaluation may use any split, even a manifest without training rows
            require_every_split(table, plan.split, {s: len(i) for s, i in split_index.items()}, len(dropped))

        states = self.fitted["preprocess"] if self.fitted else {
            name: reader.fit(split_index["train"][present[split_index["train"], i]])
            for i, (name, reader) in enumerate(readers.items())
        }
        data = {name: reader.tensor(states[name]) for name, reader in readers.items()}
        for i, name in enumerate(readers):
            data[name][~present[:, i]] = 0
        data["label"], data["present"] = target, present
        lines = torch.tensor(table.lines, dtype=torch.long)
        row_ids = {s: lines[index] for s, index in split_index.items()}
        splits = {s: {k: v[index] for k, v in data.items()} for s, index in split_index.items()}
        task, outputs = label_rules.spec_task(kind, classes)
        fitted = {"version": FITTED_VERSION, "manifest": str(Path(self.path).expanduser().resolve()),
                  "path": self.path, "columns": plan.to_state(), "label_kind": kind, "classes": classes,
                  "preprocess": states, "options": {k: asdict(self.options[k]) for k in ("image", "audio")}}
        modalities = tuple(readers[n].spec(states[n]) for n in readers)
        tokenizers = {m.name: states[m.name] for m in modalities if m.kind == "text"}  # e.g. to read a caption back
        spec = DataSpec(modalities, task, outputs, tuple(classes), extra={"fitted": fitted, "tokenizers": tokenizers})
        files = [fingerprint for reader in readers.values() for fingerprint in reader.inputs()]
        return PreparedManifest(splits, spec, row_ids, skipped, files)

    def _manifest_path(self) -> str:
        """``path``; a checkpoint's own relative manifest path also resolves where training ran."""
        if self.fitted and self.path == self.fitted["path"] and not Path(self.path).expanduser().exists():
            return self.fitted["manifest"]
        return self.path

    def _plan(self, table: Table) -> ColumnPlan:
        if self.fitted is None:
            return plan_columns(table, self.columns, self.label_column, self.split_column, self.wanted,
                                self.group_column, read_label=not self.retrieval,
                                text_columns=(self.caption_column,) if self.caption_column else ())
        plan = ColumnPlan.from_state(self.fitted["columns"])
        absent = [c for m in plan.modalities for c in m.columns if c not in table.columns]
        if self.caption_column in absent:  # captioning: new items to caption, without references
            if self.labels_required:
                raise DataError(f"{table.name} has no caption column {self.caption_column!r} to score the captions "
                                f"against; to caption its rows without scores use mmrun predict ckpt_path=... "
                                f"dataset.path={self.path}")
            table.columns.append(self.caption_column)
            for row in table.rows:
                row[self.caption_column] = None
            self.uncaptioned = True
            absent.remove(self.caption_column)
        if absent:
            raise DataError(
                f"{table.name} lacks the column(s) {absent} that the checkpoint's model reads; its columns are "
                f"{table.columns}. Rename its columns to match the training manifest"
            )
        if self.labels_required and plan.label is not None and plan.label not in table.columns:
            raise DataError(
                f"{table.name} has no label column {plan.label!r}, and mmrun eval needs labels to score the model; "
                f"for predictions on unlabelled rows use mmrun predict ckpt_path=... dataset.path={self.path}"
            )
        split = plan.split if plan.split in table.columns else None
        group = plan.group
        if group is not None and group not in table.columns:
            if self.labels_required:  # eval scores ranks against each query's own item
                raise DataError(
                    f"{table.name} has no group column {group!r} (dataset.group_column), which the checkpoint's "
                    f"model was trained with (its rows of one item); its columns are {table.columns}"
                )
            group = None  # predictions need no groups: every row its own item
        return ColumnPlan(plan.modalities, plan.label if self.labels_required else None, split, group=group)

    def _labels(self, table: Table, plan: ColumnPlan, kind: str, classes: list[str],
                problems: Problems) -> torch.Tensor:
        """The label tensor, with bad labels recorded in ``problems``; zeros when the plan reads no labels."""
        if plan.label is None:
            return label_rules.unlabelled(len(table.rows), kind, classes)
        target, label_problems = label_rules.encode([row[plan.label] for row in table.rows], kind, classes)
        problems.add_all(plan.label, label_problems)
        return target

    def _groups(self, table: Table, plan: ColumnPlan, problems: Problems) -> torch.Tensor:
        """Retrieval: every row's group code (see ``label_rules.group_codes``), empty cells as problems."""
        values = [row[plan.group] for row in table.rows] if plan.group else None
        codes, group_problems = label_rules.group_codes(values, len(table.rows))
        problems.add_all(plan.group, group_problems)
        return codes

    # ----------------------------------------------------------------- splits
    def _assign_splits(self, table: Table, plan: ColumnPlan, problems: Problems,
                       groups: torch.Tensor | None = None) -> list[str | None]:
        """The split of every row: from the split column, or seeded fractions over all rows.

        ``groups`` (retrieval): the fractions split the groups, so a group's rows share a split.
        """
        if plan.split:
            result = []
            for row, record in enumerate(table.rows):
                value = record[plan.split]
                split = SPLIT_NAMES.get(str(value).strip().lower()) if value is not None else None
                if split is None:
                    problems.add(row, plan.split, f"split {value!r} is not train, val or test"
                                 if value is not None else "empty split")
                result.append(split)
            if groups is not None and plan.group:
                self._warn_straddling(plan, groups, result)
            return result
        if groups is not None:
            return self._split_groups(groups)
        count = len(table.rows)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(self.split_seed)).tolist()
        n_train = round(self.fractions[0] * count)
        n_val = round(self.fractions[1] * count)
        result = [None] * count
        for position, row in enumerate(order):
            result[row] = "train" if position < n_train else "val" if position < n_train + n_val else "test"
        return result

    def _split_groups(self, groups: torch.Tensor) -> list[str | None]:
        """Seeded fractions over the groups; a row without a group (a bad row) gets no split.

        With every row its own group this is the split by rows above, row for row.
        """
        count = int(groups.max()) + 1 if len(groups) else 0
        order = torch.randperm(count, generator=torch.Generator().manual_seed(self.split_seed)).tolist()
        n_train = round(self.fractions[0] * count)
        n_val = round(self.fractions[1] * count)
        split_of_group = [""] * count
        for position, group in enumerate(order):
            split_of_group[group] = "train" if position < n_train else "val" if position < n_train + n_val else "test"
        return [split_of_group[g] if g >= 0 else None for g in groups.tolist()]

    @staticmethod
    def _warn_straddling(plan: ColumnPlan, groups: torch.Tensor, split_of: list[str | None]) -> None:
        seen: dict[int, set] = {}
        for group, split in zip(groups.tolist(), split_of):
            if group >= 0 and split is not None:
                seen.setdefault(group, set()).add(split)
        straddling = sum(1 for splits in seen.values() if len(splits) > 1)
        if straddling:
            log.warning("%d group(s) of %r have rows in more than one split (column %r); each split scores only "
                        "its own rows", straddling, plan.group, plan.split)

    # ------------------------------------------------------------- row checks
    def _check_modalities(self, table: Table, readers: dict[str, Reader], problems: Problems) -> torch.Tensor:
        """Record the modalities' problems and return ``present [N, M]``."""
        present = torch.stack([~r.missing for r in readers.values()], 1)
        for name, reader in readers.items():
            if self.uncaptioned and name == self.caption_column:
                continue  # predict: the table has no captions; the column stands empty
            for row, (column, reason) in reader.problems.items():
                if not (self.allow_missing and reader.missing[row]):
                    problems.add(row, column, reason)
        if self.allow_missing:
            for row in (~present.any(1)).nonzero().flatten().tolist():
                problems.add(row, ", ".join(readers), "every modality is empty or missing")
        return present

    def _label_kind_and_classes(
        self, table: Table, plan: ColumnPlan, split_of: list[str | None], problems: Problems
    ) -> tuple[str, list[str]]:
        """The label kind and classes: from the checkpoint, or from the good training rows."""
        if self.retrieval:
            return label_rules.RETRIEVAL, []
        if self.fitted is not None:
            return self.fitted["label_kind"], list(self.fitted["classes"])
        values = [row[plan.label] for row in table.rows]
        kind = label_rules.infer_kind([v for v in values if v is not None], self.task)
        good_train = [v for i, (v, s) in enumerate(zip(values, split_of))
                      if s == "train" and v is not None and i not in problems.rows]
        classes = label_rules.fit_classes(good_train, kind)
        label_rules.require_classes(classes, kind, f"{table.name}: the label column {plan.label!r}")
        return kind, classes

    # ---------------------------------------------------------- augmentation
    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> dict[str, torch.Tensor]:
        """Augment image and audio modalities of training batches, on the device they were moved to."""
        options = self.options["augment"]
        if self.trainer is not None and self.trainer.training and options.active:
            for modality in self.spec.modalities:
                if modality.kind == "image":
                    batch[modality.name] = augment_images(batch[modality.name], options)
                elif modality.kind == "audio" and options.spec_mask > 0:
                    batch[modality.name] = mask_spectrograms(batch[modality.name], options.spec_mask)
        return batch
