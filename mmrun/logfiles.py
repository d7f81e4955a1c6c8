"""Write a log record to the run's log files only, not the console.

For lines the console already shows in another form: a user error printed once on stderr,
a traceback the console leaves out, an epoch summary that the progress bar shows.
"""

from __future__ import annotations

import logging

log = logging.getLogger("mmrun")


def to_log_files(level: int, message: str) -> None:
    record = log.makeRecord(log.name, level, __file__, 0, "%s", (message,), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
