"""User features of recommendation data: profile columns read once per user.

The user side of a two-tower recommender can read more than the user id: features such as
age, country or a short bio, so that users with few interactions, and users new at ``mmrun
eval``, are ranked from what is known of them (Yi et al., "Sampling-Bias-Corrected Neural
Modeling for Large Corpus Item Recommendations", RecSys 2019: towers of id and feature
embeddings on both sides). They come from a user table (``dataset.users``: one row per user,
its id in ``user_column``; the feature columns inferred as ``dataset=manifest`` infers them,
or named by ``dataset.user_columns``), or from each user's first row of the interactions table,
where ``dataset.user_columns`` must name them (there a column could as well describe the item).

Their modalities are named with the prefix ``user_`` (numbers ``age``, ``income`` ->
``user_tabular``; categories -> ``user_categorical``; a text column ``bio`` -> ``user_bio``),
so they never clash with item content. Images and audio are item content only. The
preprocessing is fitted on the users with a training interaction; a user without a row in
the user table has absent features with ``dataset.allow_missing=true``, and is otherwise a bad
interaction (stop, or skip with ``on_error=skip``).
"""

from __future__ import annotations

from typing import Any

import torch

from mmrun.data.columns import ColumnPlan, Modality, infer_kind, plan_columns
from mmrun.data.entity_content import check_content, entity_ids, first_rows, fit_states, gather, read_content
from mmrun.data.spec import ModalitySpec
from mmrun.data.table import Table, read_table
from mmrun.errors import ConfigError, DataError

PREFIX = "user_"
SKIPPED_USERS = "skipped_users.csv"
FILE_KINDS = ("image", "audio")


def prefixed(modality: Modality) -> Modality:
    """The user feature's modality name: ``user_<name>`` (kept when it already has the prefix)."""
    name = modality.name if modality.name.startswith(PREFIX) else PREFIX + modality.name
    return Modality(name, modality.kind, modality.columns)


class UserFeatures:
    """The users' content table, its modalities and readers (module docstring).

    Built by ``read``; ``plan`` holds the features used (``dataset.modalities`` picks) and
    ``found`` all those of the data; ``rows`` maps a user id to its content row (bad rows left out).
    """

    def __init__(self, table: Table, keys: list[str], plan: ColumnPlan | None, found: ColumnPlan, source: str,
                 options: dict, cache, allow_missing: bool, on_error: str) -> None:
        self.table, self.plan, self.found, self.source = table, plan, found, source
        self.readers = read_content(table, plan, options, cache)
        where = "user table: " if source == "table" else "user features (each user's first row): "
        self.bad, self.skipped = check_content(table, self.readers, allow_missing, on_error, where, SKIPPED_USERS)
        self.dropped = {keys[row] for row in self.bad}
        self.rows = {key: row for row, key in enumerate(keys) if row not in self.bad}

    @classmethod
    def read(cls, interactions: Table, users: str | None, columns: dict | None, user_column: str,
             id_columns: set[str], wanted: list[str] | None, fitted: dict | None, options: dict, cache,
             allow_missing: bool, on_error: str) -> "UserFeatures | None":
        """The user features of the data; None when it has none.

        ``users``: the user table's path (checked), or None to read ``columns`` from the
        interactions table; ``id_columns``: the interactions table's id and split columns;
        ``fitted``: a checkpoint's user feature state (``state``) to apply.
        """
        if fitted is not None:
            if not fitted.get("columns"):  # the checkpoint's model reads no user feature
                return None
        elif users is None and not columns:
            return None
        if users is not None:
            table = read_table(users)
            if user_column not in table.columns:
                raise DataError(f"{table.name} has no user id column {user_column!r} (dataset.user_column, the same "
                                f"name as in the interactions table); its columns are {table.columns}")
            keys, source = entity_ids(table, user_column, "user", "users"), "table"
        else:
            table, keys = first_rows(interactions, user_column)
            source = "interactions"
        if fitted is not None:
            found = _fitted_plan(table, fitted)
        else:
            found = _plan(table, columns, user_column, id_columns if source == "interactions" else set())
        picked = tuple(m for m in found.modalities if wanted is None or m.name in wanted)
        plan = ColumnPlan(picked, None, None) if picked else None
        return cls(table, keys, plan, found, source, options, cache, allow_missing, on_error)

    @property
    def names(self) -> list[str]:
        """Every user feature modality of the data, used or not."""
        return [m.name for m in self.found.modalities]

    @property
    def columns(self) -> set[str]:
        """The interactions table's columns that are user features (none when they come from a user table)."""
        if self.source != "interactions":
            return set()
        return {column for m in self.found.modalities for column in m.columns}

    def problem(self, user: str) -> str | None:
        """Why an interaction of ``user`` cannot be used (None: it can)."""
        if user in self.dropped:
            return f"user {user!r} was skipped: its features are a bad row (listed in {SKIPPED_USERS})"
        if user not in self.rows and self.source == "table":
            return (f"user {user!r} is not in the user table {self.table.name}; add it there, or set "
                    "dataset.allow_missing=true to leave its features absent")
        return None

    def content_rows(self, user_ids: list[str]) -> torch.Tensor:
        """Each user's content row (-1: none)."""
        return torch.tensor([self.rows.get(user, -1) for user in user_ids], dtype=torch.long)

    def tensors(self, content_row: torch.Tensor, trained: torch.Tensor, states: dict | None
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
        """Per-user feature tensors and present flags, and the preprocessing state (fitted on the
        ``trained`` users' rows unless ``states`` is given)."""
        if states is None:
            rows = content_row[trained & (content_row >= 0)]
            states = fit_states(self.readers, rows)
        tensors, present = gather(self.readers, states, content_row)
        return tensors, present, states

    def specs(self, states: dict) -> dict[str, ModalitySpec]:
        return {name: reader.spec(states[name]) for name, reader in self.readers.items()}

    def state(self, states: dict) -> dict[str, Any]:
        """What a checkpoint keeps to read the same features from new tables."""
        return {"columns": self.plan.to_state() if self.plan else None, "preprocess": states}


def _plan(table: Table, columns: dict | None, user_column: str, id_columns: set[str]) -> ColumnPlan:
    """The data's feature modalities (prefixed), inferred or as ``dataset.user_columns`` names them."""
    if columns:
        named = {c for names in columns.values() for c in ([names] if isinstance(names, str) else names or [])}
        clash = sorted(named & (id_columns | {user_column}))
        if clash:
            raise ConfigError(f"dataset.user_columns names {clash}, the id or split column(s); list only user "
                              "feature columns")
    elif not any(infer_kind(c, [r[c] for r in table.rows if r[c] is not None])
                 for c in table.columns if c != user_column):
        raise DataError(f"{table.name} has no user feature column (numbers, categories or text besides "
                        f"{user_column!r}); name them with dataset.user_columns={{tabular: [age], categorical: "
                        "[country]}}, or set dataset.users=null")
    plan = plan_columns(table, columns, label_column=user_column, split_column=None, modalities=None,
                        read_label=False)
    files = [m.columns[0] for m in plan.modalities if m.kind in FILE_KINDS]
    if files:
        raise ConfigError(f"user feature column(s) {files} hold images or audio, which only items can have; "
                          "name the user feature columns with dataset.user_columns={tabular: [...], text: ...}")
    return ColumnPlan(tuple(prefixed(m) for m in plan.modalities), None, None, plan.ignored)


def _fitted_plan(table: Table, fitted: dict) -> ColumnPlan:
    """A checkpoint's feature modalities, checked against the new table's columns."""
    plan = ColumnPlan.from_state(fitted["columns"])
    absent = [c for m in plan.modalities for c in m.columns if c not in table.columns]
    if absent:
        raise DataError(f"{table.name} lacks the user feature column(s) {absent} that the checkpoint's model reads; "
                        f"its columns are {table.columns}. Rename its columns as in training")
    return ColumnPlan(plan.modalities, None, None)
