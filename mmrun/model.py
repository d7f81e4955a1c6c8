"""The LightningModule: one encoder per modality, then the task family (``mmrun.tasks``).

The whole training step is here: let the task prepare the batch, drop whole modalities of
training samples (``model.modality_dropout``, ModDrop), encode every modality the task reads,
hand the encoded modalities and the batch to the task (fusion, heads, embeddings), take the
task's loss and update its on-device metrics (computed and synchronised across ranks once per
epoch).
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from torch import nn

from mmrun.components import build
from mmrun.data.spec import DataSpec
from mmrun.errors import CheckpointError, ConfigError
from mmrun.modality_dropout import build_modality_dropout

CHECKPOINT_KEY = "mmrun"
# Beside the weights: the distillation's own trainable state (hint adapters), kept out of
# ``state_dict`` so that the student's checkpoint is an ordinary one (``attach_distiller``).
DISTILLER_KEY = "mmrun_distiller"
DISTILLER_PREFIX = "distiller."
WEIGHTS = ("state_dict", "current_model_state")  # the latter: the raw weights beside an EMA
# 2: the task family owns fusion and head (weights under "task."); 1: they sat on the module.
CHECKPOINT_SCHEMA = 2
# The family of a task config without _target_ (configs and checkpoints from before families).
PREDICTION_TASK = "mmrun.tasks.prediction.PredictionTask"
# Keys every encoder config has that the model applies itself (not constructor arguments):
# freeze = keep the encoder's weights fixed (and in eval mode); lr_mult = its learning rate
# as a multiple of optimizer.lr.
ENCODER_OPTIONS = ("freeze", "lr_mult")


def upgrade_checkpoint(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Rename the weights of a schema-1 checkpoint (fusion and head on the module) in place.

    Schema 1 held ``fusion.*`` and ``head.*``; the prediction task now owns both
    (``task.fusion.*``, ``task.head.*``). A newer schema than this mmrun knows is refused.
    """
    saved = checkpoint.get(CHECKPOINT_KEY)
    schema = saved.get("schema", 1) if isinstance(saved, dict) else CHECKPOINT_SCHEMA
    if not isinstance(schema, int) or schema > CHECKPOINT_SCHEMA:
        raise CheckpointError(f"the checkpoint has layout version {schema}, newer than this mmrun's "
                              f"{CHECKPOINT_SCHEMA}; upgrade mmrun (pip install -U mmrun) to read it")
    if schema == 1:
        for weights in WEIGHTS:
            if isinstance(checkpoint.get(weights), dict):
                checkpoint[weights] = {
                    (f"task.{key}" if str(key).startswith(("fusion.", "head.")) else key): value
                    for key, value in checkpoint[weights].items()
                }
        saved["schema"] = CHECKPOINT_SCHEMA
    return checkpoint


def task_config(task_cfg: DictConfig) -> DictConfig:
    """The task config with its family: configs from before task families are prediction tasks."""
    if "_target_" in task_cfg:
        return task_cfg
    return OmegaConf.merge({"_target_": PREDICTION_TASK}, task_cfg)


def _detached(outputs: Any) -> Any:
    """Outputs for metrics: a tensor or a dict of tensors, cut from the graph."""
    if isinstance(outputs, dict):
        return {key: value.detach() for key, value in outputs.items()}
    return outputs.detach()


def build_encoder(encoder_cfg: DictConfig | None, modality, kind_path: str) -> nn.Module:
    if encoder_cfg is None or "_target_" not in encoder_cfg:
        raise ConfigError(f"no encoder configured for modality {modality.name!r}; set {kind_path}=<name>")
    lr_mult = encoder_cfg.get("lr_mult", 1.0)
    if not isinstance(lr_mult, (int, float)) or lr_mult < 0:
        raise ConfigError(f"{kind_path}: lr_mult={lr_mult} must be a number >= 0 (a multiple of optimizer.lr)")
    constructor_cfg = OmegaConf.masked_copy(encoder_cfg, [k for k in encoder_cfg if k not in ENCODER_OPTIONS])
    encoder = build(constructor_cfg, kind_path, spec=modality)
    if encoder_cfg.get("freeze", False):
        encoder.requires_grad_(False)
    return encoder


class MultimodalModule(pl.LightningModule):
    """One encoder per modality the task reads -> the task family (``mmrun.tasks``).

    Args:
        cfg: the composed run config (encoder, fusion, task, optimizer, scheduler).
        spec: facts about the data, from the datamodule or from a checkpoint.
    """

    def __init__(self, cfg: DictConfig, spec: DataSpec) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = spec
        task_cfg = task_config(cfg.task)
        read = set(get_class(task_cfg._target_).modalities_read(task_cfg, spec))
        used = [m for m in spec.modalities if m.name in read]
        self.modalities = [m.name for m in used]
        self.encoders = nn.ModuleDict(
            {m.name: build_encoder(cfg.encoder.get(m.kind), m, f"encoder/{m.kind}") for m in used}
        )
        self.frozen = [m.name for m in used if cfg.encoder[m.kind].get("freeze", False)]
        dims = {name: self.encoders[name].out_dim for name in self.modalities}
        task_class = get_class(task_cfg._target_)
        decoder = {"decoder": cfg.get("decoder")} if getattr(task_class, "uses_decoder", False) else {}
        if cfg.get("decoder") is not None and not decoder:
            raise ConfigError(f"decoder={cfg.decoder._target_.rsplit('.', 2)[-2]} is for task=captioning; "
                              f"{task_class.family} tasks have no decoder: remove decoder=...")
        self.task = build(task_cfg, "task", spec=spec, dims=dims, fusion=cfg.fusion, **decoder)
        options = cfg.get("model") or {}
        # After prepare_batch, so that recommendation's item content is covered too; eval mode: a no-op.
        self.modality_dropout = build_modality_dropout(options.get("modality_dropout", 0.0),
                                                       self.task.modality_groups(self.modalities), spec.modality_names,
                                                       self.task.family)
        self.channels_last = [m.name for m in used if m.kind == "image"] if options.get("channels_last") else []
        if self.channels_last:  # 4-D conv weights in NHWC; image batches follow in forward
            self.to(memory_format=torch.channels_last)
        if options.get("compile"):  # compiles forward in place: parameter names stay unchanged
            self.compile()
        self.distiller: nn.Module | None = None  # set by attach_distiller (+distill)

    def attach_distiller(self, distiller: nn.Module) -> None:
        """Train with a teacher's loss terms (``mmrun.distill.distiller.Distiller``).

        The distiller's own weights (hint adapters) train with the student but are moved out of
        the checkpoint's weights into ``DISTILLER_KEY`` (and back on resume), and the teacher is
        no submodule at all: the student's checkpoint rebuilds without either.
        """
        self.distiller = distiller
        distiller.watch(self.task)

    # ----------------------------------------------------------------- forward
    def encode(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Each modality of the batch that the task reads, through its encoder."""
        for name in self.channels_last:
            if name in batch:
                batch = {**batch, name: batch[name].contiguous(memory_format=torch.channels_last)}
        return {name: self.encoders[name](batch[name]) for name in self.modalities if name in batch}

    def forward(self, batch: dict[str, torch.Tensor]) -> Any:
        batch = self.modality_dropout(self.task.prepare_batch(batch))
        return self.task(self.encode(batch), batch)

    def label_loss(self, outputs: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The task's loss, over the rows whose label may be trained on when the batch says
        (``labelled``: ``dataset.label_fraction`` < 1 keeps the others for distillation only)."""
        labelled = batch.get("labelled")
        if labelled is None:
            return self.task.loss(outputs, batch)
        if not labelled.any():
            return outputs.sum() * 0.0
        return self.task.loss(outputs[labelled], {**batch, "label": batch["label"][labelled]})

    def _step(self, batch: dict[str, torch.Tensor], split: str) -> torch.Tensor:
        outputs = self(batch)
        loss = self.label_loss(outputs, batch)
        batch_size = self.task.batch_size(batch)
        if self.distiller is not None and split == "train":
            loss, terms = self.distiller(loss, outputs, batch)
            self.log_dict({f"train/distill_{name}": term for name, term in terms.items()},
                          on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True)
        self.log(f"{split}/loss", loss, on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True)
        metrics = self.task.update_metrics(_detached(outputs), batch, split)
        if metrics is not None:
            self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=batch_size)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    # The module's epoch hooks run after the callbacks': the weight average is swapped in by then.
    def on_validation_epoch_start(self) -> None:
        self.task.start_epoch("val", self.encode)

    def on_test_epoch_start(self) -> None:
        self.task.start_epoch("test", self.encode)

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.task.epoch_metrics("val"))

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.task.epoch_metrics("test"))

    def train(self, mode: bool = True) -> MultimodalModule:
        super().train(mode)
        for name in self.frozen:  # frozen encoders keep BatchNorm statistics and dropout fixed
            self.encoders[name].eval()
        return self

    # --------------------------------------------------------------- optimiser
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters: one group at ``optimizer.lr``, one per encoder with ``lr_mult`` != 1."""
        groups = []
        for m in self.spec.modalities:
            if m.name not in self.encoders:  # a modality the task does not read
                continue
            lr_mult = float(self.cfg.encoder[m.kind].get("lr_mult", 1.0))
            params = [p for p in self.encoders[m.name].parameters() if p.requires_grad]
            if lr_mult != 1.0 and params:
                groups.append({"params": params, "lr": self.cfg.optimizer.lr * lr_mult})
        grouped = {id(p) for group in groups for p in group["params"]}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in grouped]
        return [{"params": rest}, *groups]

    def build_optimizer(self) -> torch.optim.Optimizer:
        """``cfg.optimizer`` over ``parameter_groups``; ``fused: auto`` = fused kernels on CUDA."""
        optimizer_cfg = OmegaConf.masked_copy(self.cfg.optimizer, [k for k in self.cfg.optimizer if k != "fused"])
        fused = self.cfg.optimizer.get("fused", False)  # a user's optimizer config without the key: torch's default
        if fused not in ("auto", True, False):
            raise ConfigError(f"optimizer.fused={fused}; use auto, true or false")
        runtime: dict[str, Any] = {"params": self.parameter_groups()}
        if fused is True or (fused == "auto" and self.device.type == "cuda"):
            runtime["fused"] = True  # one kernel per step for all parameters (Adam, AdamW, SGD)
        return build(optimizer_cfg, "optimizer", **runtime)

    def configure_optimizers(self) -> Any:
        optimizer = self.build_optimizer()
        scheduler_cfg = self.cfg.get("scheduler")
        if not scheduler_cfg or "_target_" not in scheduler_cfg:
            return optimizer
        if "mode" in scheduler_cfg:  # driven by the monitored metric: stepped after each validation
            runtime = {"mode": self.cfg.monitor_mode} if scheduler_cfg.mode == "auto" else {}
            scheduler = build(scheduler_cfg, "scheduler", optimizer=optimizer, **runtime)
            # strict=False: an epoch without validation (check_val_every_n_epoch > 1) keeps the rate.
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch",
                                                             "monitor": self.cfg.monitor, "strict": False}}
        steps = self.trainer.estimated_stepping_batches
        if math.isinf(steps):
            raise ConfigError(f"scheduler {scheduler_cfg._target_.rsplit('.', 1)[-1]} needs the run's length; set "
                              "trainer.max_epochs (or use scheduler=plateau or none)")
        scheduler = build(scheduler_cfg, "scheduler", optimizer=optimizer, total_steps=int(steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -------------------------------------------------------------- checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "schema": CHECKPOINT_SCHEMA,
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "spec": self.spec.to_dict(),
        }
        if self.distiller is not None:  # runs after the EMA callback's hook, which fills current_model_state
            checkpoint[DISTILLER_KEY] = {
                weights: {key: checkpoint[weights].pop(key) for key in list(checkpoint[weights])
                          if key.startswith(DISTILLER_PREFIX)}
                for weights in WEIGHTS if weights in checkpoint
            }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A resumed run: its weights under today's names (``upgrade_checkpoint``), and the
        distiller's weights back among them (before the callbacks load theirs)."""
        upgrade_checkpoint(checkpoint)
        for weights, state in checkpoint.pop(DISTILLER_KEY, {}).items():
            checkpoint[weights].update(state)

    def count_parameters(self) -> dict[str, int]:
        """The model's parameters (a distiller's adapters are training aids, not part of it)."""
        own = [p for name, p in self.named_parameters() if not name.startswith(DISTILLER_PREFIX)]
        return {"total": sum(p.numel() for p in own), "trainable": sum(p.numel() for p in own if p.requires_grad)}
