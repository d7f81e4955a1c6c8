"""Fusion function classes: what each fusion declares, the equivalences shown numerically,
the torch-free reading of the declarations, `mmrun list fusion` and the sweep report's marks."""

from __future__ import annotations

import csv
import inspect
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import compose_train
from rich.console import Console
from test_fusion import CONF, DIMS3, encode, random_present
from test_sweep_report import fake_run

from mmrun.config_check import conf_dir
from mmrun.fusion import FUSIONS
from mmrun.fusion.bilinear import MFBFusion, MFHFusion
from mmrun.fusion.elementwise import SumFusion, WeightedFusion
from mmrun.fusion.late import LateFusion
from mmrun.fusion_classes import FusionClass, fusion_class
from mmrun.listing import function_classes
from mmrun.sweep.report import write_report

ALL = torch.ones(5, 3, dtype=torch.bool)


def target(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_every_fusion_declares_its_class_and_the_torch_free_reader_agrees(name: str) -> None:
    cls = FUSIONS[name]
    assert "equivalence" in vars(cls) and cls.equivalence, "declared in the class's own body"
    assert fusion_class(target(cls)) == FusionClass(cls.equivalence, cls.equivalent_over)
    assert set(cls.equivalent_over) <= set(inspect.signature(cls.__init__).parameters)


def test_only_verified_equivalences_are_declared() -> None:
    members: dict[str, set[str]] = {}
    for name, cls in FUSIONS.items():
        members.setdefault(cls.equivalence, set()).add(name)
    assert {c: m for c, m in members.items() if len(m) > 1} == {"sum": {"sum", "weighted"}}
    assert FUSIONS["late"].equivalent_over == ("combine",)
    assert fusion_class("my_project.fusions.Mine") is None


def test_weighted_is_sum_with_the_weights_folded_into_the_projections() -> None:
    torch.manual_seed(0)
    weighted, plain = WeightedFusion(DIMS3, hidden=5).eval(), SumFusion(DIMS3, hidden=5).eval()
    with torch.no_grad():
        weighted.logits.copy_(torch.tensor([0.3, -1.0, 2.0]))
        w = torch.softmax(weighted.logits, 0)
        for i, m in enumerate(DIMS3):
            plain.project.linears[m].weight.copy_(w[i] * weighted.project.linears[m].weight)
            plain.project.linears[m].bias.copy_(w[i] * weighted.project.linears[m].bias)
        encoded = encode(DIMS3, 5)
        torch.testing.assert_close(plain(encoded, ALL), weighted(encoded, ALL))
        # Only with every modality present: weighted renormalises over the modalities present.
        present = random_present(5, 3)
        assert not torch.allclose(plain(encoded, present), weighted(encoded, present))


def test_late_combinations_are_one_class_when_every_modality_is_present() -> None:
    fusions = {
        c: LateFusion(DIMS3, num_outputs=4, combine=c).eval() for c in ("mean", "weighted", "poe")
    }
    encoded = encode(DIMS3, 5)
    with torch.no_grad():
        fusions["weighted"].weight_logits.copy_(torch.tensor([0.5, -0.2, 1.0]))
        w = torch.softmax(fusions["weighted"].weight_logits, 0)
        reference = fusions["mean"](encoded, ALL)
        # Fold each combination's constant weight into the last linear layer of each head.
        for combine, scale in (("poe", torch.full((3,), 1 / 3)), ("weighted", 1 / (3 * w))):
            fusions[combine].heads.load_state_dict(fusions["mean"].heads.state_dict())
            for i, head in enumerate(fusions[combine].heads.values()):
                head[-1].weight.mul_(scale[i])
                head[-1].bias.mul_(scale[i])
            torch.testing.assert_close(fusions[combine](encoded, ALL), reference)


def test_mfh_of_order_one_is_mfb() -> None:
    torch.manual_seed(0)
    mfb, mfh = (
        MFBFusion(DIMS3, out=6, factor=3).eval(),
        MFHFusion(DIMS3, out=6, factor=3, order=1).eval(),
    )
    mfh.load_state_dict(mfb.state_dict())  # the same parameters, of the same shapes
    encoded, present = encode(DIMS3, 5), random_present(5, 3)
    with torch.no_grad():
        torch.testing.assert_close(mfh(encoded, present), mfb(encoded, present))


def test_list_fusion_shows_the_classes() -> None:
    shown = function_classes([conf_dir()], sorted(FUSIONS))
    assert shown["sum"] == shown["weighted"] == "sum (sum = weighted)"
    assert shown["late"] == "late, any fusion.combine"
    assert shown["mfb"] == "mfb" and shown["product"] == "product"


def test_list_and_report_stay_torch_free() -> None:
    code = (
        "import sys\n"
        "from mmrun.listing import main\n"
        "from mmrun.sweep.report import write_report\n"
        "main(['fusion'])\n"
        "assert 'torch' not in sys.modules and 'pytorch_lightning' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "sum (sum = weighted)" in result.stdout


def job(folder, overrides: list[str], fusion: str, value: float, seed: int) -> None:
    """A fake run whose saved config names the fusion's class, as mmrun train saves it."""
    fake_run(folder, [*overrides, f"seed={seed}"], value, seed)
    config = {"seed": seed, "fusion": yaml.safe_load((CONF / f"{fusion}.yaml").read_text())}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))


def test_report_marks_rows_of_one_class_in_every_format(tmp_path) -> None:
    root = tmp_path / "sweep"
    number = 0
    for fusion, value in (("sum", 0.90), ("weighted", 0.91), ("late", 0.92)):
        for seed in (1, 2):
            job(root / str(number), [f"fusion={fusion}"], fusion, value + seed / 100, seed)
            number += 1
    console = Console(record=True, width=200)
    comparison = write_report([root], tmp_path / "report", console=console)
    (shared,) = comparison.shared_classes
    assert shared.name == "sum" and {row.settings["fusion"] for row in shared.rows} == {
        "sum",
        "weighted",
    }
    markdown = (tmp_path / "report" / "comparison.md").read_text()
    assert "| weighted† |" in markdown and "| sum† |" in markdown and "| late |" in markdown
    assert "† fusion=weighted; fusion=sum: one function class (sum)" in markdown
    with (tmp_path / "report" / "comparison.csv").open() as handle:
        rows = {r["fusion"]: r["shared function class"] for r in csv.DictReader(handle)}
    assert rows == {"weighted": "† sum", "sum": "† sum", "late": ""}
    terminal = console.export_text()
    assert "weighted†" in terminal and "one function class (sum)" in terminal


def test_report_marks_late_combinations_but_not_widths_of_one_fusion(tmp_path) -> None:
    root = tmp_path / "sweep"
    settings = [
        ("late", ["fusion=late", "fusion.combine=mean"]),
        ("late", ["fusion=late", "fusion.combine=poe"]),
        ("sum", ["fusion=sum", "fusion.hidden=64"]),
        ("sum", ["fusion=sum", "fusion.hidden=128"]),
    ]
    for number, (fusion, overrides) in enumerate(settings):
        job(root / str(number), overrides, fusion, 0.9 + number / 100, 1)
    comparison = write_report([root], tmp_path / "report", console=Console(record=True))
    assert [(s.name, len(s.rows)) for s in comparison.shared_classes] == [("late", 2)]
    assert {row.settings["fusion.combine"] for row in comparison.shared_classes[0].rows} == {
        "mean",
        "poe",
    }


def test_mcb_sketch_seed_follows_the_run_seed_unless_set() -> None:
    assert compose_train(["fusion=mcb", "seed=7"]).fusion.seed == 7
    assert compose_train(["fusion=mcb", "seed=7", "fusion.seed=3"]).fusion.seed == 3
