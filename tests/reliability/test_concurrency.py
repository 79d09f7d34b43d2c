"""Runs that overlap take turns on the DuckDB file; a file held open by another process makes a run
wait a bounded time, fail with one line naming the holder, and lose nothing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mixpanel_alerts.simulator import ExportSimulator, SimEvent
from tests.conftest import ENABLED_NAMES, recent_traffic, rule, run_overlapping, write_events_config
from tests.reliability.support import (
    Runner,
    assert_no_secrets,
    event_totals,
    firing_messages,
    ledger_statuses,
    message_counts,
    processed_now,
    slack_env,
    spike,
)
from tests.slack_fake import SlackFake

ROUNDS = 3
OVERLAPPING = 3
BUSY_TIMEOUT_SECONDS = 5
BUSY_MARGIN_SECONDS = 10


@pytest.mark.reliability
def test_overlapping_runs(
    sim: ExportSimulator,
    make_env: Callable[..., dict[str, str]],
    slack_fake: SlackFake,
    tmp_path: Path,
    figure: Callable[[str], None],
) -> None:
    """Three ``run``s started at once, three times, with new events and a new incident each time
    (webhook: nothing but the turns keeps a second run from sending the alert again)."""
    names = [f"overlap_alert_{index}" for index in range(ROUNDS)]
    write_events_config(
        tmp_path,
        {"events": [*(rule(name, alert_threshold=10_000) for name in ENABLED_NAMES), *(rule(n) for n in names)]},
    )
    env = make_env(sim, **slack_env("webhook", slack_fake))
    expected: list[SimEvent] = []
    exits: list[list[int]] = []
    outputs: list[str] = []
    for index, name in enumerate(names):
        events = [*processed_now(recent_traffic(2_000, seed=40 + index)), *spike(name, 2)]
        sim.add_events(events)
        expected += events
        runs = run_overlapping(["run"], env, tmp_path, count=OVERLAPPING)
        exits.append([code for code, _ in runs])
        outputs += [output for _, output in runs]
    for output in outputs:
        assert_no_secrets(output, env)

    rows, ids = event_totals(tmp_path / "mixpanel.duckdb")
    counts = message_counts(slack_fake, names)
    statuses = ledger_statuses(tmp_path / "mixpanel.duckdb")
    figure(
        f"{OVERLAPPING} overlapping runs x {ROUNDS} (webhook): events expected {len(expected)}, stored {rows}, "
        f"distinct {ids}; alerts expected {len(names)}, posted {sum(counts.values())}; ledger {dict(statuses)}; "
        f"exits {exits}"
    )
    assert exits == [[0] * OVERLAPPING] * ROUNDS, "\n\n".join(outputs)
    assert (rows, ids) == (len(expected), len(expected))
    assert counts == dict.fromkeys(names, 1)
    assert set(statuses) == {"sent"}, statuses


HOLDER = """
import sys, time
import duckdb
connection = duckdb.connect(sys.argv[1], read_only=True)
print("open", flush=True)
time.sleep(600)
"""


@pytest.mark.reliability
def test_duckdb_file_held_by_another_process(
    sim: ExportSimulator,
    make_env: Callable[..., dict[str, str]],
    slack_fake: SlackFake,
    tmp_path: Path,
    figure: Callable[[str], None],
) -> None:
    """An analyst's process keeps the DuckDB file open (read-only) while a run starts: the run waits
    DUCKDB_BUSY_TIMEOUT_SECONDS, exits 1 with a short message naming the PID; once the file is
    closed the next run collects everything and alerts once."""
    name = "held_file_alert"
    write_events_config(
        tmp_path,
        {"events": [*(rule(event, alert_threshold=10_000) for event in ENABLED_NAMES), rule(name)]},
    )
    env = make_env(sim, DUCKDB_BUSY_TIMEOUT_SECONDS=str(BUSY_TIMEOUT_SECONDS), **slack_env("webhook", slack_fake))
    runner = Runner(tmp_path)
    db_path = tmp_path / "mixpanel.duckdb"
    expected = recent_traffic(1_000, seed=51)
    sim.add_events(expected)
    first = runner.run(["run"], env)
    assert first.code == 0, first.output

    later = [*processed_now(recent_traffic(500, seed=52)), *spike(name, 1)]
    sim.add_events(later)
    expected += later
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db_path)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        busy = runner.run(["run"], env)
    finally:
        holder.kill()
        holder.wait()
    after = runner.run(["run"], env)

    lines = [line for line in busy.output.splitlines() if line.strip()]
    naming = [line for line in lines if f"PID {holder.pid}" in line]
    rows, ids = event_totals(db_path)
    alerts = len(firing_messages(slack_fake, name))
    figure(
        f"DuckDB file held by another process (timeout {BUSY_TIMEOUT_SECONDS} s): exit {busy.code} after "
        f"{busy.seconds:.1f} s, {len(lines)} output line(s), {len(naming)} naming the PID; after release: exit "
        f"{after.code}, events expected {len(expected)}, stored {rows}, distinct {ids}; "
        f"alerts expected 1, posted {alerts}"
    )
    assert busy.code == 1, busy.output
    assert busy.seconds <= BUSY_TIMEOUT_SECONDS + BUSY_MARGIN_SECONDS, busy.output
    assert len(lines) <= 5, busy.output
    assert naming, busy.output
    assert after.code == 0, after.output
    assert (rows, ids) == (len(expected), len(expected))
    assert alerts == 1
