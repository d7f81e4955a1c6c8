"""`mmrun eval`: rebuild a model from a checkpoint's own config and score it on a split.

The checkpoint, data and trainer come from ``mmrun.predict.Scoring`` (shared with ``mmrun
predict``), here with labels required: eval adds the metrics to the predictions.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

log = logging.getLogger("mmrun")


def run(cfg: DictConfig) -> dict[str, float]:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.split``; write eval_metrics.json and the task's outputs."""
    from mmrun.predict import Scoring
    from mmrun.report import metrics_table, print_table, write_json

    scoring = Scoring.open(cfg, "eval", labels_required=True)
    split = scoring.split
    # The model logs under "test/"; rename to the evaluated split.
    results = scoring.trainer.test(scoring.model, dataloaders=scoring.loader, verbose=False)[0]
    metrics = {f"{split}/{k.split('/', 1)[1]}": float(v) for k, v in results.items()}
    outputs = scoring.write_outputs()
    write_json(
        scoring.run_dir / "eval_metrics.json",
        {
            "schema_version": 1,
            "checkpoint": str(Path(cfg.ckpt_path).expanduser().resolve()),
            "split": split,
            "data": {k: str(v) for k, v in scoring.changed.items()},
            "num_samples": len(scoring.row_ids),
            "metrics": metrics,
            **scoring.model.task.report("test"),
        },
    )
    print_table(metrics_table(f"mmrun eval ({split} split)", {split: metrics}))
    log.info("eval metrics and %s written to %s", outputs.name, scoring.run_dir)
    return metrics
