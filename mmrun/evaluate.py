"""`mmrun eval`: rebuild a model from a checkpoint's own config and score it on a split."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from mmrun.errors import ConfigError, DataError

log = logging.getLogger("mmrun")
SPLITS = ("train", "val", "test", "all")


def run(cfg: DictConfig) -> dict[str, float]:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.split``; write eval_metrics.json and predictions.csv."""
    import pytorch_lightning as pl
    import torch
    from hydra.core.hydra_config import HydraConfig

    from mmrun.train import quiet_lightning

    from mmrun.checkpoint import load_checkpoint, model_from_checkpoint
    from mmrun.data.loader import TensorBatchLoader
    from mmrun.eval_data import build_datamodule, dataset_config, split_tensors
    from mmrun.predictions import write_predictions
    from mmrun.report import metrics_table, print_table, write_json

    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError("mmrun eval needs a checkpoint: mmrun eval ckpt_path=outputs/<run>/checkpoints/best.ckpt")
    if cfg.split not in ("auto", *SPLITS):
        raise ConfigError(f"split={cfg.split} is unknown; use auto or one of {list(SPLITS)}")
    quiet_lightning()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    checkpoint = load_checkpoint(cfg.ckpt_path)
    model = model_from_checkpoint(checkpoint, cfg.ckpt_path)
    data_cfg, changed = dataset_config(checkpoint["mmrun"]["config"]["dataset"], cfg.get("dataset"))
    split = cfg.split if cfg.split != "auto" else ("all" if "path" in changed else "test")
    if cfg.batch_size:
        with open_dict(data_cfg):
            data_cfg.eval_batch_size = cfg.batch_size
    datamodule = build_datamodule(data_cfg, model.spec)
    tensors, row_ids = split_tensors(datamodule, split)
    if len(row_ids) == 0:
        raise DataError(f"the {split} split of the evaluated data has no rows; use split=all or another split")
    loader = TensorBatchLoader(tensors, batch_size=datamodule.eval_batch_size)

    trainer = pl.Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(run_dir),
    )
    # The model logs under "test/"; rename to the evaluated split.
    results = trainer.test(model, dataloaders=loader, verbose=False)[0]
    metrics = {f"{split}/{k.split('/', 1)[1]}": float(v) for k, v in results.items()}
    outputs = model.task.predict(torch.cat(trainer.predict(model, dataloaders=loader)))
    task_type = model.task.__class__.__name__.replace("Task", "").lower()
    write_predictions(run_dir / "predictions.csv", task_type, outputs, tensors["label"], row_ids, model.spec.class_names)
    write_json(
        run_dir / "eval_metrics.json",
        {
            "schema_version": 1,
            "checkpoint": str(Path(cfg.ckpt_path).expanduser().resolve()),
            "split": split,
            "data": {k: str(v) for k, v in changed.items()},
            "num_samples": len(row_ids),
            "metrics": metrics,
        },
    )
    print_table(metrics_table(f"mmrun eval ({split} split)", {split: metrics}))
    log.info("eval metrics and predictions.csv written to %s", run_dir)
    return metrics
