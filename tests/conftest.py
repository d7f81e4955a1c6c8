"""Shared fixtures: a tiny synthetic datamodule and helpers to run the CLI as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Small, fast settings every end-to-end run uses unless a test says otherwise.
TINY = [
    "dataset.size=400",
    "trainer.max_epochs=2",
    "trainer.accelerator=cpu",
    "progress=plain",
    "baseline=none",  # the classical baseline has its own tests (tests/e2e/test_quality_defaults.py)
]


def run_mmrun(args: list[str], cwd: Path, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed ``mmrun`` console script in ``cwd`` and capture its output."""
    environment = dict(os.environ, **(env or {}))
    environment.pop("HYDRA_FULL_ERROR", None) if not env or "HYDRA_FULL_ERROR" not in env else None
    exe = Path(sys.executable).with_name("mmrun")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment)


def run_dirs(root: Path) -> list[Path]:
    """Run folders (those holding a metrics.json) below ``root``."""
    return sorted(p.parent for p in root.rglob("metrics.json"))


def compose_train(overrides: list[str], with_hydra: bool = False):
    """The composed ``mmrun train`` config for some overrides (``with_hydra``: with its ``hydra`` node)."""
    from hydra import compose, initialize_config_dir

    from mmrun.config_check import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=with_hydra)


def without_run_nodes(cfg):
    """A composed train config without the nodes that need a Hydra run (callbacks, loggers)."""
    from omegaconf import open_dict

    with open_dict(cfg):
        del cfg["callbacks"], cfg["logger"]
    return cfg


def save_untrained_checkpoint(path: Path, overrides: list[str]) -> Path:
    """An mmrun checkpoint of an untrained model of ``mmrun train <overrides>``, as mmrun train writes it."""
    import torch
    from hydra.utils import instantiate

    from mmrun.model import MultimodalModule

    cfg = without_run_nodes(compose_train(overrides))
    datamodule = instantiate(cfg.dataset)
    datamodule.setup()
    model = MultimodalModule(cfg, datamodule.spec)
    checkpoint = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture
def tiny_data():
    from mmrun.data.synthetic import SyntheticDataModule

    datamodule = SyntheticDataModule(size=200, batch_size=32)
    datamodule.setup()
    return datamodule


@pytest.fixture(scope="module")
def small_data():
    """64 built-in samples in batches of 16, shared by a module's tests."""
    from mmrun.data.synthetic import SyntheticDataModule

    datamodule = SyntheticDataModule(size=64, batch_size=16)
    datamodule.setup()
    return datamodule
