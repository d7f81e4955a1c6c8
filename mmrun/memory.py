"""Peak memory of the current process, for metrics.json and the sweep comparison."""

from __future__ import annotations

import resource
import sys


def peak_memory_mb() -> dict[str, float | None]:
    """``{"host": peak resident set size, "cuda": peak allocated GPU memory or None}`` in MiB.

    The host figure is the process's high-water mark (``getrusage``), so it includes data
    loading; the GPU figure is what PyTorch allocated on the current device.
    """
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    host = rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux
    cuda = None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return {"host": round(host, 1), "cuda": cuda}
