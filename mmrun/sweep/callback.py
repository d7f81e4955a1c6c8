"""The Hydra callback that writes the comparison report at the root of every finished sweep.

Registered in conf/train.yaml under ``hydra.callbacks``; a report that cannot be written
(no run finished, a damaged file) is logged as one line and never fails the sweep itself.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mmrun.errors import MmrunError

log = logging.getLogger("mmrun")


class ComparisonReport(Callback):
    """On multirun end: compare every job below the sweep folder and write the report there.

    Args:
        enabled: set ``hydra.callbacks.comparison_report.enabled=false`` to skip the report.
        metric: validation metric to rank by; None = the one the runs monitored.
        group_by: keys that define a configuration; None = every swept key but ``seed``.
    """

    def __init__(self, enabled: bool = True, metric: str | None = None, group_by: list[str] | None = None) -> None:
        self.enabled = enabled
        self.metric = metric
        self.group_by = list(group_by) if group_by is not None else None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        from mmrun.sweep.report import write_report

        root = Path(config.hydra.sweep.dir)
        try:
            write_report([root], root, group_by=self.group_by, metric=self.metric)
        except Exception as error:  # the jobs' results are safe on disk; mmrun compare can retry
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            detail = str(error) if isinstance(error, MmrunError) else f"{type(error).__name__}: {error}"
            log.warning("no comparison report for %s: %s (retry with mmrun compare %s)", root, detail, root)
