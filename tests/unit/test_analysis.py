"""mmrun.analysis on real models: exactness at p = 0, Shapley properties, files and refusals."""

import csv
import json
import math

import pytest
import pytorch_lightning as pl
import torch
from conftest import compose_train
from omegaconf import OmegaConf

from mmrun.analysis.contribution import contribution, shapley_values, subset_values
from mmrun.analysis.evaluation import Evaluator, monitored_metric
from mmrun.analysis.robustness import (
    effective_robustness,
    relative_robustness,
    robustness_curves,
)
from mmrun.analysis.run import analyse, load_baseline, selected
from mmrun.data.loader import TensorBatchLoader
from mmrun.data.spec import DataSpec, ModalitySpec
from mmrun.errors import AnalysisError
from mmrun.model import MultimodalModule

N, CLASSES = 200, 4


@pytest.fixture(scope="module")
def oracle():
    """A model that reads the class from modality ``a`` alone and ignores ``b`` (hand-set weights)."""
    spec = DataSpec((ModalitySpec("a", "features", (CLASSES,)), ModalitySpec("b", "features", (CLASSES,))),
                    "multiclass", CLASSES, tuple(f"c{k}" for k in range(CLASSES)))
    cfg = compose_train(["encoder.features.out_dim=4", "fusion.hidden=0", "task.head_hidden=8", "task.dropout=0"])
    model = MultimodalModule(cfg, spec).eval()
    with torch.no_grad():
        for encoder in model.encoders.values():
            encoder.project[0].weight.copy_(torch.eye(CLASSES))
            encoder.project[0].bias.zero_()
        first, last = model.task.head[0], model.task.head[-1]
        first.weight.copy_(torch.eye(8))
        first.bias.zero_()
        last.weight.zero_()
        last.weight[:, :CLASSES] = torch.eye(CLASSES)  # logits = GELU(a): b has no path to the output
        last.bias.zero_()
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, CLASSES, (N,), generator=g)
    tensors = {"a": 5.0 * torch.nn.functional.one_hot(label, CLASSES).float(), "b": torch.randn(N, CLASSES, generator=g),
               "label": label, "present": torch.ones(N, 2, dtype=torch.bool)}
    return model, tensors


@pytest.fixture(scope="module")
def synthetic_model(tmp_path_factory):
    """The default (untrained) model on a tiny built-in dataset, four modalities of four kinds."""
    from mmrun.data.synthetic import SyntheticDataModule

    data = SyntheticDataModule(size=400, batch_size=32, missing_rate=0.2)
    data.setup()
    pl.seed_everything(0, verbose=False)
    model = MultimodalModule(compose_train(["encoder.image.channels=[8]", "encoder.text.hidden=16"]), data.spec)
    with torch.no_grad():  # larger logits: an untrained model whose predictions vary with every input
        model.task.head[-1].weight.mul_(100.0)
    return model.eval(), data.splits["test"]


def save(model, path):
    """A checkpoint as mmrun train writes it (the config keys the model is built from)."""
    cfg = OmegaConf.masked_copy(model.cfg, ["seed", "encoder", "dataset", "fusion", "task", "model", "monitor",
                                            "monitor_mode", "optimizer", "scheduler"])
    torch.save({"state_dict": model.state_dict(), "mmrun": {"schema": 2, "spec": model.spec.to_dict(),
                                                            "config": OmegaConf.to_container(cfg, resolve=True)}}, path)
    return path


def options(**extra):
    base = {"robustness": True, "contribution": True, "levels": [0.0, 0.5, 1.0], "repeats": 2, "seed": 0,
            "baseline": None}
    return OmegaConf.create({**base, **extra})


def test_a_model_using_one_modality_gets_all_the_shapley_mass_and_falls_to_chance_without_it(oracle):
    model, tensors = oracle
    evaluator = Evaluator(model, tensors, batch_size=64)
    assert evaluator.clean == 1.0
    result = contribution(evaluator, repeats=2, seed=0, memo={})
    chance = float((tensors["label"] == 0).float().mean())  # zero logits: argmax picks class 0
    assert result["empty"] == pytest.approx(chance) and result["full"] == 1.0
    assert result["modalities"]["a"]["shapley"] == pytest.approx(1.0 - chance)
    assert result["modalities"]["b"]["shapley"] == pytest.approx(0.0, abs=1e-12)
    assert result["modalities"]["a"]["shapley_share"] == pytest.approx(1.0)
    assert result["modalities"]["b"]["permutation"] == 0.0 and result["modalities"]["a"]["permutation"] > 0.5
    curves = robustness_curves(evaluator, [0.0, 0.5, 1.0], repeats=2, seed=0, memo={})
    assert curves.means("a", "missing")[-1] == pytest.approx(chance)  # falls to chance when it is missing
    for corruption in ("missing", "noise"):  # flat curves for the ignored modality
        assert curves.means("b", corruption) == [1.0, 1.0, 1.0]


def test_shapley_values_sum_to_full_minus_empty_on_a_real_model(synthetic_model):
    model, tensors = synthetic_model
    evaluator = Evaluator(model, tensors, batch_size=16)
    result = contribution(evaluator, repeats=1, seed=0, memo={})
    total = sum(values["shapley"] for values in result["modalities"].values())
    assert total == pytest.approx(result["full"] - result["empty"], abs=1e-9)
    assert sum(abs(v["shapley_share"]) for v in result["modalities"].values()) == pytest.approx(1.0)


def test_shapley_of_a_known_game():
    players = ["x", "y", "z"]
    # v(S) = |S|^2: symmetric players share v(all) - v(none) = 9 equally
    values = {frozenset(s): len(s) ** 2 for size in range(4) for s in __import__("itertools").combinations(players, size)}
    assert shapley_values(players, values) == pytest.approx({"x": 3.0, "y": 3.0, "z": 3.0})
    values = {s: (1.0 if "x" in s else 0.0) for s in values}  # only x matters
    assert shapley_values(players, values) == pytest.approx({"x": 1.0, "y": 0.0, "z": 0.0})


def test_p0_reproduces_the_metric_trainer_test_logs_exactly(synthetic_model):
    model, tensors = synthetic_model
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False)
    logged = trainer.test(model, dataloaders=TensorBatchLoader(tensors, batch_size=16), verbose=False)[0]
    evaluator = Evaluator(model.eval(), tensors, batch_size=16)
    assert evaluator.metric == "test/acc" and evaluator.clean == logged["test/acc"]
    curves = robustness_curves(evaluator, [0.0, 0.3], repeats=2, seed=0, memo={})
    assert all(row[0] == [logged["test/acc"]] * 2 for row in curves.values.values())


def test_cached_encodings_give_the_metrics_of_encoding_every_batch(synthetic_model):
    model, tensors = synthetic_model
    cached = Evaluator(model, tensors, batch_size=16, cache=True)
    plain = Evaluator(model, tensors, batch_size=16, cache=False)
    assert cached.clean_encoded and not plain.clean_encoded and cached.clean == plain.clean
    a = robustness_curves(cached, [0.0, 0.4, 1.0], repeats=1, seed=3, memo={})
    b = robustness_curves(plain, [0.0, 0.4, 1.0], repeats=1, seed=3, memo={})
    assert a.values.keys() == b.values.keys()
    for key in a.values:
        assert [row[0] for row in a.values[key]] == pytest.approx([row[0] for row in b.values[key]], abs=1e-6), key
    assert a.subsets == pytest.approx(b.subsets, abs=1e-6)
    assert len(set(a.subsets.values())) > 2  # the conditions differ: the comparison means something


def test_analyse_writes_the_files(oracle, tmp_path):
    model, tensors = oracle
    reports = analyse(options(), model, tensors, tmp_path, batch_size=64)
    with (tmp_path / "robustness.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["modality", "corruption", "p", "repeat", "metric"]
    assert len(rows) == 2 * 2 * 3 * 2 + 3  # modalities x corruptions x levels x repeats + subsets
    assert {r["modality"] for r in rows if r["corruption"] == "subset"} == {"a", "b", "a+b"}
    robustness = json.loads((tmp_path / "robustness.json").read_text())
    assert robustness == json.loads(json.dumps(reports["robustness"]))
    assert {k for k in robustness} >= {"schema_version", "metric", "mode", "split", "clean", "repeats", "levels",
                                       "modalities", "subsets", "summary", "effective_robustness"}
    assert robustness["metric"] == "test/acc" and robustness["mode"] == "max" and robustness["clean"] == 1.0
    assert robustness["modalities"]["b"]["missing"]["relative_robustness"] == 1.0
    assert robustness["summary"]["missing"]["worst_modality"] == "a"
    assert robustness["modalities"]["a"]["noise"]["curve"][0] == [0.0, 1.0, 0.0]
    contribution_report = json.loads((tmp_path / "contribution.json").read_text())
    assert contribution_report["summary"]["largest_shapley_modality"] == "a"
    assert set(contribution_report["modalities"]["a"]) == {"shapley", "shapley_share", "leave_one_out", "permutation",
                                                           "permutation_std"}
    with (tmp_path / "contribution.csv").open() as handle:
        measures = [(r["modality"], r["measure"]) for r in csv.DictReader(handle)]
    assert measures.count(("a", "permutation")) == 2 and measures.count(("b", "shapley")) == 1
    assert (tmp_path / "robustness.png").stat().st_size > 0 and (tmp_path / "contribution.png").stat().st_size > 0


def test_summaries_of_curves():
    levels = [0.0, 0.5, 1.0]
    assert relative_robustness(levels, [0.8, 0.8, 0.8], 0.8, "max") == 1.0
    assert relative_robustness(levels, [0.8, 0.6, 0.4], 0.8, "max") == pytest.approx(0.75)
    assert relative_robustness(levels, [1.0, 2.0, 3.0], 1.0, "min") == pytest.approx(0.5)  # the error doubles on average
    assert effective_robustness(levels, [0.9, 0.8, 0.7], [0.6, 0.4, 0.2], "max") == pytest.approx(0.1)
    assert effective_robustness(levels, [1.0, 1.1, 1.2], [2.0, 2.4, 2.8], "min") == pytest.approx(0.3)
    assert math.isnan(relative_robustness(levels, [0.0, 0.0, 0.0], 0.0, "max"))


def test_effective_robustness_against_a_baseline(oracle, tmp_path):
    model, tensors = oracle
    checkpoint = save(model, tmp_path / "base.ckpt")
    reports = analyse(options(contribution=False, baseline=str(checkpoint)), model, tensors, tmp_path, batch_size=64)
    effective = reports["robustness"]["effective_robustness"]
    assert effective["baseline"] == str(checkpoint.resolve())
    assert effective["a"] == {"missing": 0.0, "noise": 0.0}  # the same model: no area between the curves


def test_bad_input_is_refused_in_one_line(oracle, synthetic_model, tmp_path):
    model, _ = oracle
    with pytest.raises(AnalysisError, match="asks for nothing"):
        selected(OmegaConf.create({"repeats": 1}))
    with pytest.raises(AnalysisError, match="no checkpoint there"):
        selected(options(baseline=str(tmp_path / "missing")))
    other, _ = synthetic_model  # four modalities of other kinds
    path = save(other, tmp_path / "other.ckpt")
    with pytest.raises(AnalysisError, match="modalities") as refusal:
        load_baseline(str(path), model)
    assert "\n" not in str(refusal.value)
    seven = type("Stub", (), {"modalities": [f"m{i}" for i in range(7)]})()
    with pytest.raises(AnalysisError, match="at most 6"):
        subset_values(seven, {})
    ranking = type("Stub", (), {"task": type("Task", (), {"family": "recommendation"})()})()
    with pytest.raises(AnalysisError, match="prediction and retrieval"):
        monitored_metric(ranking, "test")
