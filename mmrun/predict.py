"""`mmrun predict`: score rows with a checkpoint, labels optional, and write predictions.csv.

What ``mmrun eval`` and ``mmrun predict`` share lives here: ``Scoring.open`` loads the
checkpoint, rebuilds its model and its dataset with the checkpoint's own preprocessing
(``mmrun.eval_data``), takes the scored split and makes a Lightning trainer;
``Scoring.write_outputs`` has the task write its per-row outputs (``predictions.csv``:
``mmrun.predictions``; ``rankings.csv`` for retrieval and recommendation: ``mmrun.rankings``). Predict reads no labels, so a manifest may lack the label column or
have empty label cells; eval (``mmrun.evaluate``) requires them and adds the metrics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from mmrun.errors import ConfigError, DataError

log = logging.getLogger("mmrun")
SPLITS = ("train", "val", "test", "all")


@dataclass
class Scoring:
    """A checkpoint's model, the rows it scores (one split) and the trainer that runs it."""

    model: Any  # mmrun.model.MultimodalModule
    trainer: Any  # pytorch_lightning.Trainer
    loader: Any  # mmrun.data.loader.TensorBatchLoader over ``tensors``
    tensors: dict[str, Any]
    row_ids: Any  # torch.Tensor: each sample's manifest line (or position in the split)
    split: str
    changed: dict[str, Any]  # the dataset keys set on the command line
    labelled: bool  # labels were read (eval), so predictions.csv gets a label column
    run_dir: Path

    @classmethod
    def open(cls, cfg: DictConfig, command: str, labels_required: bool) -> "Scoring":
        """Everything ``cfg`` (eval.yaml's keys) asks to score, for ``mmrun <command>``."""
        import pytorch_lightning as pl
        from hydra.core.hydra_config import HydraConfig

        from mmrun.checkpoint import load_checkpoint, model_from_checkpoint
        from mmrun.data.loader import TensorBatchLoader
        from mmrun.eval_data import build_datamodule, dataset_config, split_tensors
        from mmrun.threads import apply_threads
        from mmrun.train import quiet_lightning

        if OmegaConf.is_missing(cfg, "ckpt_path"):
            raise ConfigError(f"mmrun {command} needs a checkpoint: mmrun {command} "
                              f"ckpt_path=outputs/<run>/checkpoints/best.ckpt")
        if cfg.split not in ("auto", *SPLITS):
            raise ConfigError(f"split={cfg.split} is unknown; use auto or one of {list(SPLITS)}")
        quiet_lightning()
        apply_threads(cfg)
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        checkpoint = load_checkpoint(cfg.ckpt_path)
        model = model_from_checkpoint(checkpoint, cfg.ckpt_path)
        data_cfg, changed = dataset_config(checkpoint["mmrun"]["config"]["dataset"], cfg.get("dataset"))
        split = cfg.split if cfg.split != "auto" else ("all" if "path" in changed else "test")
        if cfg.batch_size:
            with open_dict(data_cfg):
                data_cfg.eval_batch_size = cfg.batch_size
        datamodule = build_datamodule(data_cfg, model.spec, labels_required)
        tensors, row_ids = split_tensors(datamodule, split)
        if len(row_ids) == 0:
            raise DataError(no_rows(split))
        trainer = pl.Trainer(
            accelerator=cfg.accelerator,
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=str(run_dir),
        )
        loader = TensorBatchLoader(tensors, batch_size=datamodule.eval_batch_size)
        model.task.attach_data(datamodule, split)
        model.task.record_outputs = True
        return cls(model, trainer, loader, tensors, row_ids, split, changed, labels_required, run_dir)

    def write_outputs(self) -> Path:
        """The task's per-row outputs in the run folder (``predictions.csv``, ``rankings.csv``)."""
        return self.model.task.write_outputs(self)


def no_rows(split: str) -> str:
    """Why nothing can be scored, with advice that fits the split."""
    if split == "all":
        return "every row of the data is bad and was skipped (see skipped_rows.csv in the run folder); fix them"
    return f"the {split} split of the scored data has no rows; use split=all or another split"


def run(cfg: DictConfig) -> None:
    """Predict ``cfg.split`` of the checkpoint's data (every row of ``dataset.path``): the task's outputs file."""
    if cfg.get("analysis"):
        raise ConfigError("mmrun predict reads no labels, so it cannot analyse; use mmrun eval ckpt_path=... "
                          "+analysis=...")
    scoring = Scoring.open(cfg, "predict", labels_required=False)
    path = scoring.write_outputs()
    log.info("%s for %d rows (split=%s) written to %s", path.stem, len(scoring.row_ids), scoring.split, path)
