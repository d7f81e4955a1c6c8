"""Cost of a full robustness + contribution analysis against one test-set evaluation.

Builds the default model (``mmrun train`` defaults: the built-in four-modality data, its 1,000
test rows) untrained, or loads ``--checkpoint``; then, in the same process:

* **one evaluation**: ``trainer.test`` on the test split as ``mmrun eval`` runs it (the median of
  ``--reference-runs``);
* **analysis**: ``mmrun.analysis.run.analyse`` with ``conf/analysis/all.yaml`` (11 levels,
  3 repeats, every subset, Shapley, leave-one-out, permutation), files and figures included.

It prints the number of conditions the analysis scored (each one pass over the split; the
curve points at p = 0 are the clean evaluation itself and subsets shared by robustness and
contribution are scored once), the wall times and the ratio
``analysis time / (conditions x one evaluation)``; the goal is <= 1.0 (no overhead beyond the
forward passes). The analysis reuses the clean and zero-filled encodings of each modality, so
a condition runs one encoder at most and the ratio is usually well below 1.

    python scripts/bench_analysis.py
    python scripts/bench_analysis.py --checkpoint outputs/<run>/checkpoints/best.ckpt --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

GOAL = 1.0


def build(checkpoint: str | None):
    """The model and the datamodule of the default config (or of ``checkpoint``)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from mmrun.config_check import conf_dir
    from mmrun.model import MultimodalModule

    if checkpoint:
        from mmrun.checkpoint import load_checkpoint, model_from_checkpoint
        from mmrun.eval_data import build_datamodule, dataset_config

        saved = load_checkpoint(checkpoint)
        model = model_from_checkpoint(saved, checkpoint)
        return model, build_datamodule(dataset_config(saved["mmrun"]["config"]["dataset"], None)[0], model.spec)
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["seed=0"])
    datamodule = instantiate(cfg.dataset)
    datamodule.setup()
    return MultimodalModule(cfg, datamodule.spec), datamodule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="a trained checkpoint (default: the untrained default model)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--reference-runs", type=int, default=5, help="test-set evaluations timed for the reference")
    args = parser.parse_args()

    import pytorch_lightning as pl
    import torch
    from omegaconf import OmegaConf

    from mmrun.analysis.run import analyse
    from mmrun.config_check import conf_dir
    from mmrun.data.loader import TensorBatchLoader
    from mmrun.eval_data import split_tensors
    from mmrun.train import quiet_lightning

    if args.threads:
        torch.set_num_threads(args.threads)
    quiet_lightning()
    model, datamodule = build(args.checkpoint)
    tensors, _ = split_tensors(datamodule, "test")
    batch_size = datamodule.eval_batch_size
    trainer = pl.Trainer(accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    loader = TensorBatchLoader(tensors, batch_size=batch_size)
    trainer.test(model, dataloaders=loader, verbose=False)  # warm-up
    times = []
    for _ in range(args.reference_runs):
        start = time.perf_counter()
        trainer.test(model, dataloaders=loader, verbose=False)
        times.append(time.perf_counter() - start)
    one = statistics.median(times)

    options = OmegaConf.merge(*(OmegaConf.load(conf_dir() / "analysis" / f"{name}.yaml")
                                for name in ("robustness", "contribution")))
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        reports = analyse(options, model.to(trainer.strategy.root_device), tensors, Path(folder), batch_size)
        seconds = time.perf_counter() - start
    conditions = reports["robustness"]["evaluations"] + reports["contribution"]["evaluations"]
    ratio = seconds / (conditions * one)
    print(f"\ndevice {trainer.strategy.root_device}, {torch.get_num_threads()} threads, {len(tensors['label'])} test rows, "
          f"batch {batch_size}, modalities {', '.join(model.modalities)}")
    print(f"one test-set evaluation (trainer.test, median of {args.reference_runs}): {one * 1000:.1f} ms")
    print(f"analysis (robustness + contribution, files and figures): {seconds:.2f} s for {conditions} scored "
          f"conditions ({seconds / conditions * 1000:.1f} ms each)")
    print(f"ratio: {ratio:.3f} of (conditions x one evaluation) = {conditions * one:.2f} s; goal <= {GOAL}: "
          f"{'met' if ratio <= GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
