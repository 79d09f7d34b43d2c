"""A DuckDB file held by another process (an analyst's notebook, the DuckDB CLI).

DuckDB lets a process write a file only while no other process has it open, even read-only. A
run waits a bounded time for the file to be free, then fails with one line that names the holder.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import duckdb

logger = logging.getLogger("mixpanel_alerts")

_LOCK_CONFLICT = "Could not set lock on file"
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


class DuckDBFileBusyError(Exception):
    """Another process holds the DuckDB file; the message says which and what to do."""


def is_lock_conflict(error: BaseException | str) -> bool:
    return _LOCK_CONFLICT in str(error)


def holder(error: BaseException | str) -> str:
    """The process DuckDB names as the holder of the file's lock."""
    match = _HOLDER.search(str(error))
    return f"{match['program']} (PID {match['pid']})" if match else "another process"


def busy_message(path: Path, error: BaseException | str, waited_seconds: float | None = None) -> str:
    waited = f" after waiting {waited_seconds:.0f} s" if waited_seconds else ""
    return (
        f"DUCKDB_PATH={path} is open in {holder(error)}{waited}: DuckDB lets a run write the file only while no "
        "other process has it open. Close it there (query it with `mixpanel-alerts query` instead, which "
        "takes turns with runs), then run again; nothing collected or sent is lost."
    )


def wait_until_free(path: Path, timeout_seconds: float, poll_seconds: float = 1.0) -> None:
    """Return once this process can open ``path`` for writing (creating it if missing), waiting up to
    ``timeout_seconds`` for other processes to close it; raise ``DuckDBFileBusyError`` otherwise."""
    started = time.monotonic()
    warned = False
    while True:
        try:
            duckdb.connect(str(path)).close()
            return
        except duckdb.IOException as exc:
            if not is_lock_conflict(exc):
                raise
            waited = time.monotonic() - started
            if waited >= timeout_seconds:
                raise DuckDBFileBusyError(busy_message(path, exc, waited)) from None
            if not warned:
                logger.warning("DUCKDB_PATH=%s is open in %s: waiting up to %.0f s", path, holder(exc), timeout_seconds)
                warned = True
            time.sleep(min(poll_seconds, max(timeout_seconds - waited, 0.05)))
