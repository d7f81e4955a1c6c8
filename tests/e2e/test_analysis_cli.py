"""`+analysis=...` through the CLI: at the end of mmrun train, and on mmrun eval of its checkpoint."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import TINY, read_metrics, run_dirs, run_mmrun

FAST = ["analysis.levels=[0.0,0.5,1.0]", "analysis.repeats=2"]


def test_train_and_eval_write_the_analysis_files(tmp_path):
    trained = run_mmrun(["train", *TINY, "+analysis=robustness", *FAST], tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path / "outputs")
    robustness = json.loads((run_dir / "robustness.json").read_text())
    test_acc = read_metrics(run_dir)["test"]["test/acc"]
    assert robustness["metric"] == "test/acc" and robustness["clean"] == pytest.approx(test_acc, abs=1e-7)
    assert set(robustness["modalities"]) == {"audio", "image", "tabular", "text"}
    assert len(robustness["subsets"]) == 15 and (run_dir / "robustness.png").is_file()
    with (run_dir / "robustness.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert all(float(r["metric"]) == robustness["clean"] for r in rows if float(r["p"]) == 0)
    assert "robustness: clean test/acc" in trained.stderr + trained.stdout

    evaluated = run_mmrun(["eval", f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", "accelerator=cpu",
                           "+analysis=contribution", "analysis.repeats=2"], tmp_path / "outputs")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    (folder,) = {p.parent for p in (tmp_path / "outputs" / "outputs").rglob("contribution.json")}
    contribution = json.loads((folder / "contribution.json").read_text())
    assert contribution["full"] == pytest.approx(test_acc, abs=1e-7)
    shapley = [m["shapley"] for m in contribution["modalities"].values()]
    assert sum(shapley) == pytest.approx(contribution["full"] - contribution["empty"], abs=1e-6)
    assert (folder / "contribution.csv").is_file() and (folder / "contribution.png").is_file()

    refused = run_mmrun(["eval", f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", "+analysis=robustness",
                         f"analysis.baseline={tmp_path / 'nowhere'}"], tmp_path)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("mmrun: error: analysis.baseline=")
