"""``+analysis=robustness|contribution|all``: run the asked analyses of one model on one split.

Called by ``mmrun eval`` (on the scored split) and by ``mmrun train`` (on the test split, with
the best checkpoint, after its test). One ``Evaluator`` holds the model and the split on the
device for every analysis; conditions that recur (a subset of modalities missing entirely)
are scored once and shared between robustness and contribution.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from mmrun.analysis.contribution import contribution
from mmrun.analysis.evaluation import Evaluator
from mmrun.analysis.files import (
    CONTRIBUTION_COLUMNS,
    ROBUSTNESS_COLUMNS,
    SCHEMA_VERSION,
    log_contribution,
    log_robustness,
    summary_table,
    write_csv,
)
from mmrun.analysis.plots import contribution_png, robustness_png
from mmrun.analysis.robustness import csv_rows, robustness_curves, summarise
from mmrun.errors import AnalysisError

ANALYSES = ("robustness", "contribution")


def baseline_checkpoint(path: str) -> Path:
    """A checkpoint path, or a run folder's ``checkpoints/best.ckpt``."""
    given = Path(path).expanduser()
    file = given / "checkpoints" / "best.ckpt" if given.is_dir() else given
    if not file.is_file():
        raise AnalysisError(f"analysis.baseline={path}: no checkpoint there (looked for {file}); pass a run "
                            f"folder or its checkpoints/best.ckpt")
    return file


def load_baseline(path: str, model) -> Any:
    """The baseline run's model, refused unless it reads the same modalities for the same task."""
    from mmrun.checkpoint import load_checkpoint, model_from_checkpoint

    file = baseline_checkpoint(path)
    baseline = model_from_checkpoint(load_checkpoint(file), file).to(model.device)
    facts = [(lambda m: m.task.kind, "task"),
             (lambda m: [(s.name, s.kind, tuple(s.shape)) for s in m.spec.modalities if s.name in m.modalities],
              "modalities (name, kind, shape)")]
    for fact, what in facts:
        if fact(baseline) != fact(model):
            raise AnalysisError(f"analysis.baseline={path} has {what} {fact(baseline)}, this model {fact(model)}; "
                                f"compare with a run on the same data and task (e.g. the same command with fusion=late)")
    if baseline.spec.extra.get("fitted") != model.spec.extra.get("fitted"):
        raise AnalysisError(f"analysis.baseline={path} prepared its data differently (another vocabulary or "
                            f"statistics); compare with a run on the same dataset config")
    return baseline


def robustness(options: DictConfig, evaluator: Evaluator, head: dict[str, Any], memo: dict,
               baseline) -> dict[str, Any]:
    """robustness.json's content, with the csv ``rows`` and the ``baseline_report`` (or None) for the figure."""
    levels, repeats, seed = list(options.levels), int(options.repeats), int(options.seed)
    curves = robustness_curves(evaluator, levels, repeats, seed, memo)
    base_curves = base_report = None
    if baseline is not None:
        base = Evaluator(baseline, evaluator.tensors, evaluator.batch_size, head["split"], evaluator.precision)
        if (base.metric, base.mode) != (evaluator.metric, evaluator.mode):
            raise AnalysisError(f"analysis.baseline={options.baseline} monitors {base.metric} ({base.mode}), this "
                                f"model {evaluator.metric} ({evaluator.mode}); compare runs with the same monitor")
        base_curves = robustness_curves(base, levels, repeats, seed, {})
        base_report = {**head, "clean": base.clean, **summarise(base_curves, base.clean, base.mode)}
    report = {**head, "clean": evaluator.clean, "repeats": repeats, "levels": levels,
              **summarise(curves, evaluator.clean, evaluator.mode, base_curves)}
    if base_report is not None:
        report["effective_robustness"]["baseline"] = str(baseline_checkpoint(options.baseline).resolve())
        report["baseline_clean"] = base_report["clean"]
    return {**report, "evaluations": evaluator.evaluations, "rows": csv_rows(curves), "baseline_report": base_report}


def selected(options: DictConfig) -> list[str]:
    """The analyses ``options`` asks for; checks the baseline's path too, so a mistake is refused
    before any scoring (or training)."""
    chosen = [name for name in ANALYSES if options.get(name)]
    if not chosen:
        raise AnalysisError("the analysis config asks for nothing; use +analysis=robustness, contribution or all")
    if options.get("baseline"):
        baseline_checkpoint(options.baseline)
    return chosen


def analyse(options: DictConfig, model, tensors: dict[str, torch.Tensor], run_dir: Path, batch_size: int,
            split: str = "test", precision: Callable[[], Any] = contextlib.nullcontext) -> dict[str, dict]:
    """Run the analyses ``options`` asks for; write their files in ``run_dir``; return their reports."""
    from mmrun.report import print_table, write_json

    chosen = selected(options)
    baseline = load_baseline(options.baseline, model) if options.get("baseline") else None
    started = time.perf_counter()
    evaluator = Evaluator(model, tensors, batch_size, split, precision)
    head = {"schema_version": SCHEMA_VERSION, "metric": evaluator.metric, "mode": evaluator.mode, "split": split}
    memo: dict[tuple[str, ...], float] = {}
    reports: dict[str, dict] = {}
    if "robustness" in chosen:
        reports["robustness"] = robustness(options, evaluator, head, memo, baseline)
        reports["robustness"]["seconds"] = round(time.perf_counter() - started, 3)
        write_csv(run_dir / "robustness.csv", ROBUSTNESS_COLUMNS, reports["robustness"].pop("rows"))
        base_report = reports["robustness"].pop("baseline_report")
        write_json(run_dir / "robustness.json", reports["robustness"])
        robustness_png(reports["robustness"], run_dir / "robustness.png", base_report)
        log_robustness(reports["robustness"], run_dir)
    if "contribution" in chosen:
        started, done = time.perf_counter(), evaluator.evaluations
        measures = contribution(evaluator, int(options.repeats), int(options.seed), memo)
        rows = measures.pop("rows")
        report = {**head, **measures, "repeats": int(options.repeats), "evaluations": evaluator.evaluations - done,
                  "seconds": round(time.perf_counter() - started, 3)}
        write_csv(run_dir / "contribution.csv", CONTRIBUTION_COLUMNS, rows)
        write_json(run_dir / "contribution.json", report)
        contribution_png(report, run_dir / "contribution.png")
        log_contribution(report, run_dir)
        reports["contribution"] = report
    print_table(summary_table(reports.get("robustness"), reports.get("contribution")))
    return reports
