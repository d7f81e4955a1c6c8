"""`mmrun eval`: rebuild a model from a checkpoint's own config and score it on a split.

With ``+analysis=robustness|contribution|all`` the same model and split are then analysed
(``mmrun.analysis``): robustness and contribution files beside eval_metrics.json.

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

    if cfg.get("analysis"):
        from mmrun.analysis.run import selected

        selected(cfg.analysis)  # a mistake in the analysis options is refused before scoring
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
    if cfg.get("analysis"):
        from mmrun.analysis.run import analyse

        analyse(cfg.analysis, scoring.model, scoring.tensors, scoring.run_dir, scoring.loader.batch_size, split,
                scoring.trainer.precision_plugin.forward_context)
    return metrics
