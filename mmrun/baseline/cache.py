"""The classical baseline's result, fitted once per data, task and seed and then read.

Every job of a sweep that trains on the same rows (``fusion=a,b,c`` varies the model, not
the data) would otherwise fit the same baseline again: the baseline is a function of the
run's split tensors, its data spec, its task settings, its monitored metric and its seed,
and of nothing the sweep varies in the model. Its summary is kept in the data cache
(``mmrun.data.cache``: ``dataset.cache_dir``, else ``$MMRUN_CACHE_DIR``, else
``~/.cache/mmrun``) under a key made of exactly those (the tensors by ``checksum``: dtype,
shape and CRC-32 of each, the columns it reads only) and of the mmrun, scikit-learn and
``BASELINE_VERSION`` versions, so later jobs read it. A job with
``dataset.cache=false`` fits its own and stores nothing. A result that records an error is
not stored: the next run tries again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmrun.data.cache import TensorCache, cache_key, checksum, default_cache_dir


# Bump when the baseline's features, candidates or selection change: an editable install keeps
# its mmrun version while the code changes, and stored summaries must not outlive the code.
BASELINE_VERSION = 1
# The split columns the baseline reads besides the modalities (others, e.g. distillation's cached
# teacher outputs, do not change it and stay out of the key).
READ_COLUMNS = ("present", "label", "labelled")


def baseline_key(cfg: DictConfig, splits: dict[str, dict[str, Any]], spec, family: str) -> str:
    """The cache key of a run's baseline (module docstring)."""
    import sklearn

    read = {*READ_COLUMNS, *spec.modality_names}
    tensors = {split: {name: value.cpu() for name, value in columns.items() if name in read}
               for split, columns in splits.items()}
    return cache_key({"classical baseline": family, "version": BASELINE_VERSION, "scikit-learn": sklearn.__version__,
                      "inputs": checksum(tensors), "spec": spec.to_dict(),
                      "task": OmegaConf.to_container(cfg.task, resolve=True), "monitor": cfg.get("monitor"),
                      "monitor_mode": cfg.get("monitor_mode"), "seed": cfg.seed})


def cached_baseline(cfg: DictConfig, splits: dict[str, dict[str, Any]], spec, family: str,
                    fit: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``fit()``'s summary, read from the data cache when a run on the same rows stored it.

    The summary gains ``"cache": "read" | "computed" | "off"``; ``time_s`` stays the fit's own.
    """
    dataset = cfg.get("dataset") or {}
    if not dataset.get("cache", True):
        return {**fit(), "cache": "off"}
    folder = dataset.get("cache_dir")
    store = TensorCache(folder if folder is not None else default_cache_dir())
    key = baseline_key(cfg, splits, spec, family)
    stored = store.load(key)
    if stored is not None:
        return {**stored, "cache": "read"}
    result = fit()
    if "error" not in result:
        store.store(key, result)
    return {**result, "cache": "computed"}
