"""The LightningModule: one encoder per modality, a fusion, a task head, loss and metrics.

The whole training step is here: encode every modality, fuse with the ``present`` mask,
map to logits, take the task's loss, and update on-device torchmetrics (computed and
synchronised across ranks once per epoch by Lightning).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from mmrun.data.spec import DataSpec
from mmrun.encoders.base import mlp
from mmrun.errors import ConfigError
from mmrun.tasks import build_task, resolve_task_type

CHECKPOINT_KEY = "mmrun"
CHECKPOINT_SCHEMA = 1
# Keys every encoder config has that the model applies itself (not constructor arguments):
# freeze = keep the encoder's weights fixed (and in eval mode); lr_mult = its learning rate
# as a multiple of optimizer.lr.
ENCODER_OPTIONS = ("freeze", "lr_mult")


def build(cfg: DictConfig, group: str, **runtime: Any) -> Any:
    """Instantiate ``cfg`` with facts known only at run time (spec, dims, params).

    A config key the target does not accept becomes a ``ConfigError`` naming the group and
    the keys it does accept.
    """
    factory = instantiate(cfg, _partial_=True, _convert_="all")
    try:
        return factory(**runtime)
    except TypeError as error:
        if "unexpected keyword argument" not in str(error):
            raise
        accepted = [p for p in inspect.signature(factory.func).parameters if p not in runtime and p != "self"]
        raise ConfigError(f"{group}: {error}; its keys are {', '.join(accepted)}") from None


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
    """Encoders per modality -> fusion -> head, with the task's loss and metrics.

    Args:
        cfg: the composed run config (encoder, fusion, task, optimizer, scheduler).
        spec: facts about the data, from the datamodule or from a checkpoint.
    """

    def __init__(self, cfg: DictConfig, spec: DataSpec) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = spec
        task_type = resolve_task_type(cfg.task.type, spec)
        self.task = build_task(task_type, spec, label_smoothing=cfg.task.get("label_smoothing", 0.0))
        self.modalities = spec.modality_names
        self.encoders = nn.ModuleDict(
            {
                m.name: build_encoder(cfg.encoder.get(m.kind), m, f"encoder/{m.kind}")
                for m in spec.modalities
            }
        )
        self.frozen = [m.name for m in spec.modalities if cfg.encoder[m.kind].get("freeze", False)]
        dims = {name: self.encoders[name].out_dim for name in self.modalities}
        fusion_class = get_class(cfg.fusion._target_)
        if fusion_class.emits_logits:
            self.fusion = build(cfg.fusion, "fusion", dims=dims, num_outputs=self.task.num_outputs)
            self.head: nn.Module = nn.Identity()
        else:
            self.fusion = build(cfg.fusion, "fusion", dims=dims)
            self.head = mlp(self.fusion.out_dim, cfg.task.head_hidden, self.task.num_outputs, cfg.task.dropout)
        # One collection per split ("train" cannot be a ModuleDict key: it is a Module method).
        self.train_metrics = self.task.metrics().clone(prefix="train/")
        self.val_metrics = self.task.metrics().clone(prefix="val/")
        self.test_metrics = self.task.metrics().clone(prefix="test/")
        options = cfg.get("model") or {}
        self.channels_last = [m.name for m in spec.modalities if m.kind == "image"] if options.get("channels_last") else []
        if self.channels_last:  # 4-D conv weights in NHWC; image batches follow in forward
            self.to(memory_format=torch.channels_last)
        if options.get("compile"):  # compiles forward in place: parameter names stay unchanged
            self.compile()

    # ----------------------------------------------------------------- forward
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        for name in self.channels_last:
            batch = {**batch, name: batch[name].contiguous(memory_format=torch.channels_last)}
        encoded = {name: self.encoders[name](batch[name]) for name in self.modalities}
        return self.head(self.fusion(encoded, batch["present"]))

    def _step(self, batch: dict[str, torch.Tensor], split: str) -> torch.Tensor:
        logits = self(batch)
        loss = self.task.loss(logits, batch["label"])
        batch_size = len(batch["label"])
        self.log(f"{split}/loss", loss, on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True)
        metrics = getattr(self, f"{split}_metrics")
        metrics.update(self.task.predict(logits.detach()), self.task.metric_target(batch["label"]))
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=batch_size)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def train(self, mode: bool = True) -> "MultimodalModule":
        super().train(mode)
        for name in self.frozen:  # frozen encoders keep BatchNorm statistics and dropout fixed
            self.encoders[name].eval()
        return self

    # --------------------------------------------------------------- optimiser
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters: one group at ``optimizer.lr``, one per encoder with ``lr_mult`` != 1."""
        groups = []
        for m in self.spec.modalities:
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

    def count_parameters(self) -> dict[str, int]:
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {"total": total, "trainable": trainable}
