"""The classical baseline is fitted once per rows, task and seed and read by later runs (mmrun.baseline.cache)."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf
from test_baseline import tabular_data

from mmrun.baseline.cache import cached_baseline


def config(tmp_path, seed: int = 1, cache: bool = True, metrics=("acc",)):
    return OmegaConf.create({"seed": seed, "monitor": "val/acc", "monitor_mode": "max",
                             "task": {"kind": "multiclass", "metrics": list(metrics)},
                             "dataset": {"cache": cache, "cache_dir": str(tmp_path)}})


class CountingFit:
    """Stands for the baseline fit: counts its calls and returns a numbered summary."""

    def __init__(self, result: dict | None = None) -> None:
        self.calls = 0
        self.result = result

    def __call__(self) -> dict:
        self.calls += 1
        return dict(self.result) if self.result is not None else {"best": "ridge", "fit": self.calls}


def test_a_second_run_on_the_same_rows_reads_the_first_runs_baseline(tmp_path):
    splits, spec = tabular_data("multiclass")
    fit = CountingFit()
    first = cached_baseline(config(tmp_path), splits, spec, "prediction", fit)
    again = cached_baseline(config(tmp_path), splits, spec, "prediction", fit)
    assert fit.calls == 1
    assert first == {"best": "ridge", "fit": 1, "cache": "computed"}
    assert again == {"best": "ridge", "fit": 1, "cache": "read"}


def test_other_rows_seed_or_task_settings_fit_again(tmp_path):
    splits, spec = tabular_data("multiclass")
    fit = CountingFit()
    cached_baseline(config(tmp_path), splits, spec, "prediction", fit)
    cached_baseline(config(tmp_path, seed=2), splits, spec, "prediction", fit)
    cached_baseline(config(tmp_path, metrics=("acc", "f1_macro")), splits, spec, "prediction", fit)
    changed = {split: dict(columns) for split, columns in splits.items()}
    changed["test"]["tabular"] = changed["test"]["tabular"].clone()
    changed["test"]["tabular"][0, 0] += 1.0
    cached_baseline(config(tmp_path), changed, spec, "prediction", fit)
    assert fit.calls == 4


def test_no_cache_and_failures_are_not_stored(tmp_path):
    splits, spec = tabular_data("multiclass")
    fit = CountingFit()
    assert cached_baseline(config(tmp_path, cache=False), splits, spec, "prediction", fit)["cache"] == "off"
    assert cached_baseline(config(tmp_path, cache=False), splits, spec, "prediction", fit)["cache"] == "off"
    assert fit.calls == 2 and not list(tmp_path.iterdir())
    failing = CountingFit({"error": "every candidate failed"})
    cached_baseline(config(tmp_path), splits, spec, "prediction", failing)
    cached_baseline(config(tmp_path), splits, spec, "prediction", failing)
    assert failing.calls == 2


def test_copies_of_the_same_tensors_give_the_same_key(tmp_path):
    splits, spec = tabular_data("multiclass")
    fit = CountingFit()
    cached_baseline(config(tmp_path), splits, spec, "prediction", fit)
    copies = {split: {name: torch.as_tensor(value).clone() for name, value in columns.items()}
              for split, columns in splits.items()}
    assert cached_baseline(config(tmp_path), copies, spec, "prediction", fit)["cache"] == "read"


def test_columns_the_baseline_does_not_read_leave_the_key_alone(tmp_path):
    splits, spec = tabular_data("multiclass")
    fit = CountingFit()
    cached_baseline(config(tmp_path), splits, spec, "prediction", fit)
    extra = {split: {**columns, "teacher.output.logits": torch.randn(len(columns["label"]), 4)}
             for split, columns in splits.items()}
    assert cached_baseline(config(tmp_path), extra, spec, "prediction", fit)["cache"] == "read"
