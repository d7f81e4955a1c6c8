"""`mmrun list [GROUP] [--config-dir DIR]`: the options of config groups with their one-line
descriptions, mmrun's own and (with ``--config-dir``/``-cd``) those of a user's config folder.

Descriptions are the first comment line of each option's YAML file, so the listing, the
configs and (for fusions) the registry cannot disagree: a test checks that every fusion
YAML names its registered class. Fusions also show the function class they declare
(``mmrun.fusion_classes``), so options that compute the same functions read as one.
Reads YAML and source text only; imports neither torch nor Lightning.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mmrun.config_check import (config_dir_arg, config_roots, defaults_groups, description, group_options,
                                option_file, user_searchpath)
from mmrun.errors import ConfigError
from mmrun.fusion_classes import fusion_class

FUSION_GROUP = "fusion"
CLASS_CAPTION = ("function class: what the fusion can compute when every modality is present; options in one "
                 "class are the same functions, differently parametrised, so gaps between them are noise")


def main(args: list[str]) -> int:
    config_dir, args = config_dir_arg(args)
    roots = config_roots(user_searchpath(config_dir, []))
    groups = group_options(*roots)
    wanted = args or list(groups)
    for group in wanted:
        if group not in groups:
            match = difflib.get_close_matches(group, list(groups), n=1)
            hint = f"; did you mean {match[0]!r}?" if match else ""
            raise ConfigError(f"no config group {group!r}{hint} Groups: {', '.join(groups)}")
    console = Console()
    selected = defaults_groups("train")  # groups train.yaml selects; others are added with +group=
    for group in wanted:
        choose = f"{group}=<name>" if group in selected else f"+{group}=<name>"
        table = Table(title=f"{group} (choose with {choose})", title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("description")
        classes = function_classes(roots, groups[group]) if group == FUSION_GROUP else None
        if classes:
            table.add_column("function class")
            table.caption, table.caption_justify = CLASS_CAPTION, "left"
        for option in groups[group]:
            extra = [escape(classes.get(option, ""))] if classes else []
            table.add_row(escape(option), escape(description(roots, group, option)), *extra)
        console.print(table)
    return 0


def function_classes(roots: list[Path], options: list[str]) -> dict[str, str]:
    """Each fusion option's declared function class, naming the other options in it
    (``sum = weighted``) and the options that keep it (``late, any fusion.combine``)."""
    declared = {}
    for option in options:
        target = (yaml.safe_load(option_file(roots, FUSION_GROUP, option).read_text()) or {}).get("_target_", "")
        if (found := fusion_class(str(target))) is not None:
            declared[option] = found
    shown = {}
    for option, found in declared.items():
        members = [other for other, same in declared.items() if same.name == found.name]
        text = found.name + (f" ({' = '.join(members)})" if len(members) > 1 else "")
        shown[option] = text + "".join(f", any fusion.{key}" for key in found.keeps)
    return shown
