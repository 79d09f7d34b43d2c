"""The reliability suite (``just reliability``): fault injection end to end against real boundaries.

Every scenario records one figure line (what was expected, what happened, the exit codes) before it
asserts anything, so a failing scenario still reports its numbers. The lines are printed at the end
of the session and, when ``RELIABILITY_FIGURES`` names a file, written there (the README quotes them).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

# figure lines in the order the scenarios ran
FIGURES: list[str] = []


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record the scenario's figure line (call it before asserting)."""

    def record(line: str) -> None:
        FIGURES.append(line)
        print(f"FIGURE {request.node.name}: {line}")

    return record


@pytest.fixture
def scratch_tmp(tmp_path: Path) -> Path:
    """A TMPDIR of the test's own: the CLI's scratch folders land in ``<it>/mixpanel-alerts-UID/``."""
    path = tmp_path / "tmp"
    path.mkdir()
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for line in FIGURES:
        terminalreporter.write_line(line)
    target = os.environ.get("RELIABILITY_FIGURES")
    if target:
        Path(target).write_text("".join(f"{line}\n" for line in FIGURES), encoding="utf-8")
