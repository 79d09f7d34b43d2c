"""The errors a command can end with, typed by what the user does about them (the CLI maps them
to exit codes, in at most three lines: what failed, where, what to do).

``ConfigError`` (exit 2) lives beside the settings it is about (``core/config.py``).
"""

from __future__ import annotations


class StepError(Exception):
    """A step failed after its retries (exit 1); the message says what failed and what to do."""


class WarehouseBusyError(StepError):
    """Another process holds the DuckDB file: nothing can be written, this run's record included."""


class WarehouseError(StepError):
    """The warehouse cannot be used as it is (a damaged or empty file, no write access, a full
    disk): the message says which and what to do; nothing committed is lost."""


def unwrap(exc: BaseException) -> BaseException:
    """The error a user should read inside the wrappers of dlt (``exception``) and of ``raise from``."""
    seen = exc
    while True:
        inner = getattr(seen, "exception", None) or seen.__cause__
        if inner is None or inner is seen or not isinstance(inner, BaseException):
            return seen
        seen = inner


def first_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: the first line of its message``, cut at ``limit`` characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
