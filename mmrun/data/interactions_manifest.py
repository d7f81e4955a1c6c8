"""``dataset=interactions_manifest``: recommendation data from your own tables.

Two tables, read with ``mmrun.data.table`` (CSV, TSV, JSONL or Parquet):

* ``path``, the interactions: one row per user-item positive, with a user id column
  (``user_column``) and an item id column (``item_column``), optionally a ``split`` column
  (train/val/test); other columns are ignored when there is an item table;
* ``items`` (optional), the item table: one row per item, its id in ``item_column`` and its
  content: text, numbers, categories, image and audio paths (relative to the table's folder).
  Without it, the content columns of the interactions table are the item content, read from
  each item's first row (a column whose value changes within an item is logged).

The build, in order: read the tables; decide the content columns' roles as ``dataset=manifest``
does (``mmrun.data.columns``: inferred, or ``dataset.columns``); read the content once per item
with the manifest's readers (``mmrun.data.modalities``: images and audio decoded once through
``mmrun.data.cache``); check every item and interaction (``mmrun.data.validation``: stop with
one message listing the bad rows, or skip them with ``on_error=skip``); split the interactions;
fit the content preprocessing (vocabularies, statistics, categories) on the items seen in
training; make the tensors of the ``InteractionsDataModule`` contract
(``mmrun.data.interactions``). The whole result is cached, keyed by both tables' bytes and
every setting, so a second identical run loads it.

Splits: the split column, or each user's interactions split at random by ``splits`` (every
user's rows are shuffled and cut at the fractions with a random offset, so each split gets
``n * fraction`` of a user's ``n`` rows, rounded up or down). ``cold_items`` holds a fraction
of the items that have interactions out of training: their rows go to val and test, half each
at random (a split column's val and test rows stay where they are). Every item without a
training row is cold: its ``item`` id is the unknown id 0, so only its content can rank it.
Both draws use ``split_seed``.

Ids: users and items are indexed in order of first appearance (items: in the item table's
order when there is one); ``user`` is ``1 + user index`` and ``item`` ``1 + item index``
(0 for cold items). ``user_names`` and ``item_names`` hold the original ids by index, for
``rankings.csv``.

The fitted state (``spec.extra["fitted"]``: user and item ids, which items were trained on,
column roles, vocabularies and statistics) travels in the checkpoint, and
``InteractionsManifestDataModule(..., fitted=state)`` applies it to other tables (``mmrun eval
ckpt_path=... dataset.path=new.csv``): known users and items keep their indices, new ones are
appended with id 0, and items the checkpoint never trained on are cold.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from mmrun.data.cache import TensorCache, cache_key, changed, default_cache_dir, file_digest
from mmrun.data.columns import ColumnPlan, infer_kind, plan_columns
from mmrun.data.infer import infer_file_options
from mmrun.data.interactions import InteractionsDataModule
from mmrun.data.manifest import OPTION_TYPES, READERS, SPLIT_NAMES, plain
from mmrun.data.modalities import FileReader, Reader
from mmrun.data.preprocess import make_options
from mmrun.data.preprocess.tabular import category_key
from mmrun.data.spec import DataSpec, ModalitySpec
from mmrun.data.table import FORMATS, Table, read_table
from mmrun.data.tensor_datamodule import SPLITS
from mmrun.data.validation import ON_ERROR, Problems, report_skipped, require_every_split, resolve, run_folder
from mmrun.errors import ConfigError, DataError

log = logging.getLogger("mmrun")
FITTED_KIND = "interactions_manifest"
FITTED_VERSION = 1
ID_MODALITIES = ("item", "user")
RESERVED = ("user", "item", "user_index", "item_index", "label", "present", "cold")  # batch and catalogue keys
CONTENT_OPTIONS = {kind: cls for kind, cls in OPTION_TYPES.items() if kind != "augment"}
SKIPPED_ITEMS = "skipped_items.csv"


class InteractionsManifestDataModule(InteractionsDataModule):
    """Interactions and items from your tables as the ``InteractionsDataModule`` contract (module docstring).

    Args:
        path: the interactions table, one row per user-item positive.
        items: the item table (null: content columns of the interactions table, or none).
        user_column, item_column: the id columns (the item table uses ``item_column`` too).
        columns: ``{kind: column or [columns]}`` of the item content (null = infer).
        split_column: ``auto`` (a column named ``split`` if there is one), a column, or null.
        splits: train/val/test fractions of each user's interactions without a split column.
        split_seed: seed of that split and of the choice of cold items.
        cold_items: fraction of the items with interactions held out of training.
        modalities: null (user, item and all content) or a list holding ``user``.
        on_error: ``raise`` or ``skip`` bad interactions and items.
        allow_missing: an empty content cell or missing file makes the modality absent.
        cache, cache_dir, cache_check: the data cache, as ``dataset=manifest``.
        image, audio, text, tabular, categorical: content preprocessing (``mmrun.data.preprocess``).
        fitted: a checkpoint's fitted state (``spec.extra["fitted"]``) to apply instead of fitting.
        labels_required: accepted for ``mmrun eval``/``predict``; interactions are their own labels.
        **loader_options: ``batch_size``, ``eval_batch_size``, ``seed``, ``on_device``,
            ``device_memory_fraction`` (``TensorDataModule``).
    """

    def __init__(
        self,
        path: str | None = None,
        items: str | None = None,
        user_column: str = "user",
        item_column: str = "item",
        columns: dict[str, Any] | None = None,
        split_column: str | None = "auto",
        splits: list[float] | tuple[float, ...] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        cold_items: float = 0.0,
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
        fitted: dict | None = None,
        labels_required: bool = True,
        **loader_options: Any,
    ) -> None:
        super().__init__(**loader_options)
        if not path:
            raise ConfigError("dataset=interactions_manifest needs the interactions table: dataset.path="
                              "<interactions.csv|.jsonl|.parquet> with one row per user-item positive (columns user "
                              "and item)")
        if len(splits) != 3 or abs(sum(splits) - 1.0) > 1e-6 or min(splits) < 0:
            raise ConfigError(f"dataset.splits={list(splits)} must be three fractions (train, val, test) summing to 1")
        if not 0.0 <= cold_items < 1.0:
            raise ConfigError(f"dataset.cold_items={cold_items} must be a fraction in [0, 1), e.g. 0.1")
        if on_error not in ON_ERROR:
            raise ConfigError(f"dataset.on_error={on_error!r}; use raise (stop on bad rows) or skip (drop them)")
        if user_column == item_column:
            raise ConfigError(f"dataset.user_column and dataset.item_column are both {user_column!r}; name two columns")
        if modalities is not None:
            modalities = list(modalities)
            if "user" not in modalities:
                raise ConfigError(f"dataset.modalities={modalities} lacks user, which the user side of the "
                                  "recommender reads; add it, e.g. dataset.modalities=[user,item]")
            if len(set(modalities)) < 2:
                raise ConfigError(f"dataset.modalities={modalities} has no item side; add item and/or content "
                                  "modalities, e.g. dataset.modalities=[user,item]")
        if fitted is not None and (fitted.get("kind") != FITTED_KIND or fitted.get("version") != FITTED_VERSION):
            raise DataError("the checkpoint's fitted interactions data is from another dataset or mmrun version; "
                            "retrain the model")
        self.path = str(path)
        self.items = str(items) if items else None
        self.user_column, self.item_column = user_column, item_column
        self.columns = columns
        self.split_column = split_column
        self.fractions = tuple(float(f) for f in splits)
        self.split_seed = split_seed
        self.cold_fraction = float(cold_items)
        self.wanted = modalities
        self.on_error = on_error
        self.allow_missing = allow_missing
        self.cache = TensorCache((cache_dir or default_cache_dir()) if cache else None, cache_check)
        given = {"image": image, "audio": audio, "text": text, "tabular": tabular, "categorical": categorical}
        self.options = {kind: make_options(cls, given[kind], kind) for kind, cls in CONTENT_OPTIONS.items()}
        if fitted is not None:
            self._use_options(fitted["options"])
        self.fitted = fitted
        self.labels_required = labels_required
        self.user_names: list[str] = []
        self.item_names: list[str] = []
        self.row_ids: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ build
    def build(self):
        interactions = self._table_path(self.path, "path", "interactions_file")
        items = self._table_path(self.items, "items", "items_file") if self.items else None
        key = None
        if self.cache.folder is not None:
            tables = [[os.path.realpath(p), file_digest(p)] for p in (interactions, items) if p]
            key = cache_key({"prepared interactions": tables, "settings": self._settings()})
        payload = self._load(key)
        if payload is None:
            payload = self._prepare(interactions, items)
            if key is not None:
                self.cache.store(key, payload)
        else:
            log.info("data cache hit for %s: prepared tensors loaded, nothing decoded or fitted (%s)",
                     Path(interactions).name, self.cache.folder)
            self._report(payload["skipped"])
        spec = DataSpec.from_dict(payload["spec"])
        self._use_options(spec.extra["fitted"]["options"])
        self.user_names, self.item_names = list(payload["user_names"]), list(payload["item_names"])
        self.row_ids = payload["row_ids"]
        self.catalogue = payload["catalogue"]
        return payload["splits"], spec, self.catalogue

    def _table_path(self, path: str, key: str, fitted_key: str) -> str:
        """The table's path, checked; a checkpoint's own relative path also resolves where training ran."""
        if self.fitted and path == self.fitted.get(key) and not Path(path).expanduser().exists():
            path = self.fitted[fitted_key]
        file = Path(path).expanduser()
        what = "interactions table" if key == "path" else "item table"
        if file.suffix.lower() not in FORMATS:
            raise DataError(f"dataset.{key}={path!r} has an unknown extension; use a .csv, .tsv, .jsonl or .parquet "
                            f"{what}")
        if not file.is_file():
            fix = "" if key == "path" else ", or dataset.items=null to read item content from the interactions table"
            raise DataError(f"dataset.{key}={path!r} does not exist (looked in {file.resolve().parent}); pass the "
                            f"{what}'s path{fix}")
        return str(file)

    def _use_options(self, saved: dict[str, dict]) -> None:
        self.options.update({kind: make_options(CONTENT_OPTIONS[kind], values, kind) for kind, values in saved.items()})

    def _settings(self) -> dict[str, Any]:
        """Every setting the build reads besides the tables and their files (the prepared-cache key)."""
        return {"path": self.path, "items": self.items, "user_column": self.user_column,
                "item_column": self.item_column, "columns": plain(self.columns), "split_column": self.split_column,
                "splits": list(self.fractions), "split_seed": self.split_seed, "cold_items": self.cold_fraction,
                "modalities": self.wanted, "on_error": self.on_error, "allow_missing": self.allow_missing,
                "options": {k: asdict(v) for k, v in self.options.items()}, "fitted": plain(self.fitted)}

    def _load(self, key: str | None) -> dict[str, Any] | None:
        payload = self.cache.load(key) if key is not None else None
        if payload is None:
            return None
        stale = next((f[0] for f in json.loads(payload["files"]) if changed(f)), None)
        if stale is not None:
            log.info("prepared interactions data is stale (%s changed); preparing it again", stale)
            return None
        return payload

    @staticmethod
    def _report(skipped: dict[str, Any]) -> None:
        """Log and list the skipped items and interactions (``on_error=skip``)."""
        if skipped.get("items"):
            report_items(skipped["items"])
        if skipped.get("interactions"):
            report_skipped(skipped["interactions"])

    # ---------------------------------------------------------------- prepare
    def _prepare(self, interactions: str, items: str | None) -> dict[str, Any]:
        table = read_table(interactions)
        for column, key in ((self.user_column, "user_column"), (self.item_column, "item_column")):
            if column not in table.columns:
                raise DataError(f"{table.name} has no {key.split('_')[0]} id column {column!r} (dataset.{key}); its "
                                f"columns are {table.columns}: set dataset.{key}=<one of them>")
        split_column = self._split_column(table)
        item_table = self._item_table(items) if items else None
        content, content_keys = (item_table, self._item_ids(item_table)) if item_table else self._first_rows(table)

        plan = self._plan(content, split_column, one_table=item_table is None)
        if plan and self.fitted is None:  # auto image/audio settings from the headers of the item files
            self.options = infer_file_options(self.options, content, plan.modalities, list(range(len(content.rows))))
        readers = {m.name: self._reader(m) for m in plan.modalities} if plan else {}
        for reader in readers.values():
            reader.read(content)
        self._log_cache(readers)
        if plan and item_table is None:
            self._warn_varying(table, plan)
        skipped: dict[str, Any] = {}
        bad_items, skipped["items"] = self._check_content(content, readers, one_table=item_table is None)

        # The catalogue: the checkpoint's items first (same indices), then this data's other items.
        dropped = {content_keys[row] for row in bad_items}
        known = list(self.fitted["item_ids"]) if self.fitted else []
        skip = set(known) | dropped
        catalogue_ids = known + [k for k in content_keys if k not in skip]
        item_of = {k: i for i, k in enumerate(catalogue_ids)}
        content_row = torch.full((len(catalogue_ids),), -1, dtype=torch.long)
        for row, k in enumerate(content_keys):
            if row not in bad_items:
                content_row[item_of[k]] = row

        rows, users, item_index, split_codes, skipped["interactions"] = self._interactions(
            table, split_column, item_of, dropped, items_name=item_table.name if item_table else None)
        known_users = list(self.fitted["user_ids"]) if self.fitted else []
        old = set(known_users)
        user_ids = known_users + [u for u in dict.fromkeys(users) if u not in old]
        user_of = {u: i for i, u in enumerate(user_ids)}
        user_index = torch.tensor([user_of[u] for u in users], dtype=torch.long)

        split = self._split(split_codes, user_index, item_index, content_row, len(user_ids))
        sizes = {name: int((split == code).sum()) for code, name in enumerate(SPLITS)}
        if self.fitted is None:
            require_every_split(table, split_column, sizes, len(table.rows) - len(rows))
        trained = torch.zeros(len(catalogue_ids), dtype=torch.bool)
        if self.fitted is not None:
            warm = self.fitted["warm"]
            trained[: len(warm)] = torch.tensor(warm, dtype=torch.bool)
        else:
            trained[item_index[split == 0]] = True

        modalities = self.fitted["modalities"] if self.fitted else self._modalities(readers)
        train_rows = content_row[trained & (content_row >= 0)]  # the content of the items seen in training
        states = self.fitted["preprocess"] if self.fitted else {
            name: reader.fit(train_rows[~reader.missing[train_rows]]) for name, reader in readers.items()}
        catalogue = self._catalogue(readers, states, content_row, trained, modalities)
        lines = torch.tensor(table.lines, dtype=torch.long)[torch.tensor(rows, dtype=torch.long)]
        splits, row_ids = {}, {}
        for code, name in enumerate(SPLITS):
            chosen = (split == code).nonzero().flatten()
            users_of_split = user_index[chosen]
            items_of_split = item_index[chosen]
            known_user = users_of_split < len(known_users) if self.fitted else torch.ones_like(chosen, dtype=torch.bool)
            splits[name] = {"user": torch.where(known_user, users_of_split + 1, 0).unsqueeze(1),
                            "user_index": users_of_split, "item_index": items_of_split, "label": items_of_split.clone(),
                            "present": catalogue["present"][items_of_split]}
            row_ids[name] = lines[chosen]

        fitted = self.fitted or {
            "version": FITTED_VERSION, "kind": FITTED_KIND, "path": self.path,
            "interactions_file": str(Path(interactions).resolve()), "items": self.items,
            "items_file": str(Path(items).resolve()) if items else None, "modalities": modalities,
            "user_ids": user_ids, "item_ids": catalogue_ids, "warm": trained.tolist(),
            "columns": plan.to_state() if plan else None, "preprocess": states,
            "options": {kind: asdict(self.options[kind]) for kind in ("image", "audio")},
        }
        spec = self._make_spec(modalities, readers, states, len(fitted["user_ids"]) + 1, len(fitted["item_ids"]) + 1,
                               fitted)
        cold = catalogue["cold"]
        log.info("interactions %s: %d rows (train %d, val %d, test %d), %d users, %d items (%d cold); %s",
                 table.name, len(rows), sizes["train"], sizes["val"], sizes["test"], len(user_ids), len(catalogue_ids),
                 int(cold.sum()), describe(plan))
        files = [fingerprint for reader in readers.values() for fingerprint in reader.inputs()]
        return {"splits": splits, "catalogue": catalogue, "spec": spec.to_dict(), "user_names": user_ids,
                "item_names": catalogue_ids, "row_ids": row_ids, "skipped": skipped, "files": json.dumps(files)}

    def _split_column(self, table: Table) -> str | None:
        column = self.split_column
        if column == "auto":
            return "split" if "split" in table.columns else None
        if column and column not in table.columns:
            if self.fitted is not None:  # new data without the training table's split column: fractions
                return None
            raise DataError(f"{table.name} has no split column {column!r} (dataset.split_column); its columns are "
                            f"{table.columns}. Set dataset.split_column=null to split by dataset.splits fractions")
        return column or None

    def _item_table(self, path: str) -> Table:
        table = read_table(path)
        if self.item_column not in table.columns:
            raise DataError(f"{table.name} has no item id column {self.item_column!r} (dataset.item_column, the same "
                            f"name as in the interactions table); its columns are {table.columns}")
        return table

    def _item_ids(self, table: Table) -> list[str]:
        """The item table's ids; an empty or repeated id stops the run."""
        first: dict[str, int] = {}
        for row, record in enumerate(table.rows):
            key = category_key(record[self.item_column])
            if key is None:
                raise DataError(f"{table.name}:{table.lines[row]} has an empty {self.item_column!r} cell; give every "
                                f"item an id (dataset.items)")
            if key in first:
                raise DataError(f"{table.name}:{table.lines[row]} repeats item id {key!r} of line "
                                f"{table.lines[first[key]]}; give every item one row in the item table")
            first[key] = row
        return list(first)

    def _first_rows(self, table: Table) -> tuple[Table, list[str]]:
        """No item table: each item's first row of the interactions table holds its content."""
        first: dict[str, int] = {}
        for row, record in enumerate(table.rows):
            key = category_key(record[self.item_column])
            if key is not None and key not in first:
                first[key] = row
        rows = list(first.values())
        view = Table(table.path, table.columns, [table.rows[r] for r in rows], [table.lines[r] for r in rows])
        return view, list(first)

    def _plan(self, content: Table, split_column: str | None, one_table: bool) -> ColumnPlan | None:
        """The content columns' roles (None: no content), as ``dataset=manifest`` decides them."""
        if self.fitted is not None:
            if self.fitted["columns"] is None:
                return None
            plan = ColumnPlan.from_state(self.fitted["columns"])
            absent = [c for m in plan.modalities for c in m.columns if c not in content.columns]
            if absent:
                raise DataError(f"{content.name} lacks the content column(s) {absent} that the checkpoint's model "
                                f"reads; its columns are {content.columns}. Rename its columns as in training")
            return ColumnPlan(plan.modalities, None, None)
        ids = {self.item_column}
        if one_table:
            ids |= {self.user_column} | ({split_column} if split_column else set())
        named = [c for names in (self.columns or {}).values()
                 for c in ([names] if isinstance(names, str) else names or [])]
        clash = sorted(set(named) & ids)
        if clash:
            raise ConfigError(f"dataset.columns names {clash}, the id or split column(s); list only item content "
                              "columns")
        content_wanted = None if self.wanted is None else [m for m in self.wanted if m not in ID_MODALITIES]
        if content_wanted == []:
            return None
        candidates = [c for c in content.columns if c not in ids]
        if not self.columns and not any(infer_kind(c, [r[c] for r in content.rows if r[c] is not None])
                                        for c in candidates):
            if content_wanted:
                raise ConfigError(f"dataset.modalities={self.wanted} names content {content_wanted}, but "
                                  f"{content.name} has no content column; its modalities are {list(ID_MODALITIES)}")
            return None
        plan = plan_columns(content, self.columns, label_column=self.item_column,
                            split_column=split_column if one_table else None, modalities=None,
                            group_column=self.user_column if one_table else None, read_label=False)
        names = [m.name for m in plan.modalities]
        clash = sorted(set(names) & set(RESERVED))
        if clash:
            raise DataError(f"{content.name}: content modality name(s) {clash} clash with the id modalities or batch "
                            f"keys; rename the column(s), or choose the content with dataset.columns")
        if content_wanted is not None:
            missing = sorted(set(content_wanted) - set(names))
            if missing:
                raise ConfigError(f"dataset.modalities={self.wanted} names {missing}, which the data lacks; its "
                                  f"modalities are {sorted([*ID_MODALITIES, *names])}")
            plan = ColumnPlan(tuple(m for m in plan.modalities if m.name in content_wanted), None, None, plan.ignored)
        return plan

    def _reader(self, modality) -> Reader:
        if modality.kind in ("image", "audio"):
            return FileReader(modality, self.options[modality.kind], self.cache)
        return READERS[modality.kind](modality, self.options[modality.kind])

    def _log_cache(self, readers: dict[str, Reader]) -> None:
        files = [r for r in readers.values() if isinstance(r, FileReader)]
        if files:
            hits = [r.column for r in files if r.cache_hit]
            decoded = [r.column for r in files if not r.cache_hit]
            where = self.cache.folder or "disabled (dataset.cache=false)"
            log.info("data cache: %s (%s)", "; ".join(
                part for part in (f"hit for {', '.join(hits)}" if hits else "",
                                  f"decoded and stored {', '.join(decoded)}" if decoded else "") if part), where)

    def _warn_varying(self, table: Table, plan: ColumnPlan) -> None:
        """One table: log content columns whose value changes within an item (only the first row is read)."""
        first: dict[str, dict] = {}
        varying: dict[str, str] = {}
        columns = [c for m in plan.modalities for c in m.columns]
        for record in table.rows:
            key = category_key(record[self.item_column])
            if key is None:
                continue
            seen = first.setdefault(key, record)
            for column in columns:
                if column not in varying and category_key(record[column]) != category_key(seen[column]):
                    varying[column] = key
        for column, key in varying.items():
            log.warning("column %r of %s changes within item %r (and maybe others); item content is read from each "
                        "item's first row: pass an item table (dataset.items) or leave the column out with "
                        "dataset.columns if it describes the interaction", column, table.name, key)

    def _check_content(self, content: Table, readers: dict[str, Reader],
                       one_table: bool) -> tuple[set[int], dict | None]:
        """Bad content rows: raise with one message, or skip them (their items and interactions)."""
        problems = Problems(content)
        for reader in readers.values():
            for row, (column, reason) in reader.problems.items():
                if not (self.allow_missing and reader.missing[row]):
                    problems.add(row, column, reason)
        if not problems.rows:
            return set(), None
        where = "item content (each item's first row): " if one_table else "item table: "
        if self.on_error == "raise":
            raise DataError(where + problems.message())
        skipped = problems.skipped()
        report_items(skipped)
        return problems.rows, skipped

    def _interactions(self, table: Table, split_column: str | None, item_of: dict[str, int], dropped: set[str],
                      items_name: str | None):
        """The good interaction rows: their indices, user ids, item indices and split codes (-1: none given)."""
        problems = Problems(table)
        rows, users, items, codes = [], [], [], []
        for row, record in enumerate(table.rows):
            user, item = category_key(record[self.user_column]), category_key(record[self.item_column])
            if user is None:
                problems.add(row, self.user_column, "empty user id")
            if item is None:
                problems.add(row, self.item_column, "empty item id")
            elif item in dropped:
                problems.add(row, self.item_column, f"item {item!r} was skipped: its content is a bad row "
                                                    f"(listed in {SKIPPED_ITEMS})")
            elif item not in item_of:
                problems.add(row, self.item_column, f"item {item!r} is not in the item table {items_name}; add it "
                                                    "there or remove the interaction")
            bad = user is None or item is None or item in dropped or item not in item_of
            code = -1
            if split_column:
                value = record[split_column]
                name = SPLIT_NAMES.get(str(value).strip().lower()) if value is not None else None
                if name is None:
                    bad = True
                    problems.add(row, split_column, f"split {value!r} is not train, val or test"
                                 if value is not None else "empty split")
                else:
                    code = SPLITS.index(name)
            if not bad:
                rows.append(row)
                users.append(user)
                items.append(item_of[item])
                codes.append(code)
        skipped = resolve(problems, self.on_error)
        if not rows:
            raise DataError(f"{table.name} has no usable interaction; fix its rows")
        return rows, users, torch.tensor(items, dtype=torch.long), torch.tensor(codes, dtype=torch.long), skipped

    def _split(self, codes: torch.Tensor, user_index: torch.Tensor, item_index: torch.Tensor,
               content_row: torch.Tensor, users: int) -> torch.Tensor:
        """0/1/2 (train/val/test) per interaction (module docstring); held-out items never train."""
        g = torch.Generator().manual_seed(self.split_seed)
        interacted = torch.unique(item_index)
        interacted = interacted[torch.argsort(content_row[interacted])]  # table order, whatever the indices
        held = torch.zeros(len(content_row), dtype=torch.bool)
        count = round(self.cold_fraction * len(interacted))
        held[interacted[torch.randperm(len(interacted), generator=g)[:count]]] = True
        on_held = held[item_index]
        split = codes.clone()
        if bool((codes < 0).any()):  # no split column: each user's other rows by the fractions
            rest = (~on_held).nonzero().flatten()
            split[rest] = per_user_split(user_index[rest], users, self.fractions, g)
        moved = on_held & (split <= 0)
        split[moved] = 1 + (torch.rand(int(moved.sum()), generator=g) < 0.5).long()
        return split

    def _modalities(self, readers: dict[str, Reader]) -> list[str]:
        ids = ["user", "item"] if self.wanted is None or "item" in self.wanted else ["user"]
        return sorted([*ids, *readers])

    def _catalogue(self, readers: dict[str, Reader], states: dict, content_row: torch.Tensor, trained: torch.Tensor,
                   modalities: list[str]) -> dict[str, torch.Tensor]:
        count = len(content_row)
        has_row = content_row >= 0
        catalogue: dict[str, torch.Tensor] = {}
        present = {"user": torch.ones(count, dtype=torch.bool), "item": torch.ones(count, dtype=torch.bool)}
        for name, reader in readers.items():
            data = reader.tensor(states[name])
            data[reader.missing] = 0
            full = torch.zeros(count, *data.shape[1:], dtype=data.dtype)
            full[has_row] = data[content_row[has_row]]
            catalogue[name] = full
            present[name] = has_row.clone()
            present[name][has_row] = ~reader.missing[content_row[has_row]]
        if "item" in modalities:
            catalogue["item"] = torch.where(trained, torch.arange(1, count + 1), 0).unsqueeze(1)
        catalogue["present"] = torch.stack([present[m] for m in modalities], 1)
        catalogue["cold"] = ~trained
        return catalogue

    def _make_spec(self, modalities: list[str], readers: dict[str, Reader], states: dict, user_vocab: int,
                   item_vocab: int, fitted: dict) -> DataSpec:
        shapes = {"user": ModalitySpec("user", "categorical", (1,), vocab_size=user_vocab),
                  "item": ModalitySpec("item", "categorical", (1,), vocab_size=item_vocab),
                  **{name: reader.spec(states[name]) for name, reader in readers.items()}}
        return DataSpec(tuple(shapes[m] for m in modalities), "recommendation", 0,
                        extra={"recommendation": {"user": "user", "item": "item" if "item" in modalities else None},
                               "fitted": fitted})


def per_user_split(users: torch.Tensor, count: int, fractions: tuple[float, ...], g: torch.Generator) -> torch.Tensor:
    """0/1/2 per row: each user's rows shuffled and cut at the fractions, from a random offset.

    Row ``r`` of a user's ``n`` shuffled rows sits at ``q = (r + u) / n`` with one ``u ~ U[0, 1)``
    per user (systematic sampling), and ``q`` falls in train, val or test by the fractions: a
    split gets ``n * fraction`` rows, rounded up or down, and no split is favoured by rounding.
    """
    order = torch.argsort(torch.rand(len(users), generator=g))
    order = order[torch.argsort(users[order], stable=True)]
    ordered = users[order]
    sizes = torch.bincount(users, minlength=count)
    starts = sizes.cumsum(0) - sizes
    rank = torch.arange(len(users)) - starts[ordered]
    offset = torch.rand(count, generator=g, dtype=torch.float64)
    position = (rank.double() + offset[ordered]) / sizes[ordered].double()
    bounds = torch.tensor([fractions[0], fractions[0] + fractions[1]], dtype=torch.float64)
    split = torch.empty_like(users)
    split[order] = torch.bucketize(position, bounds, right=True)
    return split


def describe(plan: ColumnPlan | None) -> str:
    """The item content for the log: ``text 'title', tabular ['price']``."""
    if plan is None:
        return "no item content (ids only)"
    return "item content: " + ", ".join(f"{m.kind} {m.columns[0]!r}" if m.kind in ("image", "audio", "text")
                                        else f"{m.kind} {list(m.columns)}" for m in plan.modalities)


def report_items(skipped: dict) -> None:
    """Log how many item rows a run skips and list them in the run folder's ``skipped_items.csv``."""
    folder = run_folder()
    where = ""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / SKIPPED_ITEMS
        temporary = folder / f".{SKIPPED_ITEMS}.{os.getpid()}.tmp"
        with temporary.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(skipped["header"])
            writer.writerows(skipped["rows"])
        os.replace(temporary, target)
        where = f"; listed in {target}"
    log.warning("skipped %d bad item row(s) of %d in %s%s", len(skipped["rows"]), skipped["total"], skipped["table"],
                where)
