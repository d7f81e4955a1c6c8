"""The plateau schedule, the default callbacks and the deep-vs-baseline warning."""

from __future__ import annotations

import torch
from conftest import compose_train

from mmrun.baseline.summary import below_baseline
from mmrun.schedulers import reduce_on_plateau


def test_plateau_schedule_halves_the_rate_after_patience_epochs_without_improvement():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = reduce_on_plateau(optimizer, mode="max", factor=0.5, patience=2)
    for accuracy in (0.5, 0.6, 0.6, 0.6):  # best at epoch 2, then two epochs without improvement
        scheduler.step(accuracy)
    assert optimizer.param_groups[0]["lr"] == 0.1
    scheduler.step(0.55)
    assert optimizer.param_groups[0]["lr"] == 0.05


def test_default_run_stops_early_with_a_plateau_schedule():
    cfg = compose_train([])
    assert "early_stopping" in cfg.callbacks and cfg.callbacks.early_stopping.patience == "auto"
    assert cfg.trainer.max_epochs >= 50 and cfg.scheduler._target_.endswith("reduce_on_plateau")
    assert cfg.baseline == "auto"
    assert compose_train(["callbacks=fixed_epochs"]).callbacks.early_stopping is None


def test_warning_when_the_deep_model_is_below_the_baseline():
    baseline = {"best": "logistic_regression", "monitor": "val/acc", "monitor_mode": "max",
                "test": {"test/acc": 0.9}}
    assert "0.8000 is worse than the classical baseline's 0.9000" in below_baseline({"test/acc": 0.8}, baseline, "max")
    assert below_baseline({"test/acc": 0.95}, baseline, "max") is None
    regression = {"best": "ridge", "monitor": "val/mse", "monitor_mode": "min", "test": {"test/mse": 1.0}}
    assert below_baseline({"test/mse": 2.0}, regression, "min") is not None
    assert below_baseline({"test/mse": 0.5}, regression, "min") is None
    assert below_baseline({"test/acc": 0.1}, {"error": "every candidate failed"}, "max") is None


def test_weight_average_horizon_is_bounded_in_epochs():
    from types import SimpleNamespace

    import pytest

    from mmrun.callbacks import WeightEMA
    from mmrun.errors import ConfigError

    ema = WeightEMA(decay=0.99, max_epochs=5)
    ema.on_train_start(SimpleNamespace(num_training_batches=1000, accumulate_grad_batches=1), None)
    assert ema.step_decay == 0.99  # large data: the per-step decay
    ema.on_train_start(SimpleNamespace(num_training_batches=2, accumulate_grad_batches=1), None)
    assert ema.step_decay == pytest.approx(0.9)  # 2 steps per epoch: a 5-epoch (10-step) horizon
    averaged = ema._average(torch.zeros(3), torch.ones(3), torch.tensor(4))
    assert torch.allclose(averaged, torch.full((3,), 0.1))
    with pytest.raises(ConfigError, match="decay"):
        WeightEMA(decay=1.5)
    assert compose_train([]).callbacks.weight_averaging._target_ == "mmrun.callbacks.WeightEMA"


def test_auto_patience_waits_about_160_steps_within_4_to_10_epochs():
    from mmrun.callbacks.patience import patience_for

    assert patience_for(20) == 8    # 1,260 training rows in batches of 64
    assert patience_for(63) == 4    # the built-in data: 8,000 rows in batches of 128
    assert patience_for(3) == 10 and patience_for(5000) == 4 and patience_for(0) == 10


def test_auto_patience_is_resolved_from_the_training_loader():
    from omegaconf import OmegaConf

    from mmrun.callbacks.patience import resolve_patience

    class Data:
        def train_dataloader(self):
            return range(40)  # 40 batches per epoch

    cfg = OmegaConf.create({"callbacks": {"early_stopping": {"patience": "auto"}},
                            "trainer": {"accumulate_grad_batches": 2}})
    resolve_patience(cfg, Data())
    assert cfg.callbacks.early_stopping.patience == 8  # 20 optimizer steps per epoch
    fixed = OmegaConf.create({"callbacks": {"early_stopping": {"patience": 3}}, "trainer": {}})
    resolve_patience(fixed, Data())
    assert fixed.callbacks.early_stopping.patience == 3
