"""`mmrun compare DIR [DIR ...] [group_by=[k,...]] [metric=val/x] [mode=max|min] [output=DIR]`.

Builds the sweep comparison report for any set of run or sweep folders. It reads only what
runs leave behind (metrics.json, metrics.csv, .hydra/*.yaml, and robustness.json and
contribution.json where the runs ran the analysis), never a checkpoint, so it is fast and
works on folders copied from a cluster. Imports neither torch nor Lightning.
"""

from __future__ import annotations

import difflib
from datetime import datetime
from pathlib import Path

from mmrun.errors import ConfigError

USAGE = ("usage: mmrun compare DIR [DIR ...] [group_by=[fusion,encoder/text]] [metric=val/acc] [mode=max|min] "
         "[output=DIR]")
OPTIONS = ("group_by", "metric", "mode", "output")


def _list(text: str) -> list[str]:
    """``[fusion,encoder/text]`` or ``fusion,encoder/text`` -> ``["fusion", "encoder/text"]``."""
    inner = text.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    return [part.strip() for part in inner.split(",") if part.strip()]


def parse(args: list[str]) -> tuple[list[Path], dict[str, str]]:
    """Split the arguments into folders and ``key=value`` options, refusing unknown keys."""
    folders, options = [], {}
    for arg in args:
        if "=" not in arg:
            folders.append(Path(arg))
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+")
        if key not in OPTIONS:
            match = difflib.get_close_matches(key, OPTIONS, n=1)
            hint = f"; did you mean {match[0]!r}?" if match else ""
            raise ConfigError(f"unknown compare option {key!r}{hint} Options: {', '.join(OPTIONS)}. {USAGE}")
        options[key] = value
    if not folders:
        raise ConfigError(f"mmrun compare needs at least one run or sweep folder. {USAGE}")
    return folders, options


def main(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        print(__doc__.split("\n\n", 1)[1].strip())
        return 0 if args else 2
    from mmrun.paths import check_writable
    from mmrun.sweep.report import write_report

    folders, options = parse(args)
    output = Path(options.get("output") or Path("outputs") / "compare" / datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f"))
    check_writable(str(output), "output")
    write_report(
        folders,
        output,
        group_by=_list(options["group_by"]) if "group_by" in options else None,
        metric=options.get("metric") or None,
        mode=options.get("mode") or None,
    )
    return 0
