"""``mmrun train resume=<run dir | checkpoint>``: continue a stopped run in its own folder.

The command line is rewritten before Hydra sees it: the run's own overrides (from
``<run dir>/.hydra/overrides.yaml``) compose the same config again, ``hydra.run.dir`` points
at the run's folder (so metrics.json, the log and the checkpoints land where they were), and
``resume`` names the checkpoint that ``mmrun.train`` hands to Lightning. Overrides given next
to ``resume=`` replace the run's own (e.g. ``trainer.max_epochs=10``). The run starts from
the folder it was first started in, and with the user config folders it was composed with,
so relative data paths and user presets mean what they meant then.
Imports neither torch nor Lightning.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from mmrun.errors import ConfigError
from mmrun.sweep.runs import override_key

KEY = "resume"
SEARCHPATH = "hydra.searchpath"
LAST = Path("checkpoints") / "last.ckpt"


def read_summary(run_dir: Path) -> dict:
    """A run's metrics.json as a dict; empty when missing (a killed run) or damaged."""
    with contextlib.suppress(OSError, ValueError):  # ValueError: not JSON, not UTF-8
        summary = json.loads((run_dir / "metrics.json").read_text())
        return summary if isinstance(summary, dict) else {}
    return {}


def locate(value: str) -> tuple[Path, Path]:
    """``(run dir, checkpoint)`` for ``resume=<run dir | checkpoint file>``."""
    path = Path(value).expanduser().resolve()
    if path.is_dir():
        run_dir, checkpoint = path, path / LAST
    elif path.is_file():
        run_dir, checkpoint = (path.parent.parent if path.parent.name == "checkpoints" else path.parent), path
    else:
        raise ConfigError(f"resume={value} is neither a run folder nor a checkpoint; pass the folder of a stopped "
                          f"run, e.g. resume=outputs/<date>/<time>")
    if not (run_dir / ".hydra" / "overrides.yaml").is_file():
        raise ConfigError(f"resume={value}: {run_dir} is not an mmrun run folder (no .hydra/overrides.yaml); pass "
                          f"the folder mmrun train wrote")
    if read_summary(run_dir).get("status") == "completed":
        raise ConfigError(f"resume={value}: the run in {run_dir} already completed; there is nothing to resume")
    if not checkpoint.is_file() and path.is_dir():
        from mmrun.distill.twin import stopped_twin

        checkpoint = stopped_twin(run_dir) or checkpoint  # a distillation stopped while training its scratch twin
    if not checkpoint.is_file():
        raise ConfigError(f"resume={value}: {checkpoint} does not exist; the run stopped before its first epoch "
                          f"ended (or kept no checkpoints), so start it again without resume")
    return run_dir, checkpoint


def resume_args(args: list[str], positional: list[str]) -> list[str]:
    """The command line that resumes the run named by ``resume=`` in ``args`` (unchanged without it)."""
    from omegaconf import OmegaConf

    given = [a for a in positional if override_key(a) == KEY]
    value = given[-1].split("=", 1)[1].strip("'\"") if given else ""
    if value in ("", "null"):
        return args
    if {"-m", "--multirun"} & set(args):
        raise ConfigError("resume= continues one run; to finish an interrupted sweep, run the same sweep command "
                          "again with hydra.sweep.dir=<its folder>: finished jobs are reused, stopped ones resume")
    run_dir, checkpoint = locate(value)
    ours = {override_key(a) for a in positional if override_key(a) != KEY}
    saved = [str(o) for o in OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")]
    kept = [o for o in saved if override_key(o) not in ours and override_key(o) != KEY]
    overrides = [a for a in positional if a not in given]
    flags = [a for a in args if a not in positional]  # Hydra's flags (and their values) come before overrides
    hydra = _hydra_record(run_dir)
    _start_where_it_started(hydra)
    folders, searchpath = _config_folders(hydra, args)
    extra = [] if any(a.startswith("hydra.run.dir=") for a in args) else [f'hydra.run.dir="{run_dir}"']
    return [*flags, *folders, *searchpath, *kept, *overrides, f'{KEY}="{checkpoint}"', *extra]


def _hydra_record(run_dir: Path):
    """The run's .hydra/hydra.yaml (where it started, its config folders), empty when missing."""
    from omegaconf import OmegaConf

    path = run_dir / ".hydra" / "hydra.yaml"
    return OmegaConf.load(path) if path.is_file() else OmegaConf.create({})


def _config_folders(hydra, args: list[str]) -> tuple[list[str], list[str]]:
    """The user config folders the run was composed with, as ``--config-dir`` flags and
    ``hydra.searchpath`` overrides, unless the command line names its own: the same overrides
    need the same folders."""
    from omegaconf import OmegaConf

    folders, searchpath = [], []
    if not {"--config-dir", "-cd"} & set(args) and not any(a.startswith("--config-dir=") for a in args):
        sources = OmegaConf.select(hydra, "hydra.runtime.config_sources", default=None) or []
        folders = [arg for source in sources if source.get("provider") == "command-line"
                   and source.get("schema") == "file" for arg in ("--config-dir", str(source.path))]
    if not any(override_key(a) == SEARCHPATH for a in args):
        recorded = OmegaConf.select(hydra, "hydra.overrides.hydra", default=None) or []
        searchpath = [str(o) for o in recorded if override_key(str(o)) == SEARCHPATH]
    return folders, searchpath


def _start_where_it_started(hydra) -> None:
    """Change to the folder the run was started in (Hydra records it), if it still exists."""
    from omegaconf import OmegaConf

    started = OmegaConf.select(hydra, "hydra.runtime.cwd", default=None)
    if started and Path(started).is_dir() and Path(started).resolve() != Path.cwd().resolve():
        print(f"mmrun: resuming in {started}, the folder the run was started in", file=sys.stderr)
        os.chdir(started)
