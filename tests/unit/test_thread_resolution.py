"""``threads``: auto shares the cores among parallel jobs and DDP processes; a number is kept; bad
values are refused in one line; applying it sets torch's thread pool."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from mmrun.errors import ConfigError
from mmrun.threads import _env_limit, apply_threads, parallel_jobs, processes_per_node, resolve_threads


@pytest.mark.parametrize("cores, n_jobs, expected, reason", [
    (2, None, 2, "2 cores"),  # the basic launcher: one job at a time
    (2, 1, 2, "2 cores"),
    (2, 2, 1, "2 cores / 2 parallel jobs"),
    (8, 2, 4, "8 cores / 2 parallel jobs"),
    (2, 4, 1, "2 cores / 4 parallel jobs"),  # never below one thread
    (2, -1, 1, "2 cores / 2 parallel jobs"),  # joblib's -1: as many jobs as cores
    (8, -1, 1, "8 cores / 8 parallel jobs"),
    (8, -2, 1, "8 cores / 7 parallel jobs"),  # joblib's -2: all cores but one
])
def test_auto_divides_the_cores_among_the_jobs_running_at_once(cores, n_jobs, expected, reason):
    threads = resolve_threads("auto", cores, n_jobs)
    assert (threads.count, threads.reason) == (expected, reason)


def test_log_line_names_the_count_and_why():
    assert f"threads: {resolve_threads('auto', 2, 2)}" == "threads: 1 (2 cores / 2 parallel jobs)"


def test_ddp_processes_divide_further():
    threads = resolve_threads("auto", 8, n_jobs=2, processes=2)
    assert (threads.count, threads.reason) == (2, "8 cores / 2 parallel jobs / 2 DDP processes")


def test_omp_num_threads_caps_auto_but_not_a_number():
    capped = resolve_threads("auto", 8, limit=3)
    assert (capped.count, capped.reason) == (3, "OMP_NUM_THREADS=3; 8 cores")
    assert resolve_threads("auto", 2, n_jobs=2, limit=4).count == 1  # a loose limit changes nothing
    assert resolve_threads(6, 2, limit=1).count == 6


def test_a_number_is_taken_as_it_is():
    threads = resolve_threads(3, 2, n_jobs=2, processes=2)
    assert (threads.count, threads.reason) == (3, "set by threads=3; 2 cores")


@pytest.mark.parametrize("bad", [0, -1, 1.5, "abc", "2", True, None, [2]])
def test_bad_values_are_refused_in_one_line(bad):
    with pytest.raises(ConfigError) as caught:
        resolve_threads(bad, 2)
    message = str(caught.value)
    assert message.startswith("threads=") and "must be auto or a positive whole number" in message
    assert "\n" not in message


def test_parallel_jobs_counts_like_joblib():
    assert [parallel_jobs(n, 4) for n in (None, 1, 3, -1, -2, -4, -10)] == [1, 1, 3, 4, 3, 1, 1]


@pytest.mark.parametrize("devices, gpus, cores, expected", [
    (1, None, 8, 1),
    (2, None, 8, 2),  # trainer=ddp_cpu
    ("auto", None, 8, 1),  # Lightning: one CPU process
    (-1, None, 8, 8),  # Lightning: a CPU process per core
    ([0, 1, 2], 4, 8, 3),
    (-1, 4, 8, 4),
    ("auto", 4, 8, 4),
])
def test_processes_per_node_follow_lightnings_reading_of_devices(devices, gpus, cores, expected):
    assert processes_per_node(devices, gpus, cores) == expected


def test_omp_num_threads_is_read_as_its_first_level():
    assert [_env_limit(text) for text in (None, "", "4", "2,1", "0", "abc")] == [None, None, 4, 2, None, None]


def test_apply_sets_torchs_threads_and_reports_the_count(caplog):
    before = torch.get_num_threads()
    try:
        with caplog.at_level("INFO", logger="mmrun"):
            threads = apply_threads(OmegaConf.create({"threads": 1, "trainer": {"accelerator": "cpu", "devices": 1}}))
        assert threads.count == torch.get_num_threads() == 1
        assert any(record.getMessage().startswith("threads: 1 (set by threads=1") for record in caplog.records)
    finally:
        torch.set_num_threads(before)
