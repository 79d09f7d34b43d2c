"""A DuckDB file held by another process (an analyst's notebook, the DuckDB CLI).

DuckDB lets a process write a file only while no other process has it open, even read-only. A
run waits a bounded time for the file to be free, then fails with one line that names the holder.
"""

from __future__ import annotations

import errno
import logging
import re
import time
from pathlib import Path

import duckdb

from .errors import WarehouseBusyError, WarehouseError, first_line

logger = logging.getLogger("mixpanel_alerts")

_LOCK_CONFLICT = "Could not set lock on file"
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


class DuckDBFileBusyError(WarehouseBusyError):
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


_DAMAGED = ("not a valid DuckDB database file", "Failure while replaying WAL", "checksum", "Corrupt")
_NO_SPACE = ("No space left on device", "Disk quota exceeded")
_NO_WRITE = ("Permission denied", "Read-only file system", "Operation not permitted")


def file_problem(path: Path, error: BaseException) -> WarehouseError | WarehouseBusyError | None:
    """What is wrong with the DuckDB file at ``path``, from an error of DuckDB (or of the system,
    writing beside it), in words that say what to do; None when the error is not about the file."""
    text = str(error)
    where = f"DUCKDB_PATH={path}"
    if is_lock_conflict(text):
        return WarehouseBusyError(busy_message(path, text))
    code = getattr(error, "errno", None)
    reason = _reason(error, text)
    if code in (errno.ENOSPC, errno.EDQUOT) or any(marker in text for marker in _NO_SPACE):
        return WarehouseError(
            f"the disk under {where} is full ({reason}). Free space there, then run again: what was committed "
            "stays, and the step that failed is redone"
        )
    if code in (errno.EACCES, errno.EROFS, errno.EPERM) or any(marker in text for marker in _NO_WRITE):
        return WarehouseError(
            f"{where} cannot be written ({reason}). Runs write the file and files beside it (a .wal, a .lock): give "
            "this user write access to the file and its folder, or set DUCKDB_PATH to a writable place"
        )
    if any(marker in text for marker in _DAMAGED):
        size = path.stat().st_size if path.is_file() else None
        what = "an empty file (0 bytes)" if size == 0 else "not a DuckDB database, or a damaged one"
        return WarehouseError(
            f"{where} is {what}. Move it aside and run again to start a new warehouse (then `mixpanel-alerts "
            "backfill` the days you need), or put back a copy made with `mixpanel-alerts snapshot`"
        )
    return None


def _reason(error: BaseException, text: str) -> str:
    """The system's words for what went wrong (``No space left on device``), without the paths."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    for marker in (*_NO_SPACE, *_NO_WRITE):
        if marker in text:
            return marker
    return first_line(error, 160)


def wait_until_free(path: Path, timeout_seconds: float, poll_seconds: float = 1.0) -> None:
    """Return once this process can open ``path`` for writing (creating it if missing), waiting up to
    ``timeout_seconds`` for other processes to close it; raise ``DuckDBFileBusyError`` when they do
    not, and a ``WarehouseError`` that says what to do when the file cannot be used."""
    started = time.monotonic()
    warned = False
    while True:
        try:
            duckdb.connect(str(path)).close()
            return
        except duckdb.Error as exc:
            if not is_lock_conflict(exc):
                raise file_problem(path, exc) or exc from None
            waited = time.monotonic() - started
            if waited >= timeout_seconds:
                raise DuckDBFileBusyError(busy_message(path, exc, waited)) from None
            if not warned:
                logger.warning("DUCKDB_PATH=%s is open in %s: waiting up to %.0f s", path, holder(exc), timeout_seconds)
                warned = True
            time.sleep(min(poll_seconds, max(timeout_seconds - waited, 0.05)))
