import pytest
import torch

from mmrun.data.spec import DataSpec, ModalitySpec
from mmrun.errors import ConfigError
from mmrun.tasks.objectives import build_objective, resolve_task_type

MOD = (ModalitySpec("tabular", "tabular", (4,)),)


@pytest.mark.parametrize(
    "task, outputs, target, names",
    [
        ("multiclass", 3, torch.tensor([0, 1, 2, 1]), {"acc", "f1_macro", "auroc"}),
        ("binary", 1, torch.tensor([0, 1, 1, 0]), {"acc", "f1", "auroc"}),
        ("multilabel", 2, torch.tensor([[0, 1], [1, 0], [1, 1], [0, 0]]).float(), {"f1_micro", "f1_macro", "map"}),
        ("regression", 1, torch.tensor([0.1, -0.3, 2.0, 1.0]), {"mae", "mse", "r2", "pearson"}),
    ],
)
def test_task_loss_and_metrics(task, outputs, target, names):
    spec = DataSpec(MOD, task, outputs)
    t = build_objective(resolve_task_type("auto", spec), spec)
    logits = torch.randn(4, outputs, requires_grad=True)
    loss = t.loss(logits, target)
    loss.backward()
    assert loss.ndim == 0 and logits.grad.abs().sum() > 0
    metrics = t.metrics()
    metrics.update(t.predict(logits.detach()), t.metric_target(target))
    assert set(metrics.compute()) == names
    assert t.monitor.startswith("val/")


def test_perfect_predictions_score_one():
    spec = DataSpec(MOD, "multiclass", 3)
    t = build_objective("multiclass", spec)
    target = torch.tensor([0, 1, 2, 2])
    metrics = t.metrics()
    metrics.update(t.predict(torch.nn.functional.one_hot(target, 3).float() * 10), target)
    assert metrics.compute()["acc"] == 1.0


def test_forcing_a_task_the_labels_do_not_allow_is_refused():
    spec = DataSpec(MOD, "multiclass", 3)
    with pytest.raises(ConfigError, match="task=regression"):
        resolve_task_type("regression", spec)
    assert resolve_task_type("multiclass", DataSpec(MOD, "binary", 1)) == "multiclass"
    assert build_objective("multiclass", DataSpec(MOD, "binary", 1)).num_outputs == 2
