"""`mmrun compare` argument handling (the report itself is tested in test_sweep_report.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrun.compare import _list, main, parse
from mmrun.errors import ConfigError


def test_folders_and_options_are_separated():
    folders, options = parse(["a", "b/c", "group_by=[fusion,encoder/text]", "metric=val/f1_macro", "output=o"])
    assert folders == [Path("a"), Path("b/c")]
    assert options == {"group_by": "[fusion,encoder/text]", "metric": "val/f1_macro", "output": "o"}
    assert _list("[fusion,encoder/text]") == ["fusion", "encoder/text"]
    assert _list("fusion") == ["fusion"]
    assert _list("[]") == []


def test_unknown_option_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'group_by'"):
        parse(["dir", "groupby=[fusion]"])


def test_folders_are_required():
    with pytest.raises(ConfigError, match="at least one run or sweep folder"):
        parse(["metric=val/acc"])


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    assert "mmrun compare DIR" in capsys.readouterr().out

