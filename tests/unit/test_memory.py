"""Peak memory in metrics.json counts from the job's start, not the sweep process's."""

import pytest
import torch

from mmrun.memory import CLEAR_REFS, peak_memory_mb, reset_peak_memory


def test_peak_grows_with_allocations():
    reset_peak_memory()
    before = peak_memory_mb()["host"]
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, written
    block += 1
    assert peak_memory_mb()["host"] >= before + 32
    assert peak_memory_mb()["cuda"] is None or torch.cuda.is_available()


@pytest.mark.skipif(not CLEAR_REFS.exists(), reason="the peak can only be reset on Linux")
def test_reset_starts_a_new_peak():
    block = torch.ones(128 * 2**20 // 4)
    block += 1
    grown = peak_memory_mb()["host"]
    del block
    reset_peak_memory()
    assert peak_memory_mb()["host"] < grown - 64
