"""History for events enabled after the first run: collect fetches their last 28 days by itself,
one day per request, only for them, within Mixpanel's rate limits, without moving the cursor; and
`event_coverage` says from which instant each event's data is known."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mixpanel_alerts.pipelines.mixpanel.settings import HISTORY_DAYS, HISTORY_QUERIES_PER_HOUR
from mixpanel_alerts.pipelines.mixpanel.window import Coverage, plan_history
from mixpanel_alerts.simulator import TERMINATED_EARLY_LINE, ExportSimulator, RequestRecord, SimEvent, make_event
from tests.conftest import CLI, EMULATOR, EVENTS_TABLE, output_of, query, rule, summary_numbers, write_events_config

COVERAGE_TABLE = "mixpanel_data.event_coverage"
OLD, NEW = "page_view", "checkout_completed"
PROCESSED_AFTER = re.compile(r'^properties\["mp_processing_time_ms"\] > (\d+)$')
MARGIN_MS = 30 * 60_000


def configure(directory: Path, *names: str, disabled: Iterable[str] = ()) -> None:
    rules = [rule(name) for name in names] + [rule(name, enabled=False) for name in disabled]
    write_events_config(directory, {"events": rules})


def day_start(day: date, timezone: str = "UTC") -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def traffic(name: str, *, days: int, per_day: int, now: datetime) -> list[SimEvent]:
    """``per_day`` events a day over the ``days`` days before now (and a few minutes ago),
    each processed a minute after it happened: long before any run for the older ones."""
    events = []
    for day in range(days, -1, -1):
        for index in range(per_day):
            moment = now - timedelta(days=day, minutes=5 + 47 * index)
            events.append(make_event(name, moment, processed_at=moment + timedelta(minutes=1)))
    return events


def history_requests(requests: list[RequestRecord]) -> list[RequestRecord]:
    """The export requests of one day without a processing-time filter (history and backfill)."""
    return [r for r in requests if "where" not in r.params and r.params["from_date"] == r.params["to_date"]]


def requested_names(request: RequestRecord) -> list[str]:
    return sorted(json.loads(request.params["event"]))


def stored_counts(db_path: Path) -> dict[str, tuple[int, int]]:
    rows = query(db_path, f"select event_name, count(*), count(distinct event_id) from {EVENTS_TABLE} group by 1")
    return {name: (count, distinct) for name, count, distinct in rows}


def coverage(db_path: Path) -> dict[str, datetime]:
    return dict(query(db_path, f"select event_name, collected_from from {COVERAGE_TABLE}"))


def expected_count(events: Iterable[SimEvent], name: str, since: datetime) -> int:
    return sum(1 for event in events if event.name == name and event.time_ms >= since.timestamp() * 1000)


def cursor_of(request: RequestRecord) -> int:
    """The main cursor a request was asked with (its processing-time filter plus the margin)."""
    match = PROCESSED_AFTER.match(request.params.get("where", ""))
    assert match, f"no processing-time filter in {request.params}"
    return int(match.group(1)) + MARGIN_MS


def test_the_first_run_fetches_no_history_and_every_event_is_covered_from_its_start_day(
    start_sim, make_env, run_cli, tmp_path, db_path
):
    """No state at all: one request from MIXPANEL_START_DATE, in the project's timezone."""
    timezone = "America/Los_Angeles"
    sim = start_sim(project_timezone=timezone)
    now = datetime.now(UTC)
    events = traffic(OLD, days=5, per_day=4, now=now) + traffic(NEW, days=5, per_day=4, now=now)
    sim.add_events(events)
    configure(tmp_path, OLD, NEW)
    start = datetime.now(ZoneInfo(timezone)).date() - timedelta(days=3)

    result = run_cli(
        ["collect"], make_env(sim, MIXPANEL_PROJECT_TIMEZONE=timezone, MIXPANEL_START_DATE=start.isoformat())
    )

    assert result.returncode == 0, output_of(result)
    assert len(sim.requests) == 1 and sim.requests[0].params["from_date"] == start.isoformat()
    assert "history:" not in output_of(result)
    assert coverage(db_path) == {OLD: day_start(start, timezone), NEW: day_start(start, timezone)}


def test_an_event_added_later_gets_exactly_28_days_of_history_of_itself_only(sim, make_env, run_cli, tmp_path, db_path):
    now = datetime.now(UTC)
    old_events = traffic(OLD, days=40, per_day=3, now=now)
    # 40 days of it: the 12 oldest are beyond the history; a few are processed late (after the
    # first run), and some recent ones before it (the main window's where leaves those out)
    new_events = traffic(NEW, days=40, per_day=5, now=now)
    sim.add_events(old_events + new_events)
    env = make_env(sim)
    configure(tmp_path, OLD)
    first = run_cli(["collect"], env)
    late = make_event(NEW, now - timedelta(days=2), processed_at=datetime.now(UTC))
    sim.add_events([late])
    new_events.append(late)
    configure(tmp_path, OLD, NEW)

    second = run_cli(["collect"], env)

    assert [first.returncode, second.returncode] == [0, 0], output_of(second)
    main, *history = sim.requests[1:]
    today = date.fromisoformat(main.params["to_date"])
    days = [(today - timedelta(days=back)).isoformat() for back in range(HISTORY_DAYS + 1)]
    assert [r.params["from_date"] for r in history] == days, "today, then each day back, once"
    assert history == history_requests(history), "one day per request, no processing-time filter"
    assert {tuple(requested_names(r)) for r in history} == {(NEW,)}, "the other events are not re-exported"
    assert all(r.status == 200 for r in sim.requests)
    history_start = day_start(today - timedelta(days=HISTORY_DAYS))
    in_history = expected_count(new_events, NEW, history_start)
    assert stored_counts(db_path) == {
        OLD: (expected_count(old_events, OLD, day_start(today - timedelta(days=1))),) * 2,
        NEW: (in_history, in_history),
    }
    before_main_window = day_start(date.fromisoformat(main.params["from_date"]))
    assert (
        query(
            db_path,
            f"select count(*) from {EVENTS_TABLE} where event_name = ? and event_timestamp < ?",
            [NEW, before_main_window],
        )[0][0]
        > 100
    ), "events older than the main window are there"
    assert f"history: fetched 29 days for 1 new event ({NEW}): " in output_of(second)
    history_numbers = re.search(r"history: .*: ([\d,]+) events, (\d+) request", output_of(second))
    assert (
        history_numbers
        and int(history_numbers[1].replace(",", "")) + summary_numbers(output_of(second))["loaded"] == in_history
    )
    assert history_numbers[2] == "29"
    assert coverage(db_path) == {OLD: day_start(today - timedelta(days=1)), NEW: history_start}

    third = run_cli(["collect"], env)

    assert third.returncode == 0, output_of(third)
    assert len(sim.requests) == 1 + 1 + 29 + 1, "a rerun fetches no history"
    assert "history:" not in output_of(third)
    assert summary_numbers(output_of(third))["loaded"] == 0
    # the main cursor is where the second run's main request left it, not moved by history
    assert main.at * 1000 - 60_000 <= cursor_of(sim.requests[-1]) <= main.at * 1000 < history[0].at * 1000


class CutsOneDay(ExportSimulator):
    """A host whose export of one day ends with "export terminated early" until healed."""

    broken_day: str | None = None

    def body_for(self, params: dict[str, str]) -> bytes:
        body = super().body_for(params)
        if params["from_date"] == self.broken_day and "where" not in params:
            return body + TERMINATED_EARLY_LINE + b"\n"
        return body


def test_history_that_fails_half_way_is_finished_by_the_next_run_exactly(
    start_sim, make_env, run_cli, tmp_path, db_path
):
    """A day that fails after its retries stops the history, not the collect: the main collect is
    stored and the run exits 0 saying so; the next run resumes at that day, and counts are exact."""
    sim = start_sim(CutsOneDay)
    now = datetime.now(UTC)
    new_events = traffic(NEW, days=35, per_day=4, now=now)
    sim.add_events(traffic(OLD, days=3, per_day=4, now=now) + new_events)
    env = make_env(sim, SOURCES__MIXPANEL__REQUEST_MAX_ATTEMPTS="3")
    configure(tmp_path, OLD)
    assert run_cli(["collect"], env).returncode == 0
    today = date.fromisoformat(sim.requests[0].params["to_date"])
    sim.broken_day = (today - timedelta(days=10)).isoformat()
    newcomer = make_event(OLD, datetime.now(UTC) - timedelta(seconds=30))
    sim.add_events([newcomer])
    configure(tmp_path, OLD, NEW)

    failed = run_cli(["collect"], env)

    assert failed.returncode == 0, output_of(failed)
    assert summary_numbers(output_of(failed))["loaded"] >= 1, "the main collect happened"
    assert query(
        db_path, f"select count(*) from {EVENTS_TABLE} where insert_id = ?", [newcomer.properties["$insert_id"]]
    ) == [(1,)]
    assert f"history: fetched 10 days for 1 new event ({NEW})" in output_of(failed)
    assert f"stopped at {sim.broken_day}" in output_of(failed) and "19 day(s) left" in output_of(failed)
    broken = [r for r in history_requests(sim.requests) if r.params["from_date"] == sim.broken_day]
    assert len(broken) == 3, "the broken day was retried, then left for the next run"
    # the coverage reaches back as far as the history is stored, contiguously
    assert coverage(db_path)[NEW] == day_start(today - timedelta(days=9))

    sim.broken_day = None
    asked_before = len(sim.requests)
    resumed = run_cli(["collect"], env)

    assert resumed.returncode == 0, output_of(resumed)
    resumed_days = [r.params["from_date"] for r in history_requests(sim.requests[asked_before:])]
    assert resumed_days == [(today - timedelta(days=back)).isoformat() for back in range(10, HISTORY_DAYS + 1)]
    history_start = day_start(today - timedelta(days=HISTORY_DAYS))
    count = expected_count(new_events, NEW, history_start)
    assert stored_counts(db_path)[NEW] == (count, count)
    assert coverage(db_path)[NEW] == history_start
    assert "history: fetched 19 days" in output_of(resumed)


class StallsOneDay(ExportSimulator):
    """A host that holds its answer for one day of history (long enough to kill the run)."""

    stalled_day: str | None = None

    def body_for(self, params: dict[str, str]) -> bytes:
        if params["from_date"] == self.stalled_day and "where" not in params:
            time.sleep(20)
        return super().body_for(params)


def test_history_killed_mid_way_is_finished_by_the_next_run_exactly(start_sim, make_env, run_cli, tmp_path, db_path):
    """kill -9 while a day of history is in flight: the weeks already loaded stay, the rest is
    fetched again (nothing lost, nothing doubled)."""
    sim = start_sim(StallsOneDay)
    now = datetime.now(UTC)
    new_events = traffic(NEW, days=30, per_day=3, now=now)
    sim.add_events(traffic(OLD, days=2, per_day=3, now=now) + new_events)
    env = make_env(sim)
    configure(tmp_path, OLD)
    assert run_cli(["collect"], env).returncode == 0
    today = date.fromisoformat(sim.requests[0].params["to_date"])
    sim.stalled_day = (today - timedelta(days=9)).isoformat()
    configure(tmp_path, OLD, NEW)

    process = subprocess.Popen(
        [CLI, "collect"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not any(r.params["from_date"] == sim.stalled_day for r in history_requests(sim.requests)):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before the stalled day"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    sim.stalled_day = None
    asked_before = len(sim.requests)

    rerun = run_cli(["collect"], env)

    assert rerun.returncode == 0, output_of(rerun)
    again = [date.fromisoformat(r.params["from_date"]) for r in history_requests(sim.requests[asked_before:])]
    assert again[0] == today - timedelta(days=7), "the first week was stored; the second is asked again"
    assert again[-1] == today - timedelta(days=HISTORY_DAYS)
    history_start = day_start(today - timedelta(days=HISTORY_DAYS))
    count = expected_count(new_events, NEW, history_start)
    assert stored_counts(db_path)[NEW] == (count, count)
    assert coverage(db_path)[NEW] == history_start


def test_history_stays_within_the_hourly_rate_limit_across_runs(start_sim, make_env, run_cli, tmp_path, db_path):
    """Two events added an hour apart would take 2 x 29 history queries: the second gets what the
    hour's history budget leaves (40 of Mixpanel's 60, counted across runs in the state), the rest
    waits; the simulator enforces Mixpanel's 60 per hour and never has to refuse."""
    sim = start_sim(per_hour_limit=60)
    now = datetime.now(UTC)
    third = "signup"
    events = traffic(OLD, days=1, per_day=2, now=now) + [
        event for name in (NEW, third) for event in traffic(name, days=30, per_day=2, now=now)
    ]
    sim.add_events(events)
    env = make_env(sim)
    configure(tmp_path, OLD)
    runs = [run_cli(["collect"], env)]
    configure(tmp_path, OLD, NEW)
    runs.append(run_cli(["collect"], env))
    configure(tmp_path, OLD, NEW, third)
    runs.append(run_cli(["collect"], env))
    runs.append(run_cli(["collect"], env))

    assert [run.returncode for run in runs] == [0, 0, 0, 0], [output_of(run) for run in runs]
    assert [r.status for r in sim.requests] == [200] * len(sim.requests), "no 429"
    assert sim.requests[-1].at - sim.requests[0].at < 3600
    per_run = Counter(tuple(requested_names(r)) for r in history_requests(sim.requests))
    left = HISTORY_QUERIES_PER_HOUR - (HISTORY_DAYS + 1)
    assert per_run == {(NEW,): HISTORY_DAYS + 1, (third,): left}
    assert len(sim.requests) == 4 + HISTORY_DAYS + 1 + left <= 60
    assert f"history: fetched {left} days for 1 new event ({third})" in output_of(runs[2])
    waiting = f"{HISTORY_DAYS + 1 - left} day(s) left for the next runs"
    assert waiting in output_of(runs[2]) and waiting in output_of(runs[3])
    today = date.fromisoformat(sim.requests[0].params["to_date"])
    assert coverage(db_path)[third] == day_start(today - timedelta(days=left - 1)), "contiguous so far"


def test_a_re_enabled_event_gets_history_from_where_its_data_stopped(sim, make_env, run_cli, tmp_path, db_path):
    """Disabled, then enabled again: history from the day its data stopped being complete (the
    late-arrival reach of the last run that asked for it), not 28 days; complete from there."""
    now = datetime.now(UTC)
    events = traffic(OLD, days=2, per_day=2, now=now) + traffic(NEW, days=12, per_day=2, now=now)
    sim.add_events(events)
    env = make_env(sim)
    configure(tmp_path, OLD, NEW)
    first = run_cli(["collect"], env)
    configure(tmp_path, OLD, disabled=[NEW])
    disabled = run_cli(["collect"], env)
    while_disabled = [make_event(NEW, datetime.now(UTC) - timedelta(minutes=minutes)) for minutes in (1, 2, 3)]
    sim.add_events(while_disabled)
    configure(tmp_path, OLD, NEW)
    asked_before = len(sim.requests)

    enabled = run_cli(["collect"], env)

    assert [first.returncode, disabled.returncode, enabled.returncode] == [0, 0, 0], output_of(enabled)
    assert json.loads(sim.requests[1].params["event"]) == [OLD]
    today = date.fromisoformat(sim.requests[0].params["to_date"])
    stopped = date.fromisoformat(sim.requests[1].params["from_date"])  # the late-arrival reach of the first run
    history = history_requests(sim.requests[asked_before:])
    assert [r.params["from_date"] for r in history] == [
        (today - timedelta(days=back)).isoformat() for back in range((today - stopped).days + 1)
    ]
    assert {tuple(requested_names(r)) for r in history} == {(NEW,)}
    count = expected_count([*events, *while_disabled], NEW, day_start(stopped))
    assert stored_counts(db_path)[NEW] == (count, count)
    assert coverage(db_path) == {OLD: day_start(today - timedelta(days=1)), NEW: day_start(stopped)}


def test_backfill_extends_the_coverage_where_contiguous(sim, make_env, run_cli, tmp_path, db_path):
    sim.add_events(traffic(OLD, days=10, per_day=2, now=datetime.now(UTC)))
    env = make_env(sim)
    configure(tmp_path, OLD)
    assert run_cli(["collect"], env).returncode == 0
    today = date.fromisoformat(sim.requests[0].params["to_date"])
    apart = ["backfill", "--start-date", str(today - timedelta(days=9)), "--end-date", str(today - timedelta(days=8))]
    touching = [
        "backfill",
        "--start-date",
        str(today - timedelta(days=4)),
        "--end-date",
        str(today - timedelta(days=2)),
    ]

    assert run_cli(apart, env).returncode == 0
    assert coverage(db_path) == {OLD: day_start(today - timedelta(days=1))}, "a gap: unknown stays unknown"
    assert run_cli(touching, env).returncode == 0
    assert coverage(db_path) == {OLD: day_start(today - timedelta(days=4))}


# ------------------------------------------------------------------------------- the pure parts


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.mark.parametrize(
    ("spans", "added", "expected"),
    [
        pytest.param([[10, None]], [5, 10], [[5, None]], id="touching-joins"),
        pytest.param([[10, None]], [5, 9], [[5, 9], [10, None]], id="gap-stays"),
        pytest.param([[10, None]], [2, 30], [[2, None]], id="overlapping-joins"),
        pytest.param([[1, 3], [10, None]], [3, 10], [[1, None]], id="bridges-two"),
        pytest.param([], [4, None], [[4, None]], id="first"),
    ],
)
def test_coverage_spans_merge_where_contiguous(spans, added, expected):
    state: dict[str, list[list[Any]]] = {"e": spans}
    Coverage(state).add("e", *added)
    assert state["e"] == expected


def test_a_stopped_event_plans_history_from_its_stop_within_the_history_days():
    today = date(2026, 3, 20)
    spans: dict[str, list[list[Any]]] = {
        "recent": [[0, ms(datetime(2026, 3, 15, 13, tzinfo=UTC))]],
        "long_ago": [[0, ms(datetime(2026, 1, 1, tzinfo=UTC))]],
    }
    job = plan_history(
        ["recent", "long_ago", "never"], Coverage(spans), today=today, project_timezone="UTC", history_days=28
    )
    assert job == {
        "names": {"recent": "2026-03-15", "long_ago": "2026-02-20", "never": "2026-02-20"},
        "next_day": "2026-03-20",
    }


# ------------------------------------------------------------------------------------ BigQuery


@pytest.mark.skipif(
    not EMULATOR, reason='BIGQUERY_EMULATOR_HOST is not set: run `eval "$(scripts/bq_emulator.sh start)"` first'
)
def test_history_and_coverage_on_bigquery(
    bigquery: Any, tmp_path: Path, bigquery_env: Callable[..., dict[str, str]],
    run_cli: Callable[..., Any], start_sim: Callable[..., Any],
) -> None:  # fmt: skip
    """The same on BigQuery (a short history keeps the emulator's loads few): history of the new
    event only, its coverage merged into `event_coverage` by event name, resumed from the state
    stored in the dataset."""
    sim = start_sim()
    now = datetime.now(UTC)
    new_events = traffic(NEW, days=6, per_day=3, now=now)
    sim.add_events(traffic(OLD, days=1, per_day=3, now=now) + new_events)
    dataset = f"t_{uuid.uuid4().hex[:10]}"
    env = bigquery_env(dataset, sim, SOURCES__MIXPANEL__HISTORY_DAYS="3")
    configure(tmp_path, OLD)
    first = run_cli(["collect"], env)
    configure(tmp_path, OLD, NEW)
    second = run_cli(["collect"], env)
    third = run_cli(["collect"], env)

    assert [first.returncode, second.returncode, third.returncode] == [0, 0, 0], output_of(second)
    today = date.fromisoformat(sim.requests[0].params["to_date"])
    history = history_requests(sim.requests)
    assert [r.params["from_date"] for r in history] == [str(today - timedelta(days=back)) for back in range(4)]
    assert {tuple(requested_names(r)) for r in history} == {(NEW,)}
    assert len(sim.requests) == 1 + 1 + 4 + 1
    history_start = day_start(today - timedelta(days=3))
    count = expected_count(new_events, NEW, history_start)
    rows = bigquery.query(
        f"select count(*), count(distinct event_id) from {dataset}.mixpanel_events where event_name = '{NEW}'"
    )
    assert [tuple(row) for row in rows] == [(count, count)]
    rows = bigquery.query(f"select event_name, collected_from from {dataset}.event_coverage order by 1")
    assert [tuple(row) for row in rows] == [(NEW, history_start), (OLD, day_start(today - timedelta(days=1)))]
