"""Scratch folders for one run (export spools, dlt's working folder), cleaned even after a kill.

Each folder lives under ``$TMPDIR/mixpanel-alerts-UID/`` and is locked (``flock``) by the process that
made it for as long as it exists. A process killed with ``kill -9`` cannot remove its folders, but
its locks die with it: the next run removes every folder nobody holds (``clean_stale``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger("mixpanel_alerts")

# a folder whose maker still lives is only judged stale once older than this (its maker locks it
# right after making it); one whose maker is dead (its pid is in its name) is stale at once
STALE_AFTER_SECONDS = 60.0


def scratch_root() -> Path:
    """One folder per user: another user's runs could not write in a shared one."""
    return Path(tempfile.gettempdir()) / f"mixpanel-alerts-{os.getuid()}"


@contextlib.contextmanager
def scratch_dir(purpose: str) -> Iterator[Path]:
    """A new folder for ``purpose``, held by this process and removed on exit."""
    root = scratch_root()
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{purpose}-{os.getpid()}-", dir=root))
    handle = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(handle)


def clean_stale(now: float | None = None) -> int:
    """Remove the scratch folders of processes that died without removing them; return how many."""
    root = scratch_root()
    if not root.is_dir():
        return 0
    now = time.time() if now is None else now
    removed = 0
    for path in root.iterdir():
        try:
            if not path.is_dir() or (_maker_alive(path) and now - path.stat().st_mtime < STALE_AFTER_SECONDS):
                continue
            handle = os.open(path, os.O_RDONLY)
        except OSError:  # removed meanwhile by its owner or another cleaner
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live run holds it
        else:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        finally:
            os.close(handle)
    if removed:
        logger.info("removed %s scratch folder(s) left by killed runs under %s", removed, root)
    return removed


def _maker_alive(path: Path) -> bool:
    """Whether the process whose pid the folder's name holds (``purpose-pid-…``) still runs."""
    try:
        pid = int(path.name.split("-")[1])
        os.kill(pid, 0)
    except (IndexError, ValueError):
        return True  # not a name of ours: judge by age alone
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True
