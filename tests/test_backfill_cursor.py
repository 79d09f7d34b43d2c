"""A backfill that reaches today stands in for the next scheduled collect: when it asked, since the
cursor, for every day a collect asks for, it leaves the cursor at the earliest of those requests,
so the first `run` after it downloads only what is new. Otherwise the cursor stays, and nothing is
skipped either way. Against the simulator (which counts the bytes it serves) and a DuckDB file."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from mixpanel_alerts.simulator import ExportSimulator, RequestRecord, SimEvent, generate_traffic, make_event
from tests.conftest import (
    ENABLED_NAMES,
    EVENTS_TABLE,
    output_of,
    query,
    rule,
    summary_numbers,
    write_events_config,
)

COVERAGE_TABLE = "mixpanel_data.event_coverage"
PROCESSED_AFTER = re.compile(r'^properties\["mp_processing_time_ms"\] > (\d+)$')
MARGIN_MS = 30 * 60_000
MOVED = "the cursor is now"
STAYED = "the cursor did not move"
NO_MARGIN = {"SOURCES__MIXPANEL__PROCESSING_MARGIN_MINUTES": "0"}


def processed_after_ms(request: RequestRecord) -> int:
    match = PROCESSED_AFTER.match(request.params.get("where", ""))
    assert match, f"no processing-time filter in {request.params}"
    return int(match.group(1))


def traffic(count: int, *, days: int, names: Iterable[str] = ENABLED_NAMES, seed: int = 11) -> list[SimEvent]:
    """``count`` events over the last ``days`` days, each processed two seconds after it happened."""
    now = datetime.now(UTC)
    start, end = now - timedelta(days=days), now - timedelta(minutes=1)
    return list(generate_traffic(count, names=list(names), start=start, end=end, seed=seed))


def backfill(run_cli: Callable[..., Any], env: dict[str, str], first: date, last: date) -> str:
    result = run_cli(["backfill", "--start-date", first.isoformat(), "--end-date", last.isoformat()], env)
    assert result.returncode == 0, output_of(result)
    return output_of(result)


def collect(run_cli: Callable[..., Any], env: dict[str, str], command: str = "collect") -> str:
    result = run_cli([command], env)
    assert result.returncode == 0, output_of(result)
    return output_of(result)


def stored(db_path: Path) -> tuple[int, int]:
    [(rows, distinct)] = query(db_path, f"select count(*), count(distinct event_id) from {EVENTS_TABLE}")
    return rows, distinct


def stored_ids(db_path: Path) -> set[str]:
    return {insert_id for (insert_id,) in query(db_path, f"select insert_id from {EVENTS_TABLE}")}


def coverage(db_path: Path) -> dict[str, datetime]:
    return dict(query(db_path, f"select event_name, collected_from from {COVERAGE_TABLE}"))


def day_start(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def asked_between(request: RequestRecord, requests: list[RequestRecord], not_before: float) -> tuple[int, int]:
    """The bounds of a moved cursor: the start of the backfill's request of the first day
    ``request`` asks for lies after the previous backfill request arrived, and before its own."""
    day = request.params["from_date"]
    [own] = [r for r in requests if r.params["from_date"] == day == r.params["to_date"]]
    earlier = [r.at for r in requests if r.params["from_date"] < day]
    return int(max(earlier, default=not_before) * 1000), int(own.at * 1000)


def insert_id(event: SimEvent) -> str:
    return str(event.properties["$insert_id"])


class ProcessesAnEventWhileBackfilling(ExportSimulator):
    """A host where ``event`` (of ``day``) is processed just after the backfill's request of that
    day is answered: the request of that day misses it, a later day's request comes after it."""

    day: date | None = None
    event: SimEvent | None = None

    def body_for(self, params: dict[str, str]) -> bytes:
        body = super().body_for(params)
        whole_day = "where" not in params and params["from_date"] == params["to_date"] == str(self.day)
        if self.event is not None and whole_day:
            event, self.event = self.event, None
            self.add_events([dataclasses.replace(event, processing_ms=int(datetime.now(UTC).timestamp() * 1000))])
        return body


def test_the_first_run_after_a_backfill_up_to_today_downloads_only_what_is_new(sim, make_env, run_cli, db_path) -> None:
    """The issue's new user: no cursor, a backfill of the late-arrival window up to today, then
    `run`. Its one request asks for events processed since the backfill's earliest request (less
    the margin): a small part of what the backfill served, and each event is stored once."""
    old = traffic(6_000, days=6)
    sim.add_events(old)
    env = make_env(sim)
    today = sim.today()
    started = datetime.now(UTC).timestamp()

    said = backfill(run_cli, env, today - timedelta(days=6), today)

    backfilled = list(sim.requests)
    assert MOVED in said
    new = [make_event(ENABLED_NAMES[number % 2], datetime.now(UTC) - timedelta(seconds=20)) for number in range(20)]
    late = make_event(ENABLED_NAMES[0], datetime.now(UTC) - timedelta(days=4), processed_at=datetime.now(UTC))
    sim.add_events([*new, late])

    output = collect(run_cli, env, "run")

    [request] = sim.requests[len(backfilled) :]
    floor = processed_after_ms(request)
    low, high = asked_between(request, backfilled, started)
    assert low < floor + MARGIN_MS <= high, "the cursor is the start of the request of the first day asked"
    served = sum(r.bytes_served for r in backfilled)
    assert 0 < request.bytes_served * 20 < served, (request.bytes_served, served)
    numbers = summary_numbers(output)
    assert numbers["loaded"] == len(new) + 1
    overlap = sum(1 for event in old if event.processing_ms > floor)  # the margin's re-ask
    assert numbers["skipped"] == overlap < len(old) // 100
    assert stored(db_path) == (len(old) + len(new) + 1,) * 2
    assert insert_id(late) in stored_ids(db_path)
    first_day = day_start(today - timedelta(days=6))
    assert coverage(db_path) == dict.fromkeys(ENABLED_NAMES, first_day)
    assert "history:" not in output


def test_a_backfill_of_the_window_moves_a_cursor_behind_it_and_skips_no_event_processed_meanwhile(
    start_sim, make_env, run_cli, db_path
) -> None:
    """With no margin to hide behind: a late event processed after the last collect is stored by
    the backfill, and one processed while the backfill asked for the later days (after its own
    day's request) is asked for by the next collect, since the cursor moved to the earliest
    request, not to the last."""
    sim = start_sim(ProcessesAnEventWhileBackfilling)
    old = traffic(600, days=6)
    sim.add_events(old)
    env = make_env(sim, **NO_MARGIN)
    today = sim.today()
    collect(run_cli, env)
    cursor_ms = int(sim.requests[0].at * 1000)
    late = make_event(ENABLED_NAMES[0], datetime.now(UTC) - timedelta(days=4), processed_at=datetime.now(UTC))
    sim.add_events([late])
    sim.day = today - timedelta(days=3)
    sim.event = meanwhile = make_event(ENABLED_NAMES[1], day_start(sim.day) + timedelta(hours=12))

    said = backfill(run_cli, env, today - timedelta(days=6), today)
    backfilled = sim.requests[1:]
    output = collect(run_cli, env)

    assert MOVED in said
    assert sim.event is None, "the event was processed during the backfill"
    request = sim.requests[-1]
    assert processed_after_ms(request) > cursor_ms
    low, high = asked_between(request, backfilled, sim.requests[0].at)
    assert low < processed_after_ms(request) <= high
    assert summary_numbers(output)["loaded"] == 1, "the event processed meanwhile, nothing else"
    assert {insert_id(late), insert_id(meanwhile)} <= stored_ids(db_path)
    assert stored(db_path) == (len(old) + 2,) * 2


def test_a_backfill_of_only_the_last_two_days_leaves_the_cursor_and_late_events_are_still_collected(
    sim, make_env, run_cli, db_path
) -> None:
    """An event of four days ago processed after the last collect lies outside the backfill's days:
    had the cursor moved to the backfill's request, no later collect would ask for it."""
    old = traffic(300, days=6)
    sim.add_events(old)
    env = make_env(sim, **NO_MARGIN)
    today = sim.today()
    collect(run_cli, env)
    cursor_ms = int(sim.requests[0].at * 1000)
    late = make_event(ENABLED_NAMES[0], datetime.now(UTC) - timedelta(days=4), processed_at=datetime.now(UTC))
    sim.add_events([late])

    said = backfill(run_cli, env, today - timedelta(days=1), today)
    output = collect(run_cli, env)

    assert STAYED in said and f"backfill from {today - timedelta(days=5)}" in said
    assert cursor_ms - 5_000 < processed_after_ms(sim.requests[-1]) <= cursor_ms
    assert summary_numbers(output)["loaded"] == 1
    assert insert_id(late) in stored_ids(db_path)
    assert stored(db_path)[0] == stored(db_path)[1]


def test_a_backfill_leaves_a_cursor_already_ahead_of_its_requests(sim, make_env, run_cli) -> None:
    """Days backfilled before the last collect no longer count: with today backfilled after it,
    their requests would put the cursor back before the collect."""
    sim.add_events(traffic(300, days=6))
    env = make_env(sim)
    today = sim.today()
    backfill(run_cli, env, today - timedelta(days=6), today - timedelta(days=1))
    collect(run_cli, env)
    cursor_ms = int(sim.requests[-1].at * 1000)

    said = backfill(run_cli, env, today, today)
    collect(run_cli, env)

    assert STAYED in said
    assert cursor_ms - 5_000 < processed_after_ms(sim.requests[-1]) + MARGIN_MS <= cursor_ms


def test_a_backfill_that_ends_before_today_leaves_the_cursor(sim, make_env, run_cli, db_path) -> None:
    old = traffic(300, days=8)
    sim.add_events(old)
    env = make_env(sim)
    today = sim.today()
    collect(run_cli, env)
    cursor_ms = int(sim.requests[0].at * 1000)

    said = backfill(run_cli, env, today - timedelta(days=8), today - timedelta(days=1))
    collect(run_cli, env)

    assert "cursor" not in said
    assert cursor_ms - 5_000 < processed_after_ms(sim.requests[-1]) + MARGIN_MS <= cursor_ms
    assert stored(db_path) == (len(old),) * 2


def test_an_event_enabled_before_the_backfill_is_still_new_to_the_next_collect(
    sim, make_env, run_cli, tmp_path, db_path
) -> None:
    """The backfill leaves the state a collect would have: the event enabled since the last collect
    gets its history job (here today only: its data is contiguous from the backfill's first day,
    as when the next collect plans it after a backfill that leaves the cursor) and is covered from
    that day; the other event's coverage joins the backfilled days."""
    old_name, new_name = ENABLED_NAMES
    events = traffic(800, days=8)
    sim.add_events(events)
    env = make_env(sim)
    today = sim.today()
    write_events_config(tmp_path, {"events": [rule(old_name)]})
    collect(run_cli, env)
    cursor_ms = int(sim.requests[0].at * 1000)
    write_events_config(tmp_path, {"events": [rule(old_name), rule(new_name)]})

    said = backfill(run_cli, env, today - timedelta(days=6), today)
    asked_before = len(sim.requests)
    output = collect(run_cli, env)

    assert MOVED in said
    incremental, *history = sim.requests[asked_before:]
    assert processed_after_ms(incremental) + MARGIN_MS > cursor_ms
    assert [(r.params["from_date"], r.params["event"]) for r in history] == [(str(today), f'["{new_name}"]')]
    assert f"history: fetched 1 day for 1 new event ({new_name})" in output
    first_day = day_start(today - timedelta(days=6))
    assert coverage(db_path) == dict.fromkeys(ENABLED_NAMES, first_day)
    expected = Counter(e.name for e in events if e.time_ms >= first_day.timestamp() * 1000)
    rows = query(db_path, f"select event_name, count(*), count(distinct event_id) from {EVENTS_TABLE} group by 1")
    assert {name: (count, distinct) for name, count, distinct in rows} == {
        name: (count, count) for name, count in expected.items()
    }
