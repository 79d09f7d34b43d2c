"""Every command on a DuckDB file it cannot use (damaged, empty, read-only) fails in at most three
lines that say what, where and what to do, with no traceback, and leaves the file as it was; the
traceback comes with --debug. A full disk under the file is tested in the reliability suite (it
needs a small filesystem of its own)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DB_FILE, output_of
from tests.warehouse_files import COMMANDS, READS_A_READ_ONLY_FILE, SAYS, damaged, file_of_kind, fingerprint


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(SAYS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_command_on_a_file_it_cannot_use_says_so_in_three_lines(
    make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path, kind: str, command: str
) -> None:
    path = tmp_path / DB_FILE
    env = make_env(MIXPANEL_EXPORT_URL="http://127.0.0.1:9", DUCKDB_BUSY_TIMEOUT_SECONDS="1")
    with file_of_kind(kind, path):
        before = fingerprint(path)
        result = run_cli(COMMANDS[command], env)
        after = fingerprint(path)
    output = output_of(result)
    if kind == "read-only" and command in READS_A_READ_ONLY_FILE:
        assert result.returncode == 0, output
        return
    assert result.returncode == 1, output
    assert "Traceback" not in output and len(output.strip().splitlines()) <= 5, output
    errors = [line for line in output.splitlines() if line.startswith("error:") or " failed warehouse:" in line]
    assert errors and SAYS[kind] in errors[0] and f"DUCKDB_PATH={path}" in errors[0], output
    assert after == before, "the file is left as it was"


def test_debug_adds_the_traceback(make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
                                  tmp_path: Path) -> None:  # fmt: skip
    damaged(tmp_path / DB_FILE)
    env = make_env()
    plain = run_cli(["status"], env)
    assert plain.returncode == 1 and "Traceback" not in output_of(plain)
    debug = run_cli(["--debug", "status"], env)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in output_of(debug)
    assert output_of(debug).strip().splitlines()[-1] == output_of(plain).strip().splitlines()[-1]
    by_variable = run_cli(["status"], {**env, "LOG_LEVEL": "debug"})
    assert "Traceback (most recent call last)" in output_of(by_variable)
