"""The baseline in a training run: run it on the run's tensors, log it, compare the deep model."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from mmrun.baseline.cache import cached_baseline
from mmrun.baseline.models import better
from mmrun.baseline.run import run_baseline

log = logging.getLogger("mmrun")


def classical_baseline(cfg: DictConfig, datamodule, model) -> dict | None:
    """``baseline=auto``: the classical baseline on the run's own split tensors (``mmrun.baseline``).

    Read from the data cache when a run on the same rows, task and seed fitted it
    (``mmrun.baseline.cache``). Logs its cost and result, and warns when the deep model's test
    value of the monitored metric is below the baseline's.
    """
    objective = getattr(model.task, "objective", None)  # prediction tasks have one
    family = model.task.family
    if objective is None and family != "captioning":
        log.info("no classical baseline for task %s (it covers prediction and captioning tasks)", model.task.kind)
        return None

    def fit() -> dict:
        if family == "captioning":
            from mmrun.baseline.captioning import caption_baseline

            return caption_baseline(datamodule.splits, datamodule.spec, model.task, seed=cfg.seed,
                                    monitor=cfg.monitor, monitor_mode=cfg.monitor_mode)
        return run_baseline(datamodule.splits, datamodule.spec, objective, seed=cfg.seed, monitor=cfg.monitor,
                            monitor_mode=cfg.monitor_mode)

    try:
        result = cached_baseline(cfg, datamodule.splits, datamodule.spec, family, fit)
    except Exception as error:  # the trained model's results must be written whatever the baseline does
        log.debug("classical baseline failed", exc_info=True)
        result = {"error": f"{type(error).__name__}: {error}"}
    if "error" in result:
        log.warning("classical baseline skipped: %s", result["error"])
        return result
    metric = result["monitor"].replace("val/", "test/", 1)
    cost = "read from the data cache" if result.get("cache") == "read" else f"{result['time_s']:.1f} s"
    log.info("classical baseline: %s, %s %s (%d training rows%s, %s)", result["best"], metric,
             _format(result["test"].get(metric)), result["train_rows"], ", subsampled" if result["subsampled"] else "",
             cost)
    return result


def _format(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def below_baseline(test: dict[str, float], baseline: dict | None, mode: str) -> str | None:
    """A warning when the deep model's test value of the baseline's metric is worse than the baseline's."""
    if not baseline or "error" in baseline:
        return None
    metric = baseline["monitor"].replace("val/", "test/", 1)
    deep, classical = test.get(metric), baseline["test"].get(metric)
    if deep is None or classical is None:
        return None
    if not better(classical, deep, baseline.get("monitor_mode", mode)):
        return None
    return (f"the deep model's {metric} {deep:.4f} is worse than the classical baseline's {classical:.4f} "
            f"({baseline['best']}): it is undertrained or mis-specified for this data; compare before drawing "
            "conclusions from it")
