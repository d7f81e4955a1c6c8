"""`mmrun train`: compose -> build -> fit -> test the best checkpoint -> metrics.json
(-> with ``+analysis=...``, the analysis of the best checkpoint: ``mmrun.analysis``)."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from mmrun.errors import ConfigError

log = logging.getLogger("mmrun")
LR_FINDER_START, LR_FINDER_STEPS = 1e-3, 100


def resolve_monitor(cfg: DictConfig, model) -> None:
    """Fill ``monitor``/``monitor_mode`` from the task when ``auto``, and check the names."""
    from mmrun.callbacks.selection import metric_direction

    with open_dict(cfg):
        if cfg.monitor == "auto":
            cfg.monitor = model.task.monitor
        if cfg.monitor_mode == "auto":
            cfg.monitor_mode = model.task.monitor_mode if cfg.monitor == model.task.monitor else metric_direction(cfg.monitor)
    logged = ["val/loss"] + model.task.metric_names("val")
    if cfg.monitor not in logged:
        raise ConfigError(f"monitor={cfg.monitor} is not a logged validation metric; use one of {logged}")
    if cfg.monitor_mode not in ("max", "min"):
        raise ConfigError(f"monitor_mode={cfg.monitor_mode} must be auto, max or min")
    tie_break = cfg.get("monitor_tie_break")
    if tie_break is not None and tie_break not in logged:
        raise ConfigError(f"monitor_tie_break={tie_break} is not a logged validation metric; use one of {logged} "
                          "or null (no tie-break)")


def build_loggers(cfg: DictConfig, run_dir: Path) -> list:
    """Instantiate ``cfg.logger``; a CSV logger is always present so metrics.csv exists."""
    from hydra.errors import InstantiationException
    from pytorch_lightning.loggers import CSVLogger

    loggers = []
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        try:
            loggers.append(instantiate(logger_cfg))
        except InstantiationException as error:
            if isinstance(error.__cause__, ModuleNotFoundError):
                raise ConfigError(
                    f"logger={name} needs a package that is not installed ({error.__cause__}); "
                    f"install it with pip install 'mmrun[{name}]'"
                ) from error
            raise
    if not any(isinstance(logger, CSVLogger) for logger in loggers):
        loggers.insert(0, CSVLogger(save_dir=str(run_dir), name="", version=""))
    return loggers


def use_rich_progress(cfg: DictConfig) -> bool:
    choice = cfg.get("progress", "auto")
    if choice not in ("auto", "rich", "plain"):
        raise ConfigError(f"progress={choice} must be auto, rich or plain")
    return choice == "rich" or (choice == "auto" and sys.stdout.isatty())


def quiet_lightning() -> None:
    """Keep Lightning's start-up chatter (device lines, tips) out of the run log."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning_fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # The run folder already holds .hydra/ and train.log when the CSV logger opens it.
    warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)")


def console_on_rank_zero_only() -> None:
    """DDP worker processes (rank > 0) keep their log file but leave the console to rank 0."""
    if int(os.environ.get("LOCAL_RANK", 0)) > 0 or int(os.environ.get("NODE_RANK", 0)) > 0:
        for handler in logging.getLogger().handlers:
            if not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.WARNING)


@dataclass
class RunParts:
    """Everything ``mmrun train`` builds before it fits: data, model, trainer, best tracker."""

    datamodule: Any
    model: Any
    trainer: Any
    tracker: Any
    epochs: Any
    distillation: Any = None  # mmrun.distill.run.Distillation with +distill


def build_run(cfg: DictConfig, run_dir: Path, extra_callbacks: tuple = ()) -> RunParts:
    """Seed, build the datamodule, the model and the trainer exactly as ``mmrun train`` does.

    ``scripts/bench_throughput.py`` measures this same path, with ``extra_callbacks``.
    """
    import pytorch_lightning as pl

    from mmrun.callbacks import (BestValidationTracker, DivergenceGuard, EpochLogger, EpochProgressBar, RandomState,
                                 TrainingOrder)
    from mmrun.callbacks.patience import resolve_patience
    from mmrun.memory import reset_peak_memory
    from mmrun.components import build
    from mmrun.model import MultimodalModule
    from mmrun.threads import apply_threads

    console_on_rank_zero_only()
    apply_threads(cfg)  # before any data or model work
    quiet_lightning()
    reset_peak_memory()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    started = time.perf_counter()
    distillation = None
    if cfg.get("distill"):  # before the data: the teacher's modalities are served too
        from mmrun.distill.run import Distillation

        distillation = Distillation(cfg.distill)
        datamodule = distillation.build_datamodule(cfg.dataset, cfg.task)
    else:
        datamodule = instantiate(cfg.dataset)
        datamodule.setup("fit")
    spec = datamodule.spec
    log.info("data ready in %.2f s: %s", time.perf_counter() - started,
             ", ".join(f"{m.name} {list(m.shape)}" for m in spec.modalities))

    model = MultimodalModule(cfg, spec)
    model.task.attach_data(datamodule)
    resolve_monitor(cfg, model)
    resolve_patience(cfg, datamodule)
    OmegaConf.resolve(cfg)

    tracker = BestValidationTracker(cfg.monitor, cfg.monitor_mode, cfg.get("monitor_tie_break"))
    callbacks: list[Any] = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    rich_bar = use_rich_progress(cfg)
    epochs = EpochLogger(console=not rich_bar)
    callbacks += [tracker, epochs, RandomState(), TrainingOrder(), DivergenceGuard(), *extra_callbacks]
    if rich_bar:
        callbacks.append(EpochProgressBar(refresh_rate=5, leave=True))
    loggers = build_loggers(cfg, run_dir)
    for logger in loggers:  # trackers (MLflow, W&B, TensorBoard) get the whole config as params
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    try:
        trainer: pl.Trainer = build(
            cfg.trainer,
            "trainer",
            logger=loggers,
            callbacks=callbacks,
            enable_progress_bar=rich_bar,
            enable_model_summary=False,
            default_root_dir=str(run_dir),
        )
    except ValueError as error:  # Lightning refuses combinations such as strategy=fsdp on CPU
        raise ConfigError(f"trainer: {str(error).strip().splitlines()[0]}") from error
    if distillation is not None:
        distillation.attach(model, datamodule, cfg.monitor, trainer.strategy.root_device,
                            cfg.dataset.get("cache_dir"))
    if (cfg.get("model") or {}).get("compile") and trainer.strategy.root_device.type == "cpu":
        log.warning("model.compile=true on CPU: the one-off compile takes tens of seconds and rarely pays off "
                    "for small models there (measured 10x slower in all); it is meant for GPUs")
    parameters = model.count_parameters()
    log.info("model: %s parameters, fusion %s, task %s, monitor %s (%s)",
             f"{parameters['total']:,}", cfg.fusion._target_.rsplit(".", 1)[-1],
             model.task.kind, cfg.monitor, cfg.monitor_mode)
    return RunParts(datamodule, model, trainer, tracker, epochs, distillation)


def find_learning_rate(cfg: DictConfig, parts: RunParts) -> float:
    """``optimizer.lr=auto``: Lightning's learning-rate range test (Smith, "Cyclical Learning
    Rates for Training Neural Networks", WACV 2017, arXiv:1506.01186) picks ``optimizer.lr``.

    The test trains for ``LR_FINDER_STEPS`` steps with an exponentially growing learning rate,
    restores the initial weights and suggests the rate of the steepest loss descent.
    """
    from pytorch_lightning.tuner import Tuner, lr_finder

    if parts.trainer.world_size > 1:
        raise ConfigError("optimizer.lr=auto runs the learning-rate finder in one process; find the rate with "
                          "trainer.devices=1 (it is logged as 'inferred optimizer.lr=...') and set optimizer.lr to it")
    with open_dict(cfg):
        cfg.optimizer.lr = LR_FINDER_START  # the finder sets every rate itself; this only lets it build
    max_epochs = parts.trainer.fit_loop.max_epochs
    parts.trainer.fit_loop.max_epochs = -1  # the finder's steps may take more epochs than the run has
    progress_bar = lr_finder.tqdm
    if not use_rich_progress(cfg):  # the finder's own tqdm bar (not switchable) would flood a log file
        lr_finder.tqdm = functools.partial(progress_bar, disable=True)
    try:
        result = Tuner(parts.trainer).lr_find(parts.model, datamodule=parts.datamodule,
                                              num_training=LR_FINDER_STEPS, update_attr=False)
    finally:
        parts.trainer.fit_loop.max_epochs = max_epochs
        lr_finder.tqdm = progress_bar
    suggestion = result.suggestion() if result is not None else None
    if suggestion is None or not suggestion > 0:
        log.warning("optimizer.lr=auto: the learning-rate finder found no clear rate; using %g", LR_FINDER_START)
        suggestion = LR_FINDER_START
    else:
        log.info("inferred optimizer.lr=%.3g (Lightning's learning-rate finder, %d steps)", suggestion, LR_FINDER_STEPS)
    with open_dict(cfg):
        cfg.optimizer.lr = float(suggestion)
    return float(suggestion)


def analyse_best(cfg: DictConfig, parts: RunParts, best_path: str, run_dir: Path) -> None:
    """``+analysis=...``: analyse the best checkpoint (as ``mmrun eval`` would) on the test split, in the run folder."""
    from mmrun.analysis.run import analyse
    from mmrun.checkpoint import load_checkpoint, model_from_checkpoint
    from mmrun.eval_data import split_tensors

    model = model_from_checkpoint(load_checkpoint(best_path), best_path) if best_path else parts.model
    tensors, _ = split_tensors(parts.datamodule, "test")
    analyse(cfg.analysis, model.to(parts.trainer.strategy.root_device), tensors, run_dir,
            parts.datamodule.eval_batch_size, "test", parts.trainer.precision_plugin.forward_context)


def run(cfg: DictConfig) -> float | None:
    """Train one model as configured and return the best monitored validation value.

    A run ends in one of four states, written to metrics.json: completed; interrupted by a
    stop signal (resumable: ``mmrun train resume=<run dir>``); diverged (the loss became NaN);
    or failed (any other error, recorded by a sweep).
    """
    from hydra.core.hydra_config import HydraConfig

    from mmrun import interruption, outcome
    from mmrun.errors import TrainingDiverged
    from mmrun.sweep.runs import override_key

    baseline_choice = cfg.get("baseline", "auto")
    if baseline_choice not in ("auto", "none"):
        raise ConfigError(f"baseline={baseline_choice} must be auto (a classical baseline in every run) or none")
    if cfg.get("analysis"):
        from mmrun.analysis.run import selected

        selected(cfg.analysis)  # a mistake in the analysis options is refused before training
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    overrides = [o for o in HydraConfig.get().overrides.task if override_key(o) != "resume"]
    progress = outcome.Progress()
    with interruption.watch_signals():
        try:
            return _train(cfg, run_dir, overrides, baseline_choice, progress)
        except interruption.RunInterrupted as stop:
            outcome.write_interrupted(run_dir, overrides, cfg, progress, stop)
            raise
        except TrainingDiverged as error:
            outcome.write_diverged(run_dir, overrides, cfg, progress, error)
            raise


def train_scratch_twin(cfg: DictConfig, run_dir: Path, overrides: list[str], progress) -> None:
    """``distill.scratch=train``: train the student without its teacher first, in ``<run>/scratch``, and make
    it the run's scratch reference (``mmrun.distill.twin``)."""
    from mmrun.distill import twin

    if not twin.wants_twin(cfg):
        return
    twin_dir = run_dir / twin.FOLDER
    resume = cfg.get("resume")
    if resume and Path(resume).resolve().is_relative_to(twin_dir.resolve()):  # stopped while the twin trained
        with open_dict(cfg):
            cfg.resume = None  # the twin resumes from its own last.ckpt; the distilled student starts anew
    if twin.finished(twin_dir):
        log.info("distill.scratch=train: the scratch student finished earlier in %s", twin_dir)
    else:
        log.info("distill.scratch=train: training the student without its teacher first, in %s", twin_dir)
        _train(twin.twin_config(cfg, twin_dir), twin_dir, twin.twin_overrides(overrides), "none", progress)
        log.info("distill.scratch=train: now the distilled student")
        import torch

        if torch.cuda.is_available():  # the twin's cached blocks would shrink the student's on_device budget
            torch.cuda.empty_cache()
    with open_dict(cfg):
        cfg.distill.scratch = str(twin_dir)


def _train(cfg: DictConfig, run_dir: Path, overrides: list[str], baseline_choice: str, progress) -> float | None:
    import torch
    from hydra.core.hydra_config import HydraConfig
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from mmrun import interruption
    from mmrun.checkpoint import read_checkpoint
    from mmrun.distributed import job_scope
    from mmrun.memory import peak_memory_mb
    from mmrun.plots import ConfusionMatrixPlot, curves_png
    from mmrun.report import git_commit, metrics_table, package_versions, print_table, write_json

    train_scratch_twin(cfg, run_dir, overrides, progress)
    resume = cfg.get("resume")
    if resume and cfg.optimizer.get("lr") == "auto":  # the rate found when the run started
        with open_dict(cfg):
            cfg.optimizer.lr = read_checkpoint(resume)["mmrun"]["config"]["optimizer"]["lr"]
    parts = build_run(cfg, run_dir, extra_callbacks=(ConfusionMatrixPlot(run_dir / "confusion_matrix.png"),))
    datamodule, model, trainer, tracker = parts.datamodule, parts.model, parts.trainer, parts.tracker
    progress.trainer = trainer
    parameters = model.count_parameters()

    with job_scope(HydraConfig.get().overrides.task, str(run_dir)):
        if cfg.optimizer.get("lr") == "auto":
            find_learning_rate(cfg, parts)
        if resume:
            log.info("resuming from %s", resume)
        fit_started = time.perf_counter()
        with interruption.deferred():
            try:
                trainer.fit(model, datamodule=datamodule, ckpt_path=resume or None, weights_only=True)
            except SIGTERMException:  # Lightning stopped inside validation; last.ckpt is the epoch before
                raise interruption.RunInterrupted(signal.SIGTERM) from None
        train_time = time.perf_counter() - fit_started
        best_path = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best_path:
            best = read_checkpoint(best_path)  # this run's own file
            model.on_load_checkpoint(best)  # a distiller's weights back beside the student's
            model.load_state_dict(best["state_dict"])
        test = trainer.test(model, datamodule=datamodule, verbose=False)[0]
        teacher_test = parts.distillation.teacher_test(datamodule) if parts.distillation else None
    test = {k: float(v) for k, v in test.items() if k.startswith("test/")}

    if trainer.is_global_zero:
        baseline = None
        if baseline_choice == "auto":
            from mmrun.baseline.summary import classical_baseline

            baseline = classical_baseline(cfg, datamodule, model)
        summary = {
            "schema_version": 1,
            "status": "completed",
            "run_dir": str(run_dir.resolve()),
            "task": model.task.kind,
            "monitor": cfg.monitor,
            "monitor_mode": cfg.monitor_mode,
            "best_epoch": None if tracker.best_epoch is None else tracker.best_epoch + 1,  # 1-based, as logged
            "best_val": tracker.best,
            "test": test,
            "epochs": trainer.current_epoch,
            "train_time_s": round(train_time, 3),
            "parameters": parameters,
            "seed": cfg.seed,
            "overrides": overrides,
            "resumed_from": resume or None,
            "checkpoints": {
                "best": str(Path(best_path).resolve()) if best_path else None,
                "last": str((run_dir / "checkpoints" / "last.ckpt").resolve())
                if (run_dir / "checkpoints" / "last.ckpt").exists() else None,
            },
            "versions": package_versions(),
            "git_commit": git_commit(Path.cwd()),
            "device": str(trainer.strategy.root_device),
            "peak_memory_mb": peak_memory_mb(),
            "epoch_time_s": parts.epochs.epoch_times,
            "train_samples_per_s": parts.epochs.samples_per_second(trainer.world_size),
            "threads": torch.get_num_threads(),
            "baseline": baseline,
            **model.task.report("test"),
        }
        if parts.distillation:
            summary["distill"] = parts.distillation.summary(model, test, teacher_test)
        write_json(run_dir / "metrics.json", summary)
        curves_png(run_dir / "metrics.csv", cfg.monitor, run_dir / "curves.png")
        sections = {"best val": tracker.best, "test": test}
        if teacher_test is not None:
            sections["teacher test"] = teacher_test
        title = "mmrun train"
        if baseline and "error" not in baseline:
            sections.update({"baseline val": baseline["val"], "baseline test": baseline["test"]})
            title += f" (classical baseline: {baseline['best']})"
        print_table(metrics_table(title, sections))
        if baseline:
            from mmrun.baseline.summary import below_baseline

            warning = below_baseline(test, baseline, cfg.monitor_mode)
            if warning:
                log.warning(warning)
        if cfg.get("analysis"):
            analyse_best(cfg, parts, best_path, run_dir)
        log.info("run folder: %s", run_dir)
    return tracker.best.get(cfg.monitor)
