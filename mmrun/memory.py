"""Peak memory of the current job, for metrics.json and the sweep comparison."""

from __future__ import annotations

import contextlib
import resource
import sys
from pathlib import Path

# Linux: VmHWM in /proc/self/status is the peak resident set size, and writing "5" to
# /proc/self/clear_refs resets it, so each job of a sweep (all in one process) gets its own peak.
STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_memory() -> None:
    """Start a new peak for this job (host where the OS allows it, and the current GPU)."""
    if CLEAR_REFS.exists():  # elsewhere the host peak stays the process's (getrusage)
        with contextlib.suppress(OSError):  # a sandbox may refuse the write: same fallback
            CLEAR_REFS.write_text("5")
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()


def _host_peak_mb() -> float:
    if STATUS.exists():
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def peak_memory_mb() -> dict[str, float | None]:
    """``{"host": peak resident set size, "cuda": peak allocated GPU memory or None}`` in MiB.

    Both peaks count from the last ``reset_peak_memory`` (the job's start) where the
    platform allows it, and include data loading.
    """
    cuda = None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return {"host": round(_host_peak_mb(), 1), "cuda": cuda}
