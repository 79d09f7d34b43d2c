"""kill -9 anywhere in a collect: the cursor is committed with the load, so the next collect neither
loses nor doubles an event, and the killed run leaves no scratch folder or lock file behind."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from mixpanel_alerts.simulator import ExportSimulator
from tests.conftest import recent_traffic, summary_numbers
from tests.reliability.support import (
    Runner,
    SlowExportSimulator,
    event_totals,
    last_stage,
    lock_leftovers,
    scratch_leftovers,
)

EVENTS = 20_000
POINTS = 12


def same_or_all(values: list[int]) -> str:
    return str(values[0]) if len(set(values)) == 1 else str(values)


@pytest.mark.reliability
def test_kill_9_anywhere_in_collect(
    start_sim: Callable[..., SlowExportSimulator],
    make_env: Callable[..., dict[str, str]],
    tmp_path: Path,
    scratch_tmp: Path,
    figure: Callable[[str], None],
) -> None:
    """A full collect of 20k events (streamed over 2.5 s) is timed; then, each on a fresh DuckDB
    file, a collect is killed (SIGKILL to its process group) at an evenly spread fraction of that
    time and followed by a normal collect, which must end with every event stored once."""
    sim = start_sim(SlowExportSimulator, per_hour_limit=10_000)
    sim.add_events(recent_traffic(EVENTS, seed=23))
    runner = Runner(tmp_path)

    def env_for(db_file: str) -> dict[str, str]:
        return make_env(sim, DUCKDB_PATH=db_file, TMPDIR=str(scratch_tmp))

    durations = []
    for name in ("measured-1.duckdb", "measured-2.duckdb"):  # the first pays for cold caches
        full = runner.run(["collect"], env_for(name))
        assert full.code == 0, full.output
        assert event_totals(tmp_path / name) == (EVENTS, EVENTS)
        durations.append(full.seconds)
    duration = min(durations)

    stages: list[str] = []
    exits: list[int] = []
    stored: list[int] = []
    distinct: list[int] = []
    reloaded: list[int] = []
    scratch_left: list[int] = []
    problems: list[str] = []
    for point in range(POINTS):
        db_file = f"killed-{point:02d}.duckdb"
        at = duration * (point + 0.5) / POINTS
        killed = runner.kill_after(["collect"], env_for(db_file), at)
        stages.append(last_stage(killed.output) if killed.killed else "finished")
        recovery = runner.run(["collect"], env_for(db_file))
        exits.append(recovery.code)
        if recovery.code != 0:
            problems.append(f"point {point} ({at:.1f} s): recovery exit {recovery.code}:\n{recovery.output}")
            continue
        reloaded.append(summary_numbers(recovery.output)["loaded"])
        rows, ids = event_totals(tmp_path / db_file)
        stored.append(rows)
        distinct.append(ids)
        if (rows, ids) != (EVENTS, EVENTS):
            problems.append(f"point {point} ({at:.1f} s): stored {rows}, distinct {ids}\n{recovery.output}")
        scratch_left.append(len(scratch_leftovers(scratch_tmp)))
    locks = lock_leftovers(tmp_path)
    landed = ", ".join(f"{stage} {count}" for stage, count in Counter(stages).items())
    figure(
        f"kill -9 in collect, {POINTS} points over {duration:.1f} s (killed in: {landed}): "
        f"events expected {EVENTS}, stored {same_or_all(stored)}, distinct {same_or_all(distinct)}; "
        f"recovery exits {exits}, recovery loaded {reloaded}; lock files left {len(locks)}"
    )
    assert not problems, "\n\n".join(problems)
    assert locks == [], f"lock files left beside the database: {locks}"


@pytest.mark.reliability
def test_killed_runs_scratch_folders_are_removed_by_the_next_run(
    sim: ExportSimulator,
    make_env: Callable[..., dict[str, str]],
    tmp_path: Path,
    scratch_tmp: Path,
    figure: Callable[[str], None],
) -> None:
    """A collect killed while it loads leaves its export spool and dlt folder; the next run, started
    right away, removes them (and no ``.collect.lock`` is left beside the database)."""
    sim.add_events(recent_traffic(EVENTS, seed=29))
    env = make_env(sim, TMPDIR=str(scratch_tmp))
    runner = Runner(tmp_path)
    killed = runner.kill_when(["collect"], env, "parsed ")
    left_by_kill = scratch_leftovers(scratch_tmp)
    recovery = runner.run(["collect"], env)
    after_next = scratch_leftovers(scratch_tmp)
    rows, ids = event_totals(tmp_path / "mixpanel.duckdb")
    figure(
        f"scratch after kill -9 ({last_stage(killed.output) if killed.killed else 'finished'}): folders left by the "
        f"killed run {len(left_by_kill)}, still there after the next run {len(after_next)}; "
        f"lock files {len(lock_leftovers(tmp_path))}; events expected {EVENTS}, stored {rows}, distinct {ids}"
    )
    assert killed.killed, killed.output
    assert recovery.code == 0, recovery.output
    assert (rows, ids) == (EVENTS, EVENTS)
    assert lock_leftovers(tmp_path) == []
    assert left_by_kill, "the kill landed before the run made its scratch folders"
    assert after_next == [], f"the next run left the killed run's scratch folders: {after_next}"
