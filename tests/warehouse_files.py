"""DuckDB files a command cannot use (damaged, empty, read-only) and the commands that open the
warehouse: shared by the tests of the error boundary and the reliability suite."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import duckdb

# every command that opens the warehouse, with arguments that would otherwise work
COMMANDS = {
    "collect": ["collect"],
    "run": ["run"],
    "detect": ["detect"],
    "backfill": ["backfill", "--start-date", "2026-12-01", "--end-date", "2026-12-01"],
    "status": ["status"],
    "status --json": ["status", "--json"],
    "query": ["query", "select 1"],
    "silence": ["silence", "checkout_completed", "--for", "1h", "--reason", "a launch"],
    "silences": ["silences"],
    "unsilence": ["unsilence", "checkout_completed"],
    "snapshot": ["snapshot", "copy.duckdb"],
    "backtest": ["backtest", "--start-date", "2026-12-01", "--end-date", "2026-12-01"],
    "dbt": ["dbt", "--", "ls"],
    "check": ["check"],
}
# what each kind of file makes the commands say
SAYS = {
    "damaged": "is not a DuckDB database, or a damaged one",
    "empty": "is an empty file (0 bytes)",
    "read-only": "cannot be written",
}
# a read-only file can still be read: query needs no turn then
READS_A_READ_ONLY_FILE = {"query"}


def damaged(path: Path) -> None:
    path.write_bytes(b"DUCK" + hashlib.sha256(b"not a database").digest() * 600)


def empty(path: Path) -> None:
    path.write_bytes(b"")


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """A DuckDB file that cannot be written: ``chmod`` for a user, the immutable flag for root (whom
    file modes do not stop)."""
    duckdb.connect(str(path)).close()
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield
        path.chmod(0o644)
        return
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@contextlib.contextmanager
def file_of_kind(kind: str, path: Path) -> Iterator[None]:
    if kind == "read-only":
        with read_only(path):
            yield
        return
    (damaged if kind == "damaged" else empty)(path)
    yield


def fingerprint(path: Path) -> tuple[int, str]:
    data = path.read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()
