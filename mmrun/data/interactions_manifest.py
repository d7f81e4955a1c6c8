"""``dataset=interactions_manifest``: recommendation data from your own tables.

Two tables, read with ``mmrun.data.table`` (CSV, TSV, JSONL or Parquet):

* ``path``, the interactions: one row per user-item positive, with a user id column
  (``user_column``) and an item id column (``item_column``), optionally a ``split`` column
  (train/val/test); other columns are ignored when there is an item table;
* ``items`` (optional), the item table: one row per item, its id in ``item_column`` and its
  content: text, numbers, categories, image and audio paths (relative to the table's folder).
  Without it, the content columns of the interactions table are the item content, read from
  each item's first row (a column whose value changes within an item is logged);
* ``users`` (optional), the user table: one row per user, its id in ``user_column`` and
  feature columns (numbers, categories, text), or ``user_columns`` naming feature columns of
  the interactions table (``mmrun.data.user_features``: modalities named ``user_*``).

The build, in order: read the tables; decide the content columns' roles as ``dataset=manifest``
does (``mmrun.data.columns``: inferred, or ``dataset.columns``); read the content once per item
with the manifest's readers (``mmrun.data.modalities``: images and audio decoded once through
``mmrun.data.cache``); check every item and interaction (``mmrun.data.validation``: stop with
one message listing the bad rows, or skip them with ``on_error=skip``); split the interactions;
fit the content preprocessing (vocabularies, statistics, categories) on the items seen in
training; make the tensors of the ``InteractionsDataModule`` contract
(``mmrun.data.interactions``). Both content sides share ``mmrun.data.entity_content``. The
whole result is cached, keyed by the tables' bytes and every setting, so a second identical
run loads it.

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
``rankings.csv``. ``user_features`` holds each user's feature tensors by user index.

The fitted state (``spec.extra["fitted"]``: user and item ids, which items were trained on,
column roles, vocabularies and statistics) travels in the checkpoint, and
``InteractionsManifestDataModule(..., fitted=state)`` applies it to other tables (``mmrun eval
ckpt_path=... dataset.path=new.csv``): known users and items keep their indices, new ones are
appended with id 0 (new users are ranked from their features, when the model reads any), and
items the checkpoint never trained on are cold.
"""

from __future__ import annotations

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
from mmrun.data.manifest import OPTION_TYPES, SPLIT_NAMES, plain
from mmrun.data.entity_content import (check_content, entity_ids, first_rows, fit_states, gather, read_content,
                                       without_columns)
from mmrun.data.modalities import Reader
from mmrun.data.preprocess import make_options
from mmrun.data.preprocess.tabular import category_key
from mmrun.data.spec import DataSpec, ModalitySpec
from mmrun.data.table import FORMATS, Table, read_table
from mmrun.data.tensor_datamodule import SPLITS
from mmrun.data.user_features import SKIPPED_USERS, UserFeatures
from mmrun.data.validation import ON_ERROR, Problems, report_skipped, require_every_split, resolve
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
        users: the user table (null: no user features, or ``user_columns`` of the interactions table).
        user_column, item_column: the id columns (the item and user tables use them too).
        columns: ``{kind: column or [columns]}`` of the item content (null = infer).
        user_columns: ``{kind: column or [columns]}`` of the user features (null = infer from the
            user table; without one, name them to read them from the interactions table).
        split_column: ``auto`` (a column named ``split`` if there is one), a column, or null.
        splits: train/val/test fractions of each user's interactions without a split column.
        split_seed: seed of that split and of the choice of cold items.
        cold_items: fraction of the items with interactions held out of training.
        modalities: null (user, item, all content and user features) or a list holding ``user``.
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
        users: str | None = None,
        user_column: str = "user",
        item_column: str = "item",
        columns: dict[str, Any] | None = None,
        user_columns: dict[str, Any] | None = None,
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
        self.users = str(users) if users else None
        self.user_column, self.item_column = user_column, item_column
        self.columns = columns
        self.user_columns = user_columns
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
        self.user_features: dict[str, torch.Tensor] = {}
        self.row_ids: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ build
    def build(self):
        interactions = self._table_path(self.path, "path", "interactions_file")
        items = self._table_path(self.items, "items", "items_file") if self.items else None
        users = self._table_path(self.users, "users", "users_file") if self.users else None
        key = None
        if self.cache.folder is not None:
            tables = [[os.path.realpath(p), file_digest(p)] for p in (interactions, items, users) if p]
            key = cache_key({"prepared interactions": tables, "settings": self._settings()})
        payload = self._load(key)
        if payload is None:
            payload = self._prepare(interactions, items, users)
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
        self.user_features = payload["user_features"]
        return payload["splits"], spec, self.catalogue

    def _table_path(self, path: str, key: str, fitted_key: str) -> str:
        """The table's path, checked; a checkpoint's own relative path also resolves where training ran."""
        if self.fitted and path == self.fitted.get(key) and not Path(path).expanduser().exists():
            path = self.fitted[fitted_key]
        file = Path(path).expanduser()
        what = {"path": "interactions table", "items": "item table", "users": "user table"}[key]
        if file.suffix.lower() not in FORMATS:
            raise DataError(f"dataset.{key}={path!r} has an unknown extension; use a .csv, .tsv, .jsonl or .parquet "
                            f"{what}")
        if not file.is_file():
            fix = {"path": "", "items": ", or dataset.items=null to read item content from the interactions table",
                   "users": ", or dataset.users=null for users without features"}[key]
            raise DataError(f"dataset.{key}={path!r} does not exist (looked in {file.resolve().parent}); pass the "
                            f"{what}'s path{fix}")
        return str(file)

    def _use_options(self, saved: dict[str, dict]) -> None:
        self.options.update({kind: make_options(CONTENT_OPTIONS[kind], values, kind) for kind, values in saved.items()})

    def _settings(self) -> dict[str, Any]:
        """Every setting the build reads besides the tables and their files (the prepared-cache key)."""
        return {"path": self.path, "items": self.items, "users": self.users, "user_column": self.user_column,
                "item_column": self.item_column, "columns": plain(self.columns),
                "user_columns": plain(self.user_columns), "split_column": self.split_column,
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
        """Log and list the skipped items, users and interactions (``on_error=skip``)."""
        for part, listing in (("items", SKIPPED_ITEMS), ("users", SKIPPED_USERS)):
            if skipped.get(part):
                report_skipped(skipped[part], listing)
        if skipped.get("interactions"):
            report_skipped(skipped["interactions"])

    # ---------------------------------------------------------------- prepare
    def _prepare(self, interactions: str, items: str | None, users: str | None) -> dict[str, Any]:
        table = read_table(interactions)
        for column, key in ((self.user_column, "user_column"), (self.item_column, "item_column")):
            if column not in table.columns:
                raise DataError(f"{table.name} has no {key.split('_')[0]} id column {column!r} (dataset.{key}); its "
                                f"columns are {table.columns}: set dataset.{key}=<one of them>")
        split_column = self._split_column(table)
        skipped: dict[str, Any] = {}
        features = UserFeatures.read(
            table, users, self.user_columns, self.user_column,
            {self.item_column, *([split_column] if split_column else [])}, self.wanted,
            self.fitted.get("user_features") if self.fitted else None, self.options, self.cache, self.allow_missing,
            self.on_error)
        if features is not None:
            skipped["users"] = features.skipped
        item_table = self._item_table(items) if items else None
        if item_table:
            content, content_keys = item_table, entity_ids(item_table, self.item_column, "item", "items")
        else:  # each item's first row of the interactions table, without the user feature columns
            content, content_keys = first_rows(without_columns(table, features.columns if features else set()),
                                               self.item_column)

        plan = self._plan(content, split_column, item_table is None, features.names if features else [])
        if plan and self.fitted is None:  # auto image/audio settings from the headers of the item files
            self.options = infer_file_options(self.options, content, plan.modalities, list(range(len(content.rows))))
        readers = read_content(content, plan, self.options, self.cache)
        if plan and item_table is None:
            self._warn_varying(table, plan)
        where = "item content (each item's first row): " if item_table is None else "item table: "
        bad_items, skipped["items"] = check_content(content, readers, self.allow_missing, self.on_error, where,
                                                    SKIPPED_ITEMS)

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

        rows, row_users, item_index, split_codes, skipped["interactions"] = self._interactions(
            table, split_column, item_of, dropped, item_table.name if item_table else None, features)
        known_users = list(self.fitted["user_ids"]) if self.fitted else []
        old = set(known_users)
        user_ids = known_users + [u for u in dict.fromkeys(row_users) if u not in old]
        user_of = {u: i for i, u in enumerate(user_ids)}
        user_index = torch.tensor([user_of[u] for u in row_users], dtype=torch.long)

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

        modalities = self.fitted["modalities"] if self.fitted else self._modalities(readers, features)
        train_rows = content_row[trained & (content_row >= 0)]  # the content of the items seen in training
        states = self.fitted["preprocess"] if self.fitted else fit_states(readers, train_rows)
        catalogue = self._catalogue(readers, states, content_row, trained, modalities)
        user_features, user_present, user_state = self._user_features(features, user_ids, user_index[split == 0],
                                                                      modalities)
        lines = torch.tensor(table.lines, dtype=torch.long)[torch.tensor(rows, dtype=torch.long)]
        splits, row_ids = {}, {}
        for code, name in enumerate(SPLITS):
            chosen = (split == code).nonzero().flatten()
            users_of_split = user_index[chosen]
            items_of_split = item_index[chosen]
            known_user = users_of_split < len(known_users) if self.fitted else torch.ones_like(chosen, dtype=torch.bool)
            splits[name] = {"user": torch.where(known_user, users_of_split + 1, 0).unsqueeze(1),
                            "user_index": users_of_split, "item_index": items_of_split, "label": items_of_split.clone(),
                            "present": catalogue["present"][items_of_split] & user_present[users_of_split]}
            row_ids[name] = lines[chosen]

        fitted = self.fitted or {
            "version": FITTED_VERSION, "kind": FITTED_KIND, "path": self.path,
            "interactions_file": str(Path(interactions).resolve()), "items": self.items,
            "items_file": str(Path(items).resolve()) if items else None, "users": self.users,
            "users_file": str(Path(users).resolve()) if users else None, "modalities": modalities,
            "user_ids": user_ids, "item_ids": catalogue_ids, "warm": trained.tolist(),
            "columns": plan.to_state() if plan else None, "preprocess": states, "user_features": user_state,
            "options": {kind: asdict(self.options[kind]) for kind in ("image", "audio")},
        }
        user_specs = features.specs(user_state["preprocess"]) if user_state else {}
        spec = self._make_spec(modalities, {**{n: r.spec(states[n]) for n, r in readers.items()}, **user_specs},
                               sorted(user_specs), len(fitted["user_ids"]) + 1, len(fitted["item_ids"]) + 1, fitted)
        cold = catalogue["cold"]
        log.info("interactions %s: %d rows (train %d, val %d, test %d), %d users, %d items (%d cold); %s%s",
                 table.name, len(rows), sizes["train"], sizes["val"], sizes["test"], len(user_ids), len(catalogue_ids),
                 int(cold.sum()), describe(plan), f"; user features {sorted(user_features)}" if user_features else "")
        files = [fingerprint for reader in readers.values() for fingerprint in reader.inputs()]
        return {"splits": splits, "catalogue": catalogue, "user_features": user_features, "spec": spec.to_dict(),
                "user_names": user_ids, "item_names": catalogue_ids, "row_ids": row_ids, "skipped": skipped,
                "files": json.dumps(files)}

    def _user_features(self, features: UserFeatures | None, user_ids: list[str], trained_users: torch.Tensor,
                       modalities: list[str]) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict | None]:
        """Each user's feature tensors (by user index), a ``[U, M]`` present mask (True but for absent
        features) and the features' state for the checkpoint (None: the model reads none)."""
        present = torch.ones(len(user_ids), len(modalities), dtype=torch.bool)
        if features is None or features.plan is None:
            return {}, present, None
        trained = torch.zeros(len(user_ids), dtype=torch.bool)
        trained[trained_users] = True
        saved = self.fitted["user_features"]["preprocess"] if self.fitted else None
        tensors, flags, states = features.tensors(features.content_rows(user_ids), trained, saved)
        for name, flag in flags.items():
            present[:, modalities.index(name)] = flag
        return tensors, present, features.state(states)

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

    def _plan(self, content: Table, split_column: str | None, one_table: bool,
              user_features: list[str]) -> ColumnPlan | None:
        """The content columns' roles (None: no content), as ``dataset=manifest`` decides them;
        ``user_features`` are the data's user feature modalities, which ``dataset.modalities`` may name."""
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
        content_wanted = None if self.wanted is None else [m for m in self.wanted
                                                           if m not in ID_MODALITIES and m not in user_features]
        if content_wanted == []:
            return None
        candidates = [c for c in content.columns if c not in ids]
        if not self.columns and not any(infer_kind(c, [r[c] for r in content.rows if r[c] is not None])
                                        for c in candidates):
            if content_wanted:
                raise ConfigError(f"dataset.modalities={self.wanted} names content {content_wanted}, but "
                                  f"{content.name} has no content column; its modalities are "
                                  f"{sorted([*ID_MODALITIES, *user_features])}")
            return None
        plan = plan_columns(content, self.columns, label_column=self.item_column,
                            split_column=split_column if one_table else None, modalities=None,
                            group_column=self.user_column if one_table else None, read_label=False)
        names = [m.name for m in plan.modalities]
        clash = sorted(set(names) & {*RESERVED, *user_features})
        if clash:
            raise DataError(f"{content.name}: content modality name(s) {clash} clash with the id modalities or batch "
                            f"keys; rename the column(s), or choose the content with dataset.columns")
        if content_wanted is not None:
            missing = sorted(set(content_wanted) - set(names))
            if missing:
                raise ConfigError(f"dataset.modalities={self.wanted} names {missing}, which the data lacks; its "
                                  f"modalities are {sorted([*ID_MODALITIES, *names, *user_features])}")
            plan = ColumnPlan(tuple(m for m in plan.modalities if m.name in content_wanted), None, None, plan.ignored)
        return plan

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

    def _interactions(self, table: Table, split_column: str | None, item_of: dict[str, int], dropped: set[str],
                      items_name: str | None, features: UserFeatures | None):
        """The good interaction rows: their indices, user ids, item indices and split codes (-1: none given)."""
        problems = Problems(table)
        rows, users, items, codes = [], [], [], []
        for row, record in enumerate(table.rows):
            user, item = category_key(record[self.user_column]), category_key(record[self.item_column])
            unusable_user = features.problem(user) if features is not None and user is not None else None
            if user is None:
                problems.add(row, self.user_column, "empty user id")
            elif unusable_user and not (self.allow_missing and user not in features.dropped):
                problems.add(row, self.user_column, unusable_user)
                user = None
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

    def _modalities(self, readers: dict[str, Reader], features: UserFeatures | None) -> list[str]:
        ids = ["user", "item"] if self.wanted is None or "item" in self.wanted else ["user"]
        users = [m.name for m in features.plan.modalities] if features is not None and features.plan else []
        return sorted([*ids, *readers, *users])

    @staticmethod
    def _catalogue(readers: dict[str, Reader], states: dict, content_row: torch.Tensor, trained: torch.Tensor,
                   modalities: list[str]) -> dict[str, torch.Tensor]:
        """The item catalogue (``mmrun.data.interactions``); its present mask is True for user-side modalities."""
        catalogue, flags = gather(readers, states, content_row)
        if "item" in modalities:
            catalogue["item"] = torch.where(trained, torch.arange(1, len(content_row) + 1), 0).unsqueeze(1)
        catalogue["present"] = torch.stack([flags.get(m, torch.ones(len(content_row), dtype=torch.bool))
                                            for m in modalities], 1)
        catalogue["cold"] = ~trained
        return catalogue

    @staticmethod
    def _make_spec(modalities: list[str], content: dict[str, ModalitySpec], user_features: list[str],
                   user_vocab: int, item_vocab: int, fitted: dict) -> DataSpec:
        """The data spec: the id modalities, and the item content and user features (``content``)."""
        shapes = {"user": ModalitySpec("user", "categorical", (1,), vocab_size=user_vocab),
                  "item": ModalitySpec("item", "categorical", (1,), vocab_size=item_vocab), **content}
        return DataSpec(tuple(shapes[m] for m in modalities), "recommendation", 0,
                        extra={"recommendation": {"user": "user", "item": "item" if "item" in modalities else None,
                                                  "user_features": user_features},
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
