"""Check command-line overrides before anything heavy runs, with fixes in the messages.

Hydra already refuses unknown keys and options; this module turns its refusals into one
line that names the bad key or option, suggests the closest valid name and shows the fix.
The options are mmrun's own (``conf/``) and those of the user's config folders on the command
line (``--config-dir``/``-cd`` and ``hydra.searchpath``), found in the same order as Hydra does.
``check_config`` then refuses values of the wrong type or out of range in the composed
config (the rules are in ``mmrun.config_schema``). It imports Hydra but neither torch nor
Lightning, so a typo is answered in well under a second.
"""

from __future__ import annotations

import difflib
import os
import re
from importlib import resources
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from mmrun.errors import ConfigError

HYDRA_KEY = "hydra"
SEARCHPATH = "hydra.searchpath"


def conf_dir() -> Path:
    """The folder of YAML configs: inside the installed package, or the checkout's conf/."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise ConfigError(f"mmrun's configs are missing (looked in {package / 'conf'}); reinstall mmrun")


def group_options(*roots: Path) -> dict[str, list[str]]:
    """Every config group (``fusion``, ``encoder/text``, ...) with its option names.

    ``roots``: config folders, mmrun's own (the default) first; a later folder adds its options
    (and groups) after those of the earlier ones.
    """
    groups: dict[str, list[str]] = {}
    for root in roots or (conf_dir(),):
        for file in sorted(root.rglob("*.yaml")):
            group = file.parent.relative_to(root).as_posix()
            if group != "." and not group.startswith(HYDRA_KEY) and file.stem not in groups.get(group, []):
                groups.setdefault(group, []).append(file.stem)
    return groups


def option_file(roots: list[Path], group: str, option: str) -> Path:
    """An option's YAML file in the first of ``roots`` that has the option, as Hydra would pick it."""
    return next(r / group / f"{option}.yaml" for r in roots if (r / group / f"{option}.yaml").is_file())


def description(roots: list[Path], group: str, option: str) -> str:
    """The first sentence of the first comment block of an option's YAML file (its description)."""
    sentence: list[str] = []
    for line in option_file(roots, group, option).read_text().splitlines():
        text = line.strip()
        if not text.startswith("#") or text.startswith("# @package"):
            if sentence:  # the block ended before a full stop
                break
            continue
        sentence.append(text.lstrip("# ").strip())
        if sentence[-1].endswith("."):
            break
    return " ".join(sentence)


def config_dir_arg(args: list[str]) -> tuple[str | None, list[str]]:
    """The folder of ``--config-dir DIR``/``-cd DIR``, read by Hydra's own parser, and the
    positional arguments (then any it does not know)."""
    from hydra._internal.utils import get_args_parser

    known, unknown = get_args_parser().parse_known_args(args)
    return known.config_dir, [*known.overrides, *unknown]


def user_searchpath(config_dir: str | None, overrides: list) -> list[str]:
    """The config folders a command line adds to Hydra's search path, in Hydra's order:
    ``--config-dir`` (as ``file://<absolute path>``), then a ``hydra.searchpath=[...]`` override's."""
    if config_dir and not os.path.isdir(config_dir):
        raise ConfigError(f"--config-dir {config_dir} is not a folder (looked in {os.path.abspath(config_dir)})")
    entries = [f"file://{os.path.abspath(config_dir)}"] if config_dir else []
    for override in overrides:
        if override.key_or_group == SEARCHPATH:  # Hydra reads the first one
            value = override.value()
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{SEARCHPATH} must be a list of config folders, "
                                  f"e.g. {SEARCHPATH}=[file://$PWD/myconf]")
            return entries + value
    return entries


def searchpath_folder(entry: str) -> Path | None:
    """The folder of a search path entry: ``file://path`` (or a bare path; relative to the working
    folder) or ``pkg://package`` (a folder inside an installed package); None for other sources."""
    scheme, found, where = entry.partition("://")
    if not found:
        scheme, where = "file", entry
    if scheme == "file":
        folder = Path(where)
    elif scheme == "pkg":
        try:
            folder = Path(str(resources.files(where.replace("/", ".").rstrip("."))))
        except ModuleNotFoundError:
            raise ConfigError(f"{SEARCHPATH} entry {entry}: no installed package {where!r}") from None
    else:
        return None
    if not folder.is_dir():
        raise ConfigError(f"{SEARCHPATH} entry {entry} is not a folder (looked in {folder.resolve()})")
    return folder


def config_roots(searchpath: list[str]) -> list[Path]:
    """mmrun's config folder, then the folders of the user's search path (``user_searchpath``)."""
    return [conf_dir(), *filter(None, map(searchpath_folder, searchpath))]


def searchpath_override(entries: list[str]) -> str:
    """``hydra.searchpath=[...]`` for ``entries``, written so Hydra reads them back unchanged."""
    from hydra.core.override_parser.types import Quote, QuotedString

    return f"{SEARCHPATH}=[{','.join(QuotedString(entry, Quote.single).with_quotes() for entry in entries)}]"


def defaults_groups(config_name: str) -> set[str]:
    """Groups named in the primary config's defaults list (``+group=x`` is refused for them)."""
    primary = OmegaConf.load(conf_dir() / f"{config_name}.yaml")
    names = set()
    for entry in primary.get("defaults", []):
        if isinstance(entry, DictConfig):
            for key in entry:
                if not str(key).startswith("override "):
                    names.add(str(key).lstrip("/"))
    return names


def _closest(word: str, candidates: list[str]) -> str:
    match = difflib.get_close_matches(word, candidates, n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else ""


def normalise_overrides(args: list[str], config_name: str) -> list[str]:
    """Turn ``+group=option`` into ``group=option`` when the group is already in the defaults.

    Hydra refuses to append a group that the primary config already selects; users of
    ``+fusion=attention`` (the usual Hydra idiom for optional groups) mean "select". Appends
    of keys (``+fusion.some_key=1``) and of groups outside the defaults stay untouched.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    in_defaults = defaults_groups(config_name)
    result = []
    for arg in args:
        if arg.startswith("+") and not arg.startswith("++") and "=" in arg:
            try:
                override = parser.parse_override(arg)
            except Exception:  # left for Hydra to report with its own message
                result.append(arg)
                continue
            if override.key_or_group in in_defaults and override.package is None:
                arg = arg[1:]
        result.append(arg)
    return result


def _value_choices(override) -> list[str]:
    """The option names an override selects (several for a sweep)."""
    if override.is_sweep_override():
        if override.value_type.name == "GLOB_CHOICE_SWEEP":
            return []
        values = list(override.sweep_iterator())
    else:
        values = [override.value()]
    # A list selects several options of one group at once (logger=[csv,tensorboard]).
    return [str(v) for value in values for v in (value if isinstance(value, list) else [value])]


def _job_overrides(overrides, multirun: bool) -> list[list[str]]:
    """Override lists to compose: one per position of the longest sweep (covers every value)."""
    choices = []
    for o in overrides:
        if o.is_sweep_override() and multirun:
            values = _value_choices(o)
            choices.append([f"{o.input_line.split('=', 1)[0]}={v}" for v in values] or [None])
        else:
            choices.append([o.input_line])
    jobs = max((len(c) for c in choices), default=1)
    return [[c[i % len(c)] for c in choices if c[i % len(c)] is not None] for i in range(jobs)]


def check_overrides(args: list[str], config_name: str, multirun: bool, config_dir: str | None = None) -> None:
    """Compose the config for the given overrides and raise ``ConfigError`` on any mistake.

    The options of the user's config folders (``config_dir``: ``--config-dir``, and a
    ``hydra.searchpath`` override's) are valid choices next to mmrun's own.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException, MissingConfigException

    parser = OverridesParser.create()
    overrides = []
    for arg in args:
        try:
            overrides.append(parser.parse_override(arg))
        except HydraException as error:
            first = str(error).strip().splitlines()[0]
            raise ConfigError(f"cannot read override {arg!r}: {first}. Overrides look like key=value") from None
    searchpath = user_searchpath(config_dir, overrides)
    user = [o for o in overrides if not o.key_or_group.startswith(HYDRA_KEY)]
    groups = group_options(*config_roots(searchpath))
    extra = [searchpath_override(searchpath)] if searchpath else []
    for o in user:
        if o.key_or_group in groups and not o.is_delete():
            for value in _value_choices(o):
                if value not in groups[o.key_or_group]:
                    options = groups[o.key_or_group]
                    raise ConfigError(
                        f"{value!r} is not an option of {o.key_or_group}{_closest(value, options) or '.'} "
                        f"Options: {', '.join(options)}"
                    )
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3", job_name="check"):
        for job in _job_overrides(user, multirun):
            job = [*job, *extra]
            try:
                compose(config_name=config_name, overrides=job)
            except MissingConfigException as error:
                raise ConfigError(str(error).strip().splitlines()[0]) from None
            except HydraException as error:
                raise _explain(error, job, config_name, groups) from None
    GlobalHydra.instance().clear()


def _explain(error: Exception, job: list[str], config_name: str, groups: dict[str, list[str]]) -> ConfigError:
    """Turn Hydra's 'Key ... is not in struct' and similar into a one-line fix (``groups``: the valid options)."""
    from hydra import compose

    text = f"{error}\n{error.__cause__ or ''}"
    missing = re.search(r"Could not override '([^']+)'", text) or re.search(r"Could not append to config\. An item is already at '([^']+)'", text)
    key = missing.group(1) if missing else None
    if key and ("not in struct" in text or "To append to your config" in text):
        parent, _, leaf = key.rpartition(".")
        groups_only = [o for o in job if o.split("=", 1)[0].lstrip("+~") in (*groups, SEARCHPATH)]
        base = compose(config_name=config_name, overrides=groups_only)
        node = OmegaConf.select(base, parent) if parent else base
        siblings = [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []
        if not parent:
            siblings += list(groups)
        valid = f" Valid keys{' under ' + parent if parent else ''}: {', '.join(sorted(set(siblings)))}." if siblings else ""
        return ConfigError(
            f"unknown config key {key!r}{_closest(leaf, siblings)}{valid} "
            f"To add a new key on purpose, write +{key}=..."
        )
    if key and "already at" in text:
        return ConfigError(f"{key!r} is already in the config; set it with {key}=... instead of +{key}=...")
    first = next((line for line in text.splitlines() if line.strip()), text)
    return ConfigError(first.strip())


def leaves(node: DictConfig, prefix: str = ""):
    """``(dotted key, value)`` of every leaf, resolved; ``???`` and unresolvable values are left out."""
    for key in node:
        path = f"{prefix}{key}"
        if path == HYDRA_KEY or OmegaConf.is_missing(node, key):
            continue
        try:  # an interpolation such as ${hydra:runtime.output_dir} resolves only inside a run
            value = node[key]
            value = OmegaConf.to_container(value, resolve=True) if isinstance(value, ListConfig) else value
        except InterpolationResolutionError:
            continue
        if isinstance(value, DictConfig):
            yield from leaves(value, f"{path}.")
        else:
            yield path, value


def check_config(cfg: DictConfig, command: str) -> None:
    """Raise ``ConfigError`` for the first value of the wrong type or out of range.

    The rules are ``mmrun.config_schema.SCHEMA[command]``, checked in its order (so ``seed=abc``
    is reported as ``seed``, not as ``dataset.seed`` that copies it); keys the composed config
    lacks are skipped. Imports neither torch nor Lightning.
    """
    from mmrun.config_schema import SCHEMA, matches

    values = dict(leaves(cfg))
    unchecked = dict(values)
    for pattern, entry in SCHEMA[command].items():
        for key in [k for k in unchecked if matches(pattern, k)]:
            value = unchecked.pop(key)
            rule = entry.pick(values)
            if not rule.accepts(value):
                raise ConfigError(rule.refusal(key, value))
