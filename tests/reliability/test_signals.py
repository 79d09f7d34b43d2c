"""SIGTERM and SIGINT in each step of a run (issue 19, part 2): the run stops within seconds with
143 or 130 and one line naming the step, goes no further, and the next run stores every event once
and sends every alert once. One figure line each.

Each scenario lands its signal in its step the same way: the run is frozen (SIGSTOP) as soon as its
output, its scratch folder, dbt's log or the Slack fake shows the step, checked to be still there,
signalled, and let go (SIGCONT), so the signal is handled exactly there however short the step is.
Sent to a frozen process, a signal goes to whichever of its threads runs first: the product must
stop as fast when it is not the main thread.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from mixpanel_alerts.core.signals import AFTERWARDS, GRACE_SECONDS
from mixpanel_alerts.simulator import ExportSimulator
from tests.conftest import recent_traffic, rule, untimed, write_events_config
from tests.reliability.support import (
    Runner,
    SlowExportSimulator,
    Spawned,
    event_totals,
    firing_messages,
    ledger_statuses,
    normalize_committed,
    pipeline_files,
    repeated_dedup_keys,
    signal_when,
    spike,
)
from tests.slack_fake import BOT_TOKEN, SlackFake

SPIKE = "signal_spike"  # one alert, posted once in the end
TRAFFIC = ("checkout_completed", "page_view")  # thresholds out of reach: no alert
ATTEMPTS = 3  # a step of a tenth of a second may be missed by the watcher: a fresh warehouse, again


@dataclasses.dataclass
class Case:
    landing: str  # where the signal is sent (see ``in_step``)
    step: str  # where the stop line must say the run was
    number: int
    events: int


CASES = [
    Case("download", "collect (download)", signal.SIGTERM, 5_000),  # the export streams in over 30 s
    Case("normalize", "collect (normalize)", signal.SIGTERM, 20_000),
    # the one issue 19 found: dlt dropped a signal once its package was committed
    Case("normalize committed", "collect (normalize)", signal.SIGTERM, 20_000),
    Case("load", "collect (load)", signal.SIGTERM, 50_000),  # DuckDB's insert takes about a second
    Case("dbt", "detect (dbt)", signal.SIGTERM, 5_000),
    Case("Slack post", "alert (Slack)", signal.SIGTERM, 5_000),  # Slack has the post and holds its answer
    Case("Slack post", "alert (Slack)", signal.SIGINT, 5_000),
]


def output_lines(spawned: Spawned) -> list[str]:
    return [line.strip() for line in untimed(spawned.log.read_text(encoding="utf-8", errors="replace")).splitlines()]


def dbt_log(home: Path) -> str:
    """dbt's own log of the runs in this HOME (its working copy under the user's cache folder)."""
    return "".join(path.read_text(errors="replace") for path in home.glob(".cache/mixpanel-alerts/dbt/*/logs/dbt.log"))


def stream_over(sim: ExportSimulator, seconds: float) -> None:
    if isinstance(sim, SlowExportSimulator):
        sim.stream_seconds = seconds


def in_step(
    landing: str, spawned: Spawned, home: Path, sim: ExportSimulator, slack: SlackFake | None = None
) -> Callable[[], bool]:
    """Whether the run is at ``landing`` now (``home``: its HOME and working folder)."""
    scratch = home / "tmp"
    if landing == "download":  # Mixpanel has the request, the body is not all in
        return lambda: bool(sim.requests) and not any(line.startswith("downloaded ") for line in output_lines(spawned))
    if landing == "normalize":  # dlt makes the load package from the extracted one
        return lambda: (
            bool(pipeline_files(scratch, "load/new/*/new_jobs/*")) and not pipeline_files(scratch, "load/normalized/*")
        )
    if landing == "normalize committed":  # the load package is committed, its load has started no job
        return lambda: normalize_committed(scratch)
    if landing == "load":  # dlt's load job inserts the new events
        return lambda: bool(pipeline_files(scratch, "load/normalized/*/started_jobs/mixpanel_events.*"))
    if landing == "dbt":  # dbt's runner builds the models (dbt logs each node it starts)
        before = len(dbt_log(home))
        return lambda: "Began running node" in dbt_log(home)[before:]
    assert slack is not None
    return slack.held.is_set  # Slack has the post and holds its answer


@pytest.mark.reliability
@pytest.mark.parametrize("case", CASES, ids=[f"{signal.Signals(case.number).name}-{case.landing}" for case in CASES])
def test_signal_in_each_step(
    case: Case,
    start_sim: Callable[..., ExportSimulator],
    make_env: Callable[..., dict[str, str]],
    slack_fake: SlackFake,
    tmp_path: Path,
    scratch_tmp: Path,
    figure: Callable[[str], None],
) -> None:
    """A run is signalled in the case's step, then a normal run follows."""
    name = signal.Signals(case.number).name
    slow = case.landing == "download"
    sim = start_sim(SlowExportSimulator if slow else ExportSimulator, per_hour_limit=10_000)
    config = {"events": [*(rule(event, alert_threshold=1_000_000) for event in TRAFFIC), rule(SPIKE)]}
    write_events_config(tmp_path, config)
    sim.add_events([*recent_traffic(case.events, names=TRAFFIC, seed=47), *spike(SPIKE, 2)])
    runner = Runner(tmp_path)
    slack = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": slack_fake.api_url}

    for attempt in range(1, ATTEMPTS + 1):
        db_file = f"attempt-{attempt}.duckdb"
        env = make_env(sim, DUCKDB_PATH=db_file, TMPDIR=str(scratch_tmp), **slack)
        stream_over(sim, 30.0)
        if case.landing == "Slack post":
            slack_fake.inject("hold")
        spawned = runner.spawn(["run"], env)
        there = in_step(case.landing, spawned, tmp_path, sim, slack_fake)
        stopped, seconds, landed = signal_when(spawned, (case.number,), there)
        requests_at_stop = len(slack_fake.requests)
        slack_fake.release()
        slack_fake.faults.clear()
        if landed:
            break
    stream_over(sim, 0.0)
    later_requests = len(slack_fake.requests) - requests_at_stop
    recovery = runner.run(["run"], env)

    output = stopped.output.splitlines()
    stop_lines = [line for line in output if line.startswith("stopped by ")]
    errors = [line for line in output if line.startswith("error:") or "Traceback" in line]
    rows, ids = event_totals(tmp_path / db_file)
    expected = case.events + 9  # the traffic and the spike
    posted = len(firing_messages(slack_fake, SPIKE))
    repeated = repeated_dedup_keys(slack_fake)
    statuses = ledger_statuses(tmp_path / db_file)
    figure(
        f"{name} in {case.step} ({case.landing}; attempt {attempt}, landed {landed}): exit {stopped.code} "
        f"{seconds:.2f} s after the signal; stop lines {len(stop_lines)}, error lines {len(errors)}, Slack requests "
        f"after it {later_requests}; "
        f"next run exit {recovery.code}: events expected {expected}, stored {rows}, distinct {ids}; "
        f"alerts expected 1, posted {posted}, {len(repeated)} repeated"
    )
    assert landed, f"the signal never landed in {case.step} in {ATTEMPTS} attempts:\n{stopped.output}"
    assert stopped.code == 128 + case.number, stopped.output
    assert seconds < GRACE_SECONDS, stopped.output
    assert stop_lines == [f"stopped by {name} during {case.step}; {AFTERWARDS}"], stopped.output
    assert output[-1] == stop_lines[0], "the run said more after it stopped"
    assert later_requests == 0, "the stopped run went on talking to Slack"
    if case.step.startswith("collect"):
        assert not any(line.startswith("detect:") for line in output), "the stopped run went on to detect"
    if case.step.startswith("detect"):
        assert not any("dbt nodes in" in line or line.startswith("alerts:") for line in output), stopped.output
    # dbt's runner returns a stop as its result's error (or the error its cleanup meets then, such as
    # DuckDB's "connection is busy"); the error boundary lets the stop win: no error line
    assert errors == [], stopped.output
    assert recovery.code == 0, recovery.output
    assert (rows, ids) == (expected, expected)
    assert posted == 1 and repeated == {}, slack_fake.messages
    assert set(statuses) == {"sent"}, statuses


@pytest.mark.reliability
def test_a_second_signal_while_stopping_ends_the_run_at_once(
    start_sim: Callable[..., ExportSimulator],
    make_env: Callable[..., dict[str, str]],
    tmp_path: Path,
    scratch_tmp: Path,
    figure: Callable[[str], None],
) -> None:
    """SIGTERM and SIGINT together while 200k events load: the first starts the stop (which may
    wait for the load), the second, arriving while it is handled, ends the run at once; the next
    collect stores every event once. Sent while the run is frozen, so that a stop quicker than the
    gap between two signals (DuckDB cancels its insert) cannot end the run before the second."""
    events = 200_000
    sim = start_sim(per_hour_limit=10_000)
    sim.add_events(recent_traffic(events, seed=53))
    env = make_env(sim, TMPDIR=str(scratch_tmp))
    runner = Runner(tmp_path)

    spawned = runner.spawn(["run"], env)
    loading = in_step("load", spawned, tmp_path, sim)
    stopped, seconds, landed = signal_when(spawned, (signal.SIGTERM, signal.SIGINT), loading, together=True)
    recovery = runner.run(["collect"], env)

    output = stopped.output.splitlines()
    stop_lines = [line for line in output if line.startswith("stopped by ")]
    rows, ids = event_totals(tmp_path / "mixpanel.duckdb")
    figure(
        f"SIGTERM and SIGINT together, in collect (load) of {events} events (landed {landed}): exit "
        f"{stopped.code} {seconds:.2f} s after the second; next collect exit {recovery.code}: events expected "
        f"{events}, stored {rows}, distinct {ids}"
    )
    assert landed, stopped.output
    assert stopped.code in (130, 143), stopped.output
    assert seconds < 0.5, stopped.output
    name = {130: "SIGINT", 143: "SIGTERM"}[stopped.code]  # the kernel hands over the lower number first
    expected = f"stopped by {name} during collect (load), ended at once by a second signal; {AFTERWARDS}"
    assert stop_lines == [expected], stopped.output
    assert recovery.code == 0, recovery.output
    assert (rows, ids) == (events, events)
