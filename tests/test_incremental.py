"""Incremental collection on processing time, late events, export windows and backfill."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from mixpanel_alerts.simulator import ExportSimulator, make_event
from tests.conftest import EVENTS_TABLE, output_of, query, recent_traffic, summary_numbers
from tests.slack_fake import BOT_TOKEN

PROCESSED_AFTER = re.compile(r'^properties\["mp_processing_time_ms"\] > (\d+)$')


def processed_after_ms(params: dict[str, str]) -> int:
    match = PROCESSED_AFTER.match(params.get("where", ""))
    assert match, f"no processing-time filter in {params}"
    return int(match.group(1))


def test_second_run_loads_nothing_new_and_a_third_loads_only_the_newcomer(sim, make_env, run_cli, db_path):
    events = recent_traffic(150)
    sim.add_events(events)
    env = make_env(sim)

    first = run_cli(["collect"], env)
    second = run_cli(["collect"], env)
    newcomer = make_event("page_view", datetime.now(UTC) - timedelta(seconds=5))
    sim.add_events([newcomer])
    third = run_cli(["collect"], env)

    assert [result.returncode for result in (first, second, third)] == [0, 0, 0], output_of(second)
    assert summary_numbers(output_of(first))["loaded"] == len(events)
    assert summary_numbers(output_of(second))["loaded"] == 0
    assert "where" not in sim.requests[0].params
    first_asked_ms = sim.requests[0].at * 1000
    cursor = processed_after_ms(sim.requests[1].params)
    assert first_asked_ms - 3_600_000 < cursor <= first_asked_ms  # overlaps the first run, no gap
    assert summary_numbers(output_of(third))["loaded"] == 1
    assert query(db_path, f"select count(*), count(distinct event_id) from {EVENTS_TABLE}") == [
        (len(events) + 1, len(events) + 1)
    ]
    newcomer_rows = query(
        db_path, f"select count(*) from {EVENTS_TABLE} where insert_id = ?", [newcomer.properties["$insert_id"]]
    )
    assert newcomer_rows == [(1,)]


class ServesAFutureProcessingTime(ExportSimulator):
    """A host whose export holds one event with ``mp_processing_time_ms`` ten days ahead."""

    def body_for(self, params: dict[str, str]) -> bytes:
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        line = {
            "event": "page_view",
            "properties": {
                "time": now_ms - 60_000,
                "$insert_id": "ahead",
                "mp_processing_time_ms": now_ms + 864_000_000,
            },
        }
        return super().body_for(params) + json.dumps(line).encode() + b"\n"


def test_a_processing_time_in_the_future_does_not_move_the_cursor_past_now(start_sim, make_env, run_cli):
    """The cursor never passes the request's own start time, whatever the data says: a bad
    processing time ahead would otherwise make every later run skip the events processed until
    then (tests/test_export_answers.py checks the next request's floor)."""
    sim = start_sim(ServesAFutureProcessingTime)
    sim.add_events(recent_traffic(20))
    env = make_env(sim)
    first = run_cli(["collect"], env)
    second = run_cli(["collect"], env)
    assert [first.returncode, second.returncode] == [0, 0], output_of(second)
    assert summary_numbers(output_of(first))["loaded"] == 21
    assert processed_after_ms(sim.requests[1].params) <= sim.requests[0].at * 1000


@pytest.mark.parametrize(
    ("start_days_ago", "late_days"),
    [
        pytest.param(10, 7, id="start-date-10-days-ago-late-days-7"),
        pytest.param(None, None, id="start-date-and-late-days-default"),
    ],
)
def test_late_event_is_collected(sim, make_env, run_cli, db_path, start_days_ago, late_days):
    """An event from 3 days ago, processed only after the first run, is loaded by the next one.

    Every run after the first reaches back MIXPANEL_LATE_ARRIVAL_DAYS (default 5) before its cursor,
    also without MIXPANEL_START_DATE: that setting only says where the very first run starts.
    """
    now = datetime.now(UTC)
    today = now.date()
    sim.add_events(recent_traffic(60))
    start = None if start_days_ago is None else (today - timedelta(days=start_days_ago)).isoformat()
    env = make_env(sim, MIXPANEL_START_DATE=start, MIXPANEL_LATE_ARRIVAL_DAYS=late_days and str(late_days))
    first = run_cli(["collect"], env)
    late = make_event(
        "checkout_completed", now - timedelta(days=3), processed_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    sim.add_events([late])

    second = run_cli(["collect"], env)

    assert first.returncode == 0, output_of(first)
    assert second.returncode == 0, output_of(second)
    assert sim.requests[0].params["from_date"] == (start or (today - timedelta(days=1)).isoformat())
    reach = late_days or 5
    from_date = date.fromisoformat(sim.requests[1].params["from_date"])
    assert today - timedelta(days=reach + 1) <= from_date <= today - timedelta(days=reach)
    assert summary_numbers(output_of(second))["loaded"] == 1
    stored = query(
        db_path,
        f"select epoch_ms(event_timestamp) from {EVENTS_TABLE} where insert_id = ?",
        [late.properties["$insert_id"]],
    )
    assert stored == [(late.time_ms,)]


def test_event_delivered_again_after_a_run_is_not_stored_twice(sim, make_env, run_cli, db_path):
    """Mixpanel may process the same event again (same dedup key, later processing time)."""
    events = recent_traffic(30)
    sim.add_events(events)
    env = make_env(sim)
    first = run_cli(["collect"], env)
    original = events[0]
    again = dataclasses.replace(
        original,
        processing_ms=int(datetime.now(UTC).timestamp() * 1000) - 1_000,
        properties={**original.properties, "$city": "Somewhere else"},
    )
    sim.add_events([again])

    second = run_cli(["collect"], env)

    assert first.returncode == 0, output_of(first)
    assert second.returncode == 0, output_of(second)
    assert summary_numbers(output_of(second))["loaded"] == 0
    assert query(db_path, f"select count(*), count(distinct event_id) from {EVENTS_TABLE}") == [(30, 30)]
    stored = query(
        db_path,
        f"select properties::varchar from {EVENTS_TABLE} where insert_id = ?",
        [original.properties["$insert_id"]],
    )
    assert [json.loads(properties)["$city"] for (properties,) in stored] == [original.properties["$city"]]


@pytest.mark.parametrize(
    "project_tz",
    ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"],
    ids=["utc", "utc-plus-14", "utc-minus-11"],
)
def test_to_date_is_today_in_the_project_timezone(start_sim, make_env, run_cli, project_tz):
    """At any moment UTC+14 or UTC-11 is on another day than UTC: a UTC to_date fails one of them."""
    sim = start_sim(project_timezone=project_tz)
    before = datetime.now(ZoneInfo(project_tz)).date()

    result = run_cli(["collect"], make_env(sim, MIXPANEL_PROJECT_TIMEZONE=project_tz))

    after = datetime.now(ZoneInfo(project_tz)).date()
    assert result.returncode == 0, output_of(result)
    assert [r.status for r in sim.requests] == [200]
    assert sim.requests[0].params["to_date"] in {before.isoformat(), after.isoformat()}


def _at(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock, tzinfo=UTC)


def test_backfill_days_are_inclusive(sim, make_env, run_cli, db_path):
    first_day = datetime.now(UTC).date() - timedelta(days=6)
    last_day = first_day + timedelta(days=2)
    inside = [
        make_event("page_view", _at(first_day, time(0, 0, 0))),
        make_event("page_view", _at(first_day + timedelta(days=1), time(12, 0))),
        make_event("checkout_completed", _at(last_day, time(23, 59, 59, 999_000))),
    ]
    outside = [
        make_event("page_view", _at(first_day - timedelta(days=1), time(23, 59, 59, 999_000))),
        make_event("checkout_completed", _at(last_day + timedelta(days=1), time(0, 0, 0))),
    ]
    sim.add_events([*inside, *outside])

    result = run_cli(
        ["backfill", "--start-date", first_day.isoformat(), "--end-date", last_day.isoformat()], make_env(sim)
    )

    assert result.returncode == 0, output_of(result)
    asked = [(r.params["from_date"], r.params["to_date"]) for r in sim.requests]
    assert min(asked)[0] == first_day.isoformat()
    assert max(asked)[1] == last_day.isoformat()
    stored = {row[0] for row in query(db_path, f"select insert_id from {EVENTS_TABLE}")}
    assert stored == {event.properties["$insert_id"] for event in inside}
    output = output_of(result)
    for number in range(3):  # progress names each day
        assert f"backfill: day {first_day + timedelta(days=number)} ({number + 1} of 3)" in output
    assert "Next, `mixpanel-alerts detect` counts these days" in output, "the end says what to run next"


def test_a_backfill_into_the_future_stops_at_today_and_one_from_the_future_is_refused(sim, make_env, run_cli):
    """Today in the project's timezone bounds a backfill: an end date after it is clamped, with a
    note, and a start date after it is a usage error (exit 2) that names the timezone variable."""
    env = make_env(sim)  # the simulator's project timezone is UTC, as the product's default
    today = datetime.now(UTC).date()
    sim.add_events([make_event("page_view", datetime.now(UTC) - timedelta(minutes=10))])
    result = run_cli(
        ["backfill", "--start-date", today.isoformat(), "--end-date", (today + timedelta(days=3)).isoformat()], env
    )
    output = output_of(result)
    assert result.returncode == 0, output
    assert f"--end-date {today + timedelta(days=3)} is in the future" in output
    assert f"backfilling up to {today}" in output
    assert {(r.params["from_date"], r.params["to_date"]) for r in sim.requests} == {(today.isoformat(),) * 2}

    asked = len(sim.requests)
    future = run_cli(["backfill", "--start-date", (today + timedelta(days=1)).isoformat(),
                      "--end-date", (today + timedelta(days=2)).isoformat()], env)  # fmt: skip
    assert future.returncode == 2, output_of(future)
    assert "is in the future" in output_of(future) and "MIXPANEL_PROJECT_TIMEZONE" in output_of(future)
    assert len(sim.requests) == asked, "nothing asked"


def test_backfill_respects_the_rate_limit_never_alerts_and_leaves_the_cursor_alone(
    start_sim, slack_fake, make_env, run_cli, db_path
):
    sim = start_sim(per_second_limit=3, retry_after_seconds=1)
    today = datetime.now(UTC).date()
    first_day, last_day = today - timedelta(days=9), today - timedelta(days=2)
    start = _at(first_day, time(0))
    events = [make_event("page_view", start + timedelta(hours=5 * i)) for i in range(8 * 24 // 5)]
    sim.add_events(events)
    env = make_env(
        sim,
        MIXPANEL_START_DATE=first_day.isoformat(),
        SLACK_WEBHOOK_URL=slack_fake.webhook_url,
        SLACK_API_URL=slack_fake.api_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
    )

    backfill = run_cli(["backfill", "--start-date", first_day.isoformat(), "--end-date", last_day.isoformat()], env)

    assert backfill.returncode == 0, output_of(backfill)
    assert [r.status for r in sim.requests] == [200] * 8
    assert sorted(r.params["from_date"] for r in sim.requests) == [
        (first_day + timedelta(days=day)).isoformat() for day in range(8)
    ]
    arrivals = [r.at for r in sim.requests]
    busiest_second = max(sum(1 for other in arrivals if at <= other < at + 1.0) for at in arrivals)
    assert busiest_second <= 3
    assert query(db_path, f"select count(*) from {EVENTS_TABLE}") == [(len(events),)]
    assert slack_fake.requests == []

    collect = run_cli(["collect"], env)

    assert collect.returncode == 0, output_of(collect)
    after_backfill = sim.requests[8].params
    assert "where" not in after_backfill  # no cursor: backfill did not set one
    assert after_backfill["from_date"] == first_day.isoformat()
    assert summary_numbers(output_of(collect))["loaded"] == 0
    assert query(db_path, f"select count(*), count(distinct event_id) from {EVENTS_TABLE}") == [
        (len(events), len(events))
    ]
