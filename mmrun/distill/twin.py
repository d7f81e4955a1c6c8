"""``distill.scratch=train``: the scratch student, trained first in the run's ``scratch/`` folder.

The gap a distillation recovers, ``(distilled - scratch) / (teacher - scratch)``, needs the
same student trained without its teacher. With ``distill.scratch=train`` a distillation run
trains that twin first: the run's own config with ``distill.losses=[]`` (labels only, the
teacher measured beside it), the same seed and data, in ``<run>/scratch/``, a run folder of
its own (metrics.json, checkpoints, curves). The twin writes to no experiment tracker and
fits no classical baseline or analysis; ``mmrun compare <run>`` finds both runs and pairs them
as a distillation sweep would. A twin that already finished (a resumed run) is not retrained;
one that was stopped resumes from its own ``last.ckpt`` (``mmrun train resume=<run>``, or a
sweep run again).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

TRAIN = "train"
FOLDER = "scratch"
_RUN_PATH = re.compile(r"\$\{mmrun\.run_path:([^}]*)\}")


def wants_twin(cfg: DictConfig) -> bool:
    """Whether this run is a distillation that trains its own scratch student."""
    distill = cfg.get("distill")
    return bool(distill) and bool(distill.get("losses")) and distill.get("scratch") == TRAIN


def twin_config(cfg: DictConfig, twin_dir: Path) -> DictConfig:
    """The run's (unresolved) config for its scratch twin: no distillation loss, paths inside
    ``twin_dir`` instead of the run folder, no trackers, no analysis; it resumes from its own
    ``last.ckpt`` when a stopped run left one."""
    container = OmegaConf.to_container(cfg, resolve=False)
    container["distill"].update(losses=[], scratch=None)
    last = last_checkpoint(twin_dir)
    container.update(logger={}, analysis=None, resume=str(last) if last.is_file() else None)
    return OmegaConf.create(_in_folder(container, twin_dir))


def last_checkpoint(twin_dir: Path) -> Path:
    return twin_dir / "checkpoints" / "last.ckpt"


def stopped_twin(run_dir: Path) -> Path | None:
    """The ``last.ckpt`` of a run's scratch twin that stopped before finishing (None: no such twin)."""
    twin_dir = run_dir / FOLDER
    last = last_checkpoint(twin_dir)
    return last if last.is_file() and not finished(twin_dir) else None


def twin_overrides(overrides: list[str]) -> list[str]:
    """The twin's command-line overrides, as a sweep's scratch job would have them."""
    kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in ("distill.losses", "distill.scratch")]
    return [*kept, "distill.losses=[]"]


def finished(twin_dir: Path) -> bool:
    """A twin that completed earlier (its metrics.json says so)."""
    try:
        return json.loads((twin_dir / "metrics.json").read_text()).get("status") == "completed"
    except (OSError, ValueError):
        return False


def _in_folder(node, folder: Path):
    """``node`` with every ``${mmrun.run_path:X}`` made ``<folder>/X``."""
    if isinstance(node, dict):
        return {key: _in_folder(value, folder) for key, value in node.items()}
    if isinstance(node, list):
        return [_in_folder(value, folder) for value in node]
    if isinstance(node, str):
        return _RUN_PATH.sub(lambda match: "/".join(p for p in (str(folder), match.group(1)) if p), node)
    return node
