"""The wheel carries every subpackage and the configs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def listed_packages() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^packages = \[(.*?)\]", text, re.S | re.M).group(1)
    return set(re.findall(r'"([^"]+)"', block))


def test_every_subpackage_is_in_the_wheel():
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "mmrun").rglob("__init__.py")
    }
    assert found <= listed_packages(), f"add to pyproject packages: {sorted(found - listed_packages())}"
    assert "mmrun.conf" in listed_packages()
