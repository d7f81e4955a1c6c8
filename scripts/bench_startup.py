"""Start-up cost of mmrun, measured against the bare imports it cannot avoid.

Reports, as medians over ``--repeat`` runs in fresh processes:

* ``mmrun --help`` and a config error (``mmrun train fusion=nope``): answered without
  importing torch or Lightning;
* the time from starting ``mmrun train`` to its first training step (read from a marker
  the first batch prints), beside the time of a bare ``import torch, pytorch_lightning``,
  and the ratio of the two.

    python scripts/bench_startup.py --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MMRUN = str(Path(sys.executable).with_name("mmrun"))
FIRST_STEP_MARKER = "mmrun-bench-first-step"


def timed(command: list[str], cwd: str, until: str | None = None) -> float:
    """Seconds from starting ``command`` until it exits (or prints ``until``)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        if until and until in line:
            elapsed = time.perf_counter() - started
            process.kill()
            process.wait()
            return elapsed
    process.wait()
    if until:
        raise SystemExit(f"{' '.join(command)} never printed {until!r}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        first_step = [MMRUN, "train", "progress=plain", "trainer.accelerator=cpu",
                      f"+callbacks.first_step._target_=mmrun.callbacks.FirstStepMarker",
                      f"+callbacks.first_step.marker={FIRST_STEP_MARKER}"]
        cases = {
            "mmrun --help": ([MMRUN, "--help"], None),
            "config error (mmrun train fusion=nope)": ([MMRUN, "train", "fusion=nope"], None),
            "bare import torch, pytorch_lightning": ([sys.executable, "-c", "import torch, pytorch_lightning"], None),
            "mmrun train to its first training step": (first_step, FIRST_STEP_MARKER),
        }
        medians = {}
        for name, (command, until) in cases.items():
            medians[name] = statistics.median(timed(command, cwd, until) for _ in range(args.repeat))
            print(f"{name:<45} {medians[name]:6.2f} s (median of {args.repeat})", flush=True)
    ratio = medians["mmrun train to its first training step"] / medians["bare import torch, pytorch_lightning"]
    print(f"first training step / bare import: ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
