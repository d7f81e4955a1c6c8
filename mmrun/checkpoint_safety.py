"""What a checkpoint may hold before anything is built from it.

A checkpoint is read with ``torch.load(weights_only=True)``, so unpickling runs no code, but
the model and the data are then rebuilt from the config stored inside it, through Hydra's
``instantiate``: it imports and calls whatever ``_target_`` names, with arguments that may be
``_target_`` nodes in turn. A crafted config could chain harmless-looking callables
(``builtins.list`` over ``pathlib.Path.write_text`` and ``numpy.load(allow_pickle=True)``) into
running a command. So the stored config is checked first, against mmrun's own YAML configs
(conf/**/*.yaml, read once per process), and a checkpoint is refused when it has:

- a ``_target_`` that is not a string, or not one of the targets conf/ puts at that key path
  (``encoder.text`` may name a packaged text encoder, ``fusion`` a packaged fusion, ...);
- a ``_target_`` nested in the arguments of another (Hydra would build it first);
- a Hydra special key (``_args_``, ``_partial_``, ``_recursive_``, ``_convert_``, any
  ``_name_``) other than exactly what conf/ gives that target (``_convert_: all`` on the
  manifest dataset);
- a string holding ``${``: stored configs were resolved when saved, and resolving one again
  would run OmegaConf resolvers (``oc.env``, mmrun's own);
- a key that is not a string, a value that is not plain YAML (None, bool, number, string,
  list, mapping), nesting deeper than ``MAX_DEPTH``, or no ``encoder``/``fusion``/``task``/
  ``dataset`` mapping.

Nothing named in the checkpoint is imported to check it (importing is running code): targets
are compared as strings.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from typing import Any, Iterator

import yaml

from mmrun.errors import CheckpointError
from mmrun.model import CHECKPOINT_KEY

TARGET = "_target_"
SPECIAL_KEY = re.compile(r"_\w*_")  # Hydra's instantiate keys (_target_, _args_, _partial_, ...)
SECTIONS = ("encoder", "fusion", "task", "dataset")  # what rebuilding the model and its data reads
MAX_DEPTH = 32  # mmrun's configs nest 4 levels; a deeper one is crafted
PLAIN = (str, int, float, bool, type(None))
KeyPath = tuple[str | int, ...]  # a key path in a config: ("encoder", "text", "extra")


def is_special(key: Any) -> bool:
    """Whether ``key`` is one of Hydra's ``_name_`` keys other than ``_target_``."""
    return isinstance(key, str) and key != TARGET and SPECIAL_KEY.fullmatch(key) is not None


def show(path: KeyPath) -> str:
    """``("dataset", "splits", 0)`` -> ``dataset.splits[0]``."""
    text = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")
    return text or "<root>"


# Targets that earlier releases' conf/ put at a key and today's no longer does, so that their
# checkpoints still load: Lightning's own callbacks, before mmrun's tie-break subclasses.
FORMER_TARGETS: dict[KeyPath, dict[str, tuple]] = {
    ("callbacks", "model_checkpoint"): {"pytorch_lightning.callbacks.ModelCheckpoint": ()},
    ("callbacks", "early_stopping"): {"pytorch_lightning.callbacks.EarlyStopping": ()},
}


@functools.lru_cache(maxsize=1)
def registered_targets() -> dict[KeyPath, dict[str, tuple[tuple[str, Any], ...]]]:
    """Key path -> each ``_target_`` that mmrun's configs put there (or earlier releases',
    ``FORMER_TARGETS``) -> its other special keys.

    The hydra/ group and ``hydra`` nodes configure Hydra itself and never reach a checkpoint.
    """
    from mmrun.config_check import HYDRA_KEY, conf_dir

    root = conf_dir()
    found: dict[KeyPath, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for file in sorted(root.rglob("*.yaml")):
        group = file.parent.relative_to(root).parts
        if group[:1] == (HYDRA_KEY,):
            continue
        text = file.read_text()
        top = {k: v for k, v in (yaml.load(text, Loader=loader) or {}).items() if k not in ("defaults", HYDRA_KEY)}
        is_global = re.search(r"^#\s*@package\s+_global_\s*$", text, re.MULTILINE)
        nodes = [(() if is_global else group, top)]
        while nodes:
            path, node = nodes.pop()
            if TARGET in node:
                found[path][node[TARGET]].update((k, v) for k, v in node.items() if is_special(k))
            nodes += [((*path, k), v) for k, v in node.items() if isinstance(v, dict)]
    for path, targets in FORMER_TARGETS.items():
        found[path].update(targets)
    return {path: {target: tuple(special) for target, special in targets.items()} for path, targets in found.items()}


def check_checkpoint(checkpoint: Any, source: str) -> None:
    """Raise ``CheckpointError`` unless ``checkpoint`` is an mmrun checkpoint safe to rebuild.

    ``source`` names the checkpoint in the message (``checkpoint 'best.ckpt'``).
    """
    if not isinstance(checkpoint, dict) or CHECKPOINT_KEY not in checkpoint or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{source} was not written by mmrun train (no config or data spec inside); point ckpt_path "
            f"at a checkpoint from an mmrun run folder"
        )
    entry = checkpoint[CHECKPOINT_KEY]
    if not (isinstance(entry, dict) and all(isinstance(entry.get(key), dict) for key in ("config", "spec"))):
        raise CheckpointError(
            f"{source} was not loaded: its '{CHECKPOINT_KEY}' entry lacks the config or the data spec "
            f"that mmrun train stores; the file is damaged or was edited"
        )
    if not isinstance(checkpoint["state_dict"], dict):
        raise CheckpointError(f"{source} was not loaded: its state_dict is not a mapping of weights")
    problem = config_problem(entry["config"])
    if problem:
        raise CheckpointError(
            f"{source} was not loaded: {problem} (a checkpoint's config may name only mmrun's own "
            f"components, at the keys where conf/ puts them)"
        )


def config_problem(config: dict[str, Any]) -> str | None:
    """Why ``config`` must not be instantiated, or None when it is safe to."""
    missing = [s for s in SECTIONS if not isinstance(config.get(s), dict)]
    if missing:
        return f"its config has no {missing[0]} section"
    return next(_problems(config, (), None), None)


def _problems(value: Any, path: KeyPath, owner: KeyPath | None) -> Iterator[str]:
    """Every reason to refuse ``value`` at ``path``; ``owner`` is the enclosing ``_target_`` node."""
    if len(path) > MAX_DEPTH:
        yield f"config key {show(path)} is nested deeper than {MAX_DEPTH} levels"
    elif isinstance(value, str):
        if "${" in value:
            yield f"config key {show(path)} holds an interpolation {value[:80]!r}"
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _problems(item, (*path, index), owner)
    elif isinstance(value, dict):
        yield from _node_problems(value, path, owner)
    elif not isinstance(value, PLAIN):
        yield f"config key {show(path)} holds a {type(value).__name__}, not a plain config value"


def _node_problems(node: dict, path: KeyPath, owner: KeyPath | None) -> Iterator[str]:
    """The reasons to refuse a mapping: its keys, its ``_target_`` and special keys, then its values."""
    for key in node:
        if not isinstance(key, str):
            yield f"config key {show(path)} has a key that is not a string ({key!r})"
        elif "${" in key:
            yield f"config key {show(path)} has an interpolation as a key ({key[:80]!r})"
    special = {k: v for k, v in node.items() if is_special(k)}
    if TARGET in node:
        target = node[TARGET]
        allowed = registered_targets().get(path, {})
        if not isinstance(target, str):
            yield f"config key {show(path)} has a _target_ that is not a string ({type(target).__name__})"
        elif owner is not None:
            yield f"config key {show(path)} nests _target_ {target!r} in the arguments of {show(owner)}"
        elif target not in allowed:
            yield f"config key {show(path)} names _target_ {target!r}, not an mmrun component for that key"
        else:
            special = {k: v for k, v in special.items() if (k, v) not in allowed[target]}
        owner = path
    for key, value in special.items():
        yield f"config key {show((*path, key))} is Hydra's special key {key} ({value!r:.80})"
    for key, value in node.items():
        yield from _problems(value, (*path, key), owner)
