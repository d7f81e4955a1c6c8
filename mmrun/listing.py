"""`mmrun list [GROUP] [--config-dir DIR]`: the options of config groups with their one-line
descriptions, mmrun's own and (with ``--config-dir``/``-cd``) those of a user's config folder.

Descriptions are the first comment line of each option's YAML file, so the listing, the
configs and (for fusions) the registry cannot disagree: a test checks that every fusion
YAML names its registered class. Reads YAML only; imports neither torch nor Lightning.
"""

from __future__ import annotations

import difflib

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mmrun.config_check import (config_dir_arg, config_roots, defaults_groups, description, group_options,
                                user_searchpath)
from mmrun.errors import ConfigError


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
        for option in groups[group]:
            table.add_row(escape(option), escape(description(roots, group, option)))
        console.print(table)
    return 0
