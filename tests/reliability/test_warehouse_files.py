"""The DuckDB file cannot be used: every command, on a damaged, an empty and a read-only file, ends
in at most three lines (what, where, what to do) with no traceback and leaves the file as it was;
a disk that fills up under the file mid-collect fails the run in a few lines, and once there is
room again the next run stores every event once."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from mixpanel_alerts.simulator import ExportSimulator
from tests.conftest import CLI, EVENTS_TABLE, query, recent_traffic, untimed
from tests.warehouse_files import COMMANDS, SAYS, file_of_kind, fingerprint

FULL_DISK_EVENTS = 120_000


@pytest.mark.reliability
@pytest.mark.parametrize("kind", list(SAYS))
def test_every_command_on_a_file_it_cannot_use(
    kind: str, make_env: Callable[..., dict[str, str]], tmp_path: Path, figure: Callable[[str], None]
) -> None:
    path = tmp_path / "mixpanel.duckdb"
    env = make_env(MIXPANEL_EXPORT_URL="http://127.0.0.1:9", DUCKDB_BUSY_TIMEOUT_SECONDS="1")
    exits: Counter[int] = Counter()
    lines, tracebacks, changed, unclear = [], 0, 0, []
    with file_of_kind(kind, path):
        before = fingerprint(path)
        for name, arguments in COMMANDS.items():
            done = subprocess.run([CLI, *arguments], env=env, cwd=tmp_path, capture_output=True, text=True,
                                  timeout=180, check=False)  # fmt: skip
            output = untimed(done.stdout + done.stderr)
            exits[done.returncode] += 1
            if done.returncode != 0:  # a read-only file can be read: `query` prints its rows
                lines.append(len(output.strip().splitlines()))
            tracebacks += "Traceback" in output
            changed += fingerprint(path) != before
            if done.returncode != 0 and SAYS[kind] not in output:
                unclear.append(name)
    figure(
        f"{kind} DuckDB file, {len(COMMANDS)} commands as processes: exits {dict(sorted(exits.items()))}, a failure "
        f"printed at most {max(lines)} lines, tracebacks {tracebacks}, commands that did not say what is wrong "
        f"{unclear or 'none'}, file changed by {changed}"
    )
    assert tracebacks == 0 and changed == 0 and unclear == []
    assert max(lines) <= 5  # `check` lists its four checks; the others say one or two lines


@pytest.mark.reliability
def test_a_disk_that_fills_up_under_the_file_mid_collect(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], tmp_path: Path, figure: Callable[[str], None]
) -> None:
    """The DuckDB file on a 6 MB filesystem of its own (a tmpfs in a user and mount namespace): the
    collect fills it; the filesystem grows; the next collect stores every event exactly once."""
    unshare = shutil.which("unshare")
    assert unshare, "util-linux's unshare is needed (a user and mount namespace for a small tmpfs)"
    events = recent_traffic(FULL_DISK_EVENTS, seed=71)
    sim.add_events(events)
    disk = tmp_path / "disk"
    disk.mkdir()
    env = make_env(sim, DUCKDB_PATH=str(disk / "mixpanel.duckdb"))
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    script = f"""
set -u
mount -t tmpfs -o size=6m tmpfs {disk}
{CLI} collect > {outputs}/full.txt 2>&1; echo $? > {outputs}/full.code
mount -o remount,size=1g {disk}
{CLI} collect > {outputs}/room.txt 2>&1; echo $? > {outputs}/room.code
cp {disk}/mixpanel.duckdb {tmp_path}/after.duckdb
"""
    subprocess.run([unshare, "-rm", "sh", "-c", script], env=env, cwd=tmp_path, check=True, timeout=600)
    full, room = (untimed((outputs / f"{name}.txt").read_text()) for name in ("full", "room"))
    codes = [int((outputs / f"{name}.code").read_text()) for name in ("full", "room")]
    stored, distinct = query(
        tmp_path / "after.duckdb", f"select count(*), count(distinct event_id) from {EVENTS_TABLE}"
    )[0]
    figure(
        f"disk full under DUCKDB_PATH (6 MB) mid-collect of {len(events):,} events: exits {codes}, the full run "
        f"printed {len(full.strip().splitlines())} lines with {full.count('Traceback')} tracebacks; after room was "
        f"made: events expected {len(events):,}, stored {stored:,}, distinct {distinct:,}"
    )
    assert codes == [1, 0], full + room
    assert "Traceback" not in full and len(full.strip().splitlines()) <= 6, full
    assert "is full" in full and "No space left on device" in full
    assert stored == distinct == len(events)
    assert os.path.getsize(tmp_path / "after.duckdb") > 0
