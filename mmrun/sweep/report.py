"""Write a comparison report for run or sweep folders and print its table.

Files in ``output``: comparison.csv, comparison.md, comparison.png, learning_curves.png,
comparison_robustness.png when the runs ran the analysis (``mmrun.sweep.analysis``), a distillation
section when they distilled (``mmrun.sweep.distill``), and for
an Optuna search also optimisation_history.png with the best parameters in the Markdown. Used
by the end-of-multirun callback and by ``mmrun compare``.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from mmrun.sweep import distill, formats, plots
from mmrun.sweep.runs import Run, find_runs
from mmrun.sweep.table import Comparison, build

OPTUNA_RESULTS = "optimization_results.yaml"  # written by hydra-optuna-sweeper at the sweep root
OFF_TERMINAL_WIDTH = 100
ROBUSTNESS_PNG = "comparison_robustness.png"


def write_report(folders: list[Path], output: Path, group_by: list[str] | None = None, metric: str | None = None,
                 mode: str | None = None, console: Console | None = None) -> Comparison:
    """Compare every run below ``folders``, write the report files into ``output``, print the table."""
    runs = find_runs(folders)
    comparison = build(runs, group_by=group_by, metric=metric, mode=mode)
    output.mkdir(parents=True, exist_ok=True)
    sections = []
    for folder in folders:
        if (folder / OPTUNA_RESULTS).is_file():
            sections.append(_search_section(folder, runs, comparison, output))
    distilled = distill.distill_rows(comparison)
    if distilled:
        sections.append(distill.markdown(distilled, comparison.test_metric))
    formats.write_csv(comparison, output / "comparison.csv")
    (output / "comparison.md").write_text(formats.markdown(comparison, sections))
    plots.comparison_png(comparison, output / "comparison.png")
    plots.learning_curves_png(comparison, output / "learning_curves.png")
    figures = ["comparison.png", "learning_curves.png"]
    if comparison.measures:
        plots.robustness_png(comparison, output / ROBUSTNESS_PNG)
        figures.append(ROBUSTNESS_PNG)

    console = console or _console()
    if comparison.rows:
        console.print(formats.rich_table(comparison, f"comparison of {len(runs) - len(comparison.failed)} runs "
                                                     f"by {comparison.metric} ({comparison.mode})"))
    for line in formats.class_lines(comparison):
        console.print(escape(line))
    if sizes := formats.parameters_line(comparison):
        console.print(f"[bold yellow]note:[/] {escape(sizes)}")
    if comparison.measures:
        console.print(formats.analysis_table(comparison))
    if repeated := formats.repeats_line(comparison):
        console.print(f"[bold yellow]note:[/] {escape(repeated)}")
    if warning := formats.baseline_warning(comparison):
        console.print(f"[bold yellow]warning:[/] {escape(warning)}")
    if single := formats.single_modality_line(comparison):
        console.print(escape(single))
    if distilled:
        console.print(distill.rich_table(distilled, comparison.test_metric))
    if comparison.failed:
        console.print(formats.failed_table(comparison))
    console.print(f"report: {output / 'comparison.md'} (+ .csv, {', '.join(figures)})")
    return comparison


def _console() -> Console:
    """The terminal's width on a terminal; elsewhere (logs, pipes) the 100 columns the table is made to fit."""
    console = Console()
    return console if console.is_terminal else Console(width=OFF_TERMINAL_WIDTH)


def _search_section(folder: Path, runs: list[Run], comparison: Comparison, output: Path) -> str:
    """The best parameters of a hyperparameter search and its history plot, as Markdown."""
    from omegaconf import OmegaConf

    results = OmegaConf.to_container(OmegaConf.load(folder / OPTUNA_RESULTS))
    trials = sorted((r for r in runs if r.path.parent == folder.resolve() and r.job_number is not None),
                    key=lambda r: r.job_number)
    history = output / "optimisation_history.png"
    plots.optimisation_history_png([r.value(comparison.metric) for r in trials], comparison.mode,
                                   comparison.metric, history)
    lines = [f"## Best parameters ({folder.name})", ""]
    if "best_params" in results:
        lines += [f"- `{k}={v}`" for k, v in results["best_params"].items()]
        lines += ["", f"Best value: {results.get('best_value')} (over the whole study, including earlier runs "
                      f"resumed from its storage)."]
    else:
        lines += [f"- {solution}" for solution in results.get("solutions", [])]
    lines += ["", f"![optimisation history]({history.name})"]
    return "\n".join(lines)
