"""The function class a fusion declares, read without importing torch.

Every registered fusion declares in its class body ``equivalence``, the function class it
computes when every modality is present, and may declare ``equivalent_over``, the options
that leave that class unchanged (see ``mmrun.fusion.base``). `mmrun list fusion` and the
sweep report need them but must not import torch, which importing ``mmrun.fusion`` does; so
this module reads the two literals from the fusion's source file. A test checks, for every
registered fusion, that what it reads equals the imported class attributes.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE = "mmrun.fusion"
SOURCE = Path(__file__).resolve().parent / "fusion"


@dataclass(frozen=True)
class FusionClass:
    """A fusion's function class (``name``) and the options that keep it (``keeps``)."""

    name: str
    keeps: tuple[str, ...] = ()


@cache
def fusion_class(target: str) -> FusionClass | None:
    """The class declared by the fusion that ``_target_`` names; None for a fusion outside
    ``mmrun.fusion`` (a user's own) or one that declares none."""
    module, _, name = target.rpartition(".")
    package, _, file = module.rpartition(".")
    path = SOURCE / f"{file}.py"
    if package != PACKAGE or not path.is_file():
        return None
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            declared = {
                assigned.id: ast.literal_eval(statement.value)
                for statement in node.body
                if isinstance(statement, ast.Assign)
                for assigned in statement.targets
                if isinstance(assigned, ast.Name)
                and assigned.id in ("equivalence", "equivalent_over")
            }
            if "equivalence" in declared:
                return FusionClass(
                    declared["equivalence"], tuple(declared.get("equivalent_over", ()))
                )
    return None
