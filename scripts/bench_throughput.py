"""Training throughput of mmrun's real path against a hand-written PyTorch loop.

For one config (default: the built-in dataset and the default model) and each batch size,
this measures steady-state training samples per second two ways in the same process:

* **mmrun**: ``mmrun.train.build_run`` -- the datamodule, LightningModule, callbacks,
  loggers and Trainer that ``mmrun train`` uses -- timed by a callback between consecutive
  training batches of an epoch (validation and epoch ends excluded, data loading included);
* **reference**: a minimal loop that trains an identical copy of the model on the same
  tensors with the same batch size, optimizer and precision, written the fast way: data on
  the training device, batches cut by index, no logging, no metrics.

It prints both figures and their ratio (mmrun / reference; goal >= 0.90), with the device and
torch's CPU threads (mmrun's ``threads`` setting, which both loops share: auto by default).

    python scripts/bench_throughput.py                          # batch sizes 512 and 4096
    python scripts/bench_throughput.py --batch-sizes 512 -- trainer.precision=bf16-mixed
    python scripts/bench_throughput.py -- threads=1
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from mmrun.config_check import conf_dir
from mmrun.components import build
from mmrun.train import build_run


class BatchClock(pl.Callback):
    """Samples per second over consecutive training batches, after ``warmup`` batches."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup, self.device = warmup, device
        self.seen = 0
        self.previous: tuple[float, int, int] | None = None  # (time, epoch, batch size)
        self.seconds = 0.0
        self.samples = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        synchronize(self.device)
        now = time.perf_counter()
        if self.previous and self.previous[1] == trainer.current_epoch and self.seen > self.warmup:
            self.seconds += now - self.previous[0]
            self.samples += self.previous[2]
        self.previous = (now, trainer.current_epoch, len(batch["label"]))
        self.seen += 1

    def rate(self) -> float:
        return self.samples / self.seconds


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compose_config(overrides: list[str], run_dir: Path):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3", job_name="bench"):
        cfg = compose("train", overrides=[*overrides, f"hydra.run.dir={run_dir}"], return_hydra_config=True)
    OmegaConf.set_readonly(cfg, False)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        HydraConfig.instance().set_config(cfg)  # so ${hydra:runtime.output_dir} resolves
        del cfg["hydra"]
    return cfg


def reference_rate(model, tensors, cfg, batch_size: int, steps: int, warmup: int, device: torch.device) -> float:
    """The hand-written loop: index slicing on device tensors, no logging, no metrics."""
    model = model.to(device).train()
    data = {k: v.to(device) for k, v in tensors.items()}
    optimizer = model.build_optimizer()
    scheduler = build(cfg.scheduler, "scheduler", optimizer=optimizer, total_steps=steps + warmup) \
        if cfg.get("scheduler") and "_target_" in cfg.scheduler else None
    autocast = str(cfg.trainer.precision).startswith("bf16")
    n = len(data["label"])
    done, seconds, samples = 0, 0.0, 0
    while done < steps + warmup:
        order = torch.randperm(n, device=device)
        for start in range(0, n - batch_size + 1, batch_size):
            if done == warmup:
                synchronize(device)
                began = time.perf_counter()
            batch = {k: v.index_select(0, order[start:start + batch_size]) for k, v in data.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = model.task.loss(model(batch), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler:
                scheduler.step()
            done += 1
            if done > warmup:
                samples += batch_size
            if done == steps + warmup:
                break
    synchronize(device)
    seconds = time.perf_counter() - began
    return samples / seconds


def measure(batch_size: int, overrides: list[str], epochs: int, warmup: int) -> tuple[float, float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config(
            [f"dataset.batch_size={batch_size}", f"trainer.max_epochs={epochs}", "trainer.limit_val_batches=0",
             "scheduler=cosine", "callbacks=fixed_epochs", "baseline=none",
             "+trainer.num_sanity_val_steps=0", "progress=plain", *overrides],
            Path(tmp),
        )
        device_probe = pl.Trainer(accelerator=cfg.trainer.accelerator, devices=1, logger=False)
        device = device_probe.strategy.root_device
        clock = BatchClock(warmup, device)
        parts = build_run(cfg, Path(tmp), extra_callbacks=(clock,))
        reference_model = copy.deepcopy(parts.model)
        parts.trainer.fit(parts.model, datamodule=parts.datamodule)
        mmrun_rate = clock.rate()
        steps = max(clock.samples // batch_size, 5)
        ref_rate = reference_rate(reference_model, parts.datamodule.splits["train"], cfg, batch_size, steps, warmup, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return mmrun_rate, ref_rate, f"{name}, threads {torch.get_num_threads()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 4096])
    parser.add_argument("--size", type=int, default=30000, help="dataset.size (train split = 80%%)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3, help="batches skipped before timing")
    parser.add_argument("overrides", nargs="*", help="extra mmrun overrides, e.g. trainer.precision=bf16-mixed")
    args = parser.parse_args()
    logging.getLogger("mmrun").setLevel(logging.WARNING)
    for batch_size in args.batch_sizes:
        mmrun_rate, ref_rate, device = measure(batch_size, [f"dataset.size={args.size}", *args.overrides],
                                               args.epochs, args.warmup)
        print(f"batch {batch_size:5d} on {device}: mmrun {mmrun_rate:10.0f} samples/s, "
              f"reference loop {ref_rate:10.0f} samples/s, ratio {mmrun_rate / ref_rate:.3f}", flush=True)


if __name__ == "__main__":
    main()
