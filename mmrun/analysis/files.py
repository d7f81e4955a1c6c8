"""What an analysis leaves in the run folder: robustness.csv/.json, contribution.csv/.json,
written atomically (a temporary file, then ``os.replace``), and its summary on the console."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any

from rich.table import Table

log = logging.getLogger("mmrun")
SCHEMA_VERSION = 1
ROBUSTNESS_COLUMNS = ("modality", "corruption", "p", "repeat", "metric")
CONTRIBUTION_COLUMNS = ("modality", "measure", "repeat", "value")


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def _figure(value: Any) -> str:
    return "" if value is None else f"{value:.3f}"


def summary_table(robustness: dict[str, Any] | None, contribution: dict[str, Any] | None) -> Table:
    """Per modality: relative robustness to missing and noise, Shapley share, leave-one-out, permutation."""
    report = robustness or contribution
    table = Table(title=f"mmrun analysis: {report['metric']} ({report['mode']})")
    table.add_column("modality")
    columns = []
    if robustness:
        columns += [("RR missing", lambda n: robustness["modalities"][n]["missing"]["relative_robustness"]),
                    ("RR noise", lambda n: robustness["modalities"][n]["noise"]["relative_robustness"])]
        if robustness["effective_robustness"]:
            effective = robustness["effective_robustness"]
            columns += [("ER missing", lambda n: effective[n]["missing"]), ("ER noise", lambda n: effective[n]["noise"])]
    if contribution:
        columns += [(title, lambda n, key=key: contribution["modalities"][n][key])
                    for title, key in (("Shapley share", "shapley_share"), ("Shapley", "shapley"),
                                       ("leave-one-out", "leave_one_out"), ("permutation", "permutation"))]
    for title, _ in columns:
        table.add_column(title, justify="right")
    for name in report["modalities"]:
        table.add_row(name, *(_figure(value(name)) for _, value in columns))
    return table


def log_robustness(report: dict[str, Any], run_dir: Path) -> None:
    summary = report["summary"]
    log.info("robustness: clean %s %.4f; relative robustness to missing %.3f (worst %s %.3f), to noise %.3f "
             "(worst %s %.3f); %d evaluations in %.1f s; robustness.csv/.json/.png in %s", report["metric"],
             report["clean"], summary["missing"]["mean"], summary["missing"]["worst_modality"],
             summary["missing"]["worst"], summary["noise"]["mean"], summary["noise"]["worst_modality"],
             summary["noise"]["worst"], report["evaluations"], report["seconds"], run_dir)


def log_contribution(report: dict[str, Any], run_dir: Path) -> None:
    shares = ", ".join(f"{name} {values['shapley_share']:.2f}" for name, values in report["modalities"].items())
    log.info("contribution: %s full %.4f, empty %.4f; Shapley shares %s; %d evaluations in %.1f s; "
             "contribution.csv/.json/.png in %s", report["metric"], report["full"], report["empty"], shares,
             report["evaluations"], report["seconds"], run_dir)
