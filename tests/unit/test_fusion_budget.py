"""fusion.param_budget: every fusion scales its own knob so that fusion + head land within 5%
of the budget; out-of-reach budgets are refused with the range; +sweep=fusions_fair sets one
budget; the sweep report points out parameter counts that differ by more than 10%."""

from __future__ import annotations

import inspect
import json
import logging

import pytest
from conftest import compose_train
from omegaconf import OmegaConf
from rich.console import Console
from test_fusion import CONF
from test_sweep_report import fake_run

from mmrun.config_check import check_config
from mmrun.data.spec import DataSpec, ModalitySpec
from mmrun.errors import ConfigError
from mmrun.fusion import FUSIONS
from mmrun.fusion.budget import TOLERANCE, build_fusion, fit, parameters
from mmrun.sweep.report import write_report
from mmrun.tasks.prediction import PredictionTask

DIMS = {"image": 128, "text": 128, "audio": 128}
SPEC = DataSpec((ModalitySpec("tabular", "tabular", (4,)),), "multiclass", 10)
BUDGET = 250_000


def fusion_config(name: str, budget: int | None):
    """The packaged config of a fusion, as composed inside a run config (``${seed}`` resolves)."""
    fusion = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))
    return OmegaConf.create({"seed": 1, "fusion": {**fusion, "param_budget": budget}}).fusion


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_fusion_and_head_land_within_five_percent_of_the_budget(name: str, caplog) -> None:
    cls = FUSIONS[name]
    assert cls.budget_knob in inspect.signature(cls.__init__).parameters
    with caplog.at_level(logging.INFO, logger="mmrun.fusion.budget"):
        task = PredictionTask(SPEC, DIMS, fusion_config(name, BUDGET))
    total = parameters(task.fusion) + parameters(task.head)
    assert abs(total - BUDGET) <= TOLERANCE * BUDGET
    assert f"fusion={name}: {cls.budget_knob}=" in caplog.text


def test_no_budget_builds_the_configured_sizes() -> None:
    fusion = build_fusion(fusion_config("sum", None), DIMS)
    assert fusion.out_dim == 128


def test_an_out_of_reach_budget_names_the_smallest_and_largest() -> None:
    for budget in (10, 10**9):
        with pytest.raises(
            ConfigError,
            match=r"out of reach for fusion=mcb .* hold [\d,]+ \(dim=1\) to "
            r"[\d,]+ \(dim=4096\) parameters",
        ):
            PredictionTask(SPEC, DIMS, fusion_config("mcb", budget))


def test_a_knob_too_coarse_for_five_percent_is_refused() -> None:
    with pytest.raises(ConfigError, match="cannot come within 5% .* heads=10 gives 1,000"):
        fit(lambda value: 100 * value, 1_400, 10, "fusion=x", "heads", "chunks")
    assert fit(lambda value: 100 * value, 1_480, 1, "fusion=x", "width", None) == 15


def test_fusions_fair_sweeps_every_fusion_at_one_budget() -> None:
    overrides = ["+sweep=fusions_fair", "fusion=mult"]
    assert compose_train(overrides, with_hydra=True).hydra.sweeper.params == {
        "fusion": "glob(*)",
        "seed": "1,2,3",
    }
    cfg = compose_train(overrides)
    assert cfg.fusion.param_budget == BUDGET
    check_config(cfg, "train")  # the key has a type rule
    with pytest.raises(ConfigError, match="fusion.param_budget"):
        check_config(compose_train(["fusion=sum", "fusion.param_budget=-3"]), "train")


def test_report_points_out_parameter_counts_more_than_ten_percent_apart(tmp_path) -> None:
    lines = {}
    for spread in (1.05, 1.5):
        root = tmp_path / str(spread)
        for number, (fusion, count) in enumerate((("sum", 1000), ("gated", int(1000 * spread)))):
            folder = fake_run(
                root / str(number), [f"fusion={fusion}", "seed=1"], 0.9 - number / 10, 1
            )
            summary = json.loads((folder / "metrics.json").read_text())
            summary["parameters"]["total"] = count
            (folder / "metrics.json").write_text(json.dumps(summary))
        write_report([root], root / "report", console=Console(record=True))
        lines[spread] = (root / "report" / "comparison.md").read_text()
    assert "parameter counts differ" not in lines[1.05]
    assert (
        "parameter counts differ by more than 10% between configurations (1,000 to 1,500)"
        in lines[1.5]
    )
