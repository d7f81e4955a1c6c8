"""Stop signals (SIGTERM, SIGINT, SIGUSR1) end a run resumably instead of silently.

A cluster's preemption or time limit sends SIGTERM, SIGUSR1 or SIGUSR2 (submitit asks SLURM
for SIGUSR2 before the time limit), a user presses Ctrl-C (SIGINT). ``watch_signals`` replaces the handlers for the length of a run:
a signal only records itself, and training stops at the end of the batch under way, where
``mmrun.callbacks.resume.LastCheckpoint`` saves a resumable last.ckpt and raises
``RunInterrupted``. Outside the training loop (data loading, testing) the handler raises
``RunInterrupted`` at once. The command then writes ``status: interrupted`` into
metrics.json and exits with the shell's convention, 128 + the signal number (143 for SIGTERM,
130 for SIGINT). A handler that was installed before the run (submitit's, which requeues a
preempted SLURM job) is called after that, through ``RunInterrupted.hand_on``, so the requeued
job finds the checkpoint and resumes from it (``mmrun.sweep.jobs.resumable_checkpoint``).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2", "SIGBREAK")
                     if hasattr(signal, name))  # SIGUSR1/2 exist on POSIX only, SIGBREAK on Windows only


class RunInterrupted(BaseException):
    """A stop signal ended the run. A ``BaseException``, like ``KeyboardInterrupt``: a sweep must
    not record it as a failed job and carry on with the next one.

    Args:
        signum: the signal received.
        checkpoint: the resumable checkpoint written at the stop, if any.
    """

    def __init__(self, signum: int, checkpoint: str | None = None) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.checkpoint = checkpoint

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def hand_on(self) -> None:
        """Call the handler this signal had before the run (e.g. submitit's requeue), if it had one."""
        handler = _WATCH.previous.get(self.signum)
        if callable(handler) and handler is not signal.default_int_handler:
            handler(self.signum, None)


class _Watch:
    """The signal received during this run (None: none yet) and whether the training loop
    is running, in which case the loop stops at the next batch boundary."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.deferred = False
        self.previous: dict[int, object] = {}

    def handle(self, signum: int, frame) -> None:
        first = self.received is None
        self.received = self.received or signum
        if (not self.deferred and first) or (not first and signum == signal.SIGINT):  # Ctrl-C twice: now
            raise RunInterrupted(signum)


_WATCH = _Watch()


def pending() -> int | None:
    """The stop signal received since ``watch_signals`` began, or None."""
    return _WATCH.received


@contextmanager
def watch_signals() -> Iterator[None]:
    """Handle stop signals for the length of one run; the previous handlers come back after."""
    _WATCH.received, _WATCH.deferred = None, False
    if threading.current_thread() is not threading.main_thread():  # Python handles signals in the main thread only
        _WATCH.previous = {}
        yield
        return
    _WATCH.previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, _WATCH.handle)
    try:
        yield
    finally:
        for signum, handler in _WATCH.previous.items():
            signal.signal(signum, handler)


@contextmanager
def deferred() -> Iterator[None]:
    """Inside the training loop a signal waits for the end of the batch (``LastCheckpoint``)."""
    _WATCH.deferred = True
    try:
        yield
    finally:
        _WATCH.deferred = False
    if _WATCH.received is not None:  # it arrived after the last batch (validation, last epoch)
        raise RunInterrupted(_WATCH.received)
