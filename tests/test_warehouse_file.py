"""The DuckDB file on one machine: held open by another process (an analyst's notebook), read
safely with `query`, and no leftovers after killed runs (scratch folders, lock files)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mixpanel_alerts.simulator import ExportSimulator
from tests.conftest import CLI, DB_FILE, EVENTS_TABLE, output_of, query, recent_traffic


def scratch_root_in(tmpdir: Path) -> Path:
    return tmpdir / f"mixpanel-alerts-{os.getuid()}"


HOLD = (
    "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
    "print('open', flush=True); time.sleep(600)"
)


@pytest.fixture
def hold_file() -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    """Open a DuckDB file read-only in another process, as a notebook or the DuckDB CLI would."""
    holders: list[subprocess.Popen[str]] = []

    def hold(path: Path) -> subprocess.Popen[str]:
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        holders.append(holder)
        return holder

    yield hold
    for holder in holders:
        holder.kill()
        holder.wait()


# moved from `just test` to `just reliability` (CI runs both): a fault injection that takes minutes of waiting
@pytest.mark.reliability
@pytest.mark.parametrize("command", ["collect", "detect", "run"])
def test_a_held_file_makes_a_run_wait_then_fail_in_one_line(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], db_path: Path,
    hold_file: Callable[[Path], subprocess.Popen[str]], command: str,
) -> None:  # fmt: skip
    events = recent_traffic(30)
    sim.add_events(events)
    env = make_env(sim, DUCKDB_BUSY_TIMEOUT_SECONDS="3")
    assert run_cli(["collect"], env).returncode == 0
    holder = hold_file(db_path)

    started = time.monotonic()
    result = run_cli([command], env)
    waited = time.monotonic() - started

    assert result.returncode == 1, output_of(result)
    output = output_of(result)
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"PID {holder.pid}" in errors[0] and "DUCKDB_PATH" in errors[0], output
    assert len(output.splitlines()) <= 4, output
    assert "Traceback" not in output and "credentials" not in output
    assert 3 <= waited < 60

    holder.kill()
    holder.wait()
    again = run_cli(["run"], env)
    assert again.returncode == 0, output_of(again)
    assert query(db_path, f"select count(*), count(distinct event_id) from {EVENTS_TABLE}") == [
        (len(events), len(events))
    ]


def test_query_reads_the_file_between_runs(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
) -> None:  # fmt: skip
    events = recent_traffic(12)
    sim.add_events(events)
    env = make_env(sim)
    assert run_cli(["collect"], env).returncode == 0
    result = run_cli(["query", f"select count(*) as events from {EVENTS_TABLE}", "--format", "csv"], env)
    assert result.returncode == 0, output_of(result)
    assert result.stdout.splitlines() == ["events", str(len(events))]
    bad = run_cli(["query", "select * from no_such_table"], env)
    assert bad.returncode == 2 and "no_such_table" in output_of(bad)
    # a query takes the same turn as a run: both succeed when started together
    runs = [subprocess.Popen([CLI, *args], env=env, cwd=Path(env["HOME"]), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
            for args in (["run"], ["query", "select 1"], ["query", "select 2"])]  # fmt: skip
    outputs = [process.communicate(timeout=180)[0] for process in runs]
    assert [process.returncode for process in runs] == [0, 0, 0], outputs


class SlowBody(ExportSimulator):
    """An export host that answers slowly while ``slow``, so a collect can be killed mid-request."""

    slow = True

    def body_for(self, params: dict[str, str]) -> bytes:
        if self.slow:
            time.sleep(30)
        return super().body_for(params)


def test_killed_runs_leave_nothing_behind(
    start_sim: Callable[..., ExportSimulator], make_env: Callable[..., dict[str, str]],
    run_cli: Callable[..., Any], tmp_path: Path,
) -> None:  # fmt: skip
    """kill -9 mid-collect leaves its scratch folders; the next command removes them. Nothing stays
    beside the database: no lock file, no spill folder."""
    sim = start_sim(SlowBody)
    sim.add_events(recent_traffic(10))
    scratch_tmp = tmp_path / "tmp"
    scratch_tmp.mkdir()
    env = make_env(sim, TMPDIR=str(scratch_tmp))
    process = subprocess.Popen(
        [CLI, "collect"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    scratch = scratch_root_in(scratch_tmp)
    deadline = time.monotonic() + 60
    while not (scratch.is_dir() and len(list(scratch.iterdir())) >= 2) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    left = list(scratch.iterdir())
    assert len(left) >= 2, "the killed collect had made its spool and pipeline folders"

    for path in left:  # they are stale only once older than a run could take to lock them
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    # DuckDB's default spill folder beside the database, as a process killed mid-spill leaves it
    spill = tmp_path / f"{DB_FILE}.tmp"
    spill.mkdir()
    (spill / "duckdb_temp_4242_0_storage_S32K-0.tmp").write_bytes(b"\0" * 4096)
    sim.slow = False
    result = run_cli(["collect"], env)
    assert result.returncode == 0, output_of(result)
    assert not [path for path in left if path.exists()], output_of(result)
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(DB_FILE)) == [DB_FILE]


def test_snapshot_copies_the_warehouse_for_a_long_session(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    hold_file: Callable[[Path], subprocess.Popen[str]],
) -> None:  # fmt: skip
    events = recent_traffic(15)
    sim.add_events(events)
    env = make_env(sim)
    assert run_cli(["collect"], env).returncode == 0
    copy = tmp_path / "analysis.duckdb"
    result = run_cli(["snapshot", str(copy)], env)
    assert result.returncode == 0, output_of(result)
    assert query(copy, f"select count(*) from {EVENTS_TABLE}") == [(len(events),)]
    hold_file(copy)  # a notebook keeps the copy open: runs are not blocked
    assert run_cli(["run"], env).returncode == 0
