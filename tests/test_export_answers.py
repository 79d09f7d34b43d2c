"""An export answer is trusted only when it is one: a 200 that is not JSON lines of events fails
the run (after dlt's retries) and moves nothing, every gzip member is read, a processing time in
the future neither moves the cursor nor cancels its margin, and a project timezone setting that
the data contradicts is warned about."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from mixpanel_alerts.simulator import GZIP_MIN_BYTES, ExportSimulator, make_event
from tests.conftest import (
    EVENTS_TABLE,
    REJECTS_TABLE,
    SA_SECRET,
    output_of,
    query,
    recent_traffic,
    summary_numbers,
    table_exists,
)

PROCESSED_AFTER = re.compile(r'^properties\["mp_processing_time_ms"\] > (\d+)$')
MARGIN_MS = 30 * 60_000
ATTEMPTS = 5  # the source's request_max_attempts

# fault, the Content-Type it answers with, the first bytes the error must quote
ODD_ANSWERS = [
    pytest.param("html-200", "text/html; charset=utf-8", "'<!DOCTYPE html> <html> <head><title>502", id="html"),
    pytest.param("json-error-200", "application/json", """'{"error": "Service temporarily""", id="json-error"),
    pytest.param("garbage-200", "text/plain; charset=utf-8", "'upstream error: export backend", id="garbage"),
]


def processed_after_ms(params: dict[str, str]) -> int:
    match = PROCESSED_AFTER.match(params.get("where", ""))
    assert match, f"no processing-time filter in {params}"
    return int(match.group(1))


def totals(db_path) -> tuple[int, int]:
    """Rows and distinct event ids in the raw table."""
    rows, distinct = query(db_path, f"select count(*), count(distinct event_id) from {EVENTS_TABLE}")[0]
    return int(rows), int(distinct)


def rejects(db_path) -> int:
    return (
        int(query(db_path, f"select count(*) from {REJECTS_TABLE}")[0][0])
        if table_exists(db_path, REJECTS_TABLE)
        else 0
    )


def failure_lines(output: str) -> list[str]:
    """The lines a failed run prints from its error on."""
    lines = output.splitlines()
    first = next(index for index, line in enumerate(lines) if line.startswith("error:"))
    return lines[first:]


@pytest.mark.parametrize(("fault", "content_type", "first_bytes"), ODD_ANSWERS)
def test_an_odd_200_that_persists_fails_the_run_and_moves_nothing(
    sim, make_env, run_cli, db_path, fault, content_type, first_bytes
):
    """The second run gets only odd 200s: it exits 1 naming what came back, stores nothing and
    leaves the cursor. With no margin (so that a moved cursor would show), the third run, answered
    normally, stores the events processed since the first run, each once."""
    first_events = recent_traffic(300, seed=31)
    sim.add_events(first_events)
    env = make_env(sim, SOURCES__MIXPANEL__PROCESSING_MARGIN_MINUTES="0")
    first = run_cli(["collect"], env)
    assert first.returncode == 0, output_of(first)
    after_first = totals(db_path), rejects(db_path)
    now = datetime.now(UTC)
    # processed after the first run asked: the cursor must not pass them before they are stored
    later = [make_event("page_view", now - timedelta(minutes=5 + n), processed_at=now) for n in range(40)]
    sim.add_events(later)
    time.sleep(0.01)
    sim.inject(*[fault] * 8)

    failed = run_cli(["collect"], env)
    after_failed = totals(db_path), rejects(db_path)
    failed_requests = sim.requests[1:]
    sim.faults.clear()
    recovered = run_cli(["collect"], env)

    output = output_of(failed)
    assert failed.returncode == 1, output
    assert [(r.fault, r.status) for r in failed_requests] == [(fault, 200)] * ATTEMPTS
    error = failure_lines(output)
    assert len(error) <= 3, output
    assert "Traceback" not in output and SA_SECRET not in output
    assert f"Mixpanel export answered 200 with {content_type}, not JSON lines of events" in error[0]
    assert first_bytes in error[0]
    assert f"({ATTEMPTS} attempts)" in error[0]
    assert "cursor did not move" in error[0]
    assert after_failed == after_first, "the odd answer stored rows"
    assert recovered.returncode == 0, output_of(recovered)
    assert processed_after_ms(sim.requests[-1].params) == processed_after_ms(failed_requests[0].params)
    expected = len(first_events) + len(later)
    assert totals(db_path) == (expected, expected)
    assert summary_numbers(output_of(recovered))["loaded"] == len(later)


@pytest.mark.parametrize(("fault", "content_type", "first_bytes"), ODD_ANSWERS)
def test_an_odd_200_once_is_retried_and_loads_everything(
    sim, make_env, run_cli, db_path, fault, content_type, first_bytes
):
    events = recent_traffic(200, seed=32)
    sim.add_events(events)
    sim.inject(fault)

    result = run_cli(["collect"], make_env(sim))

    assert result.returncode == 0, output_of(result)
    assert [(r.fault, r.status) for r in sim.requests] == [(fault, 200), (None, 200)]
    assert totals(db_path) == (len(events), len(events))
    assert rejects(db_path) == 0, "the odd answer's lines were kept as rejects"
    assert "1 export request(s), 2 attempt(s)" in output_of(result)


def test_a_few_bad_lines_among_many_events_still_load_as_rejects(start_sim, make_env, run_cli, db_path):
    class ServesAFewBadLines(ExportSimulator):
        def body_for(self, params: dict[str, str]) -> bytes:
            return super().body_for(params) + b"<br>\nnot json\n[1, 2]\n"

    sim = start_sim(ServesAFewBadLines)
    events = recent_traffic(100, seed=33)
    sim.add_events(events)

    result = run_cli(["collect"], make_env(sim))

    assert result.returncode == 0, output_of(result)
    assert len(sim.requests) == 1
    assert summary_numbers(output_of(result)) == {"loaded": len(events), "skipped": 0, "rejected": 3}
    assert rejects(db_path) == 3


@pytest.mark.parametrize("fault", ["multi-gzip", "gzip-no-header"])
def test_every_event_of_a_gzip_body_is_stored(sim, make_env, run_cli, db_path, fault):
    """Three gzip members back to back (each ending at a line's end, so that the first alone looks
    complete), or gzip without Content-Encoding."""
    events = recent_traffic(3000, seed=34)
    sim.add_events(events)
    sim.inject(fault)

    result = run_cli(["collect"], make_env(sim))

    assert result.returncode == 0, output_of(result)
    assert [(r.fault, r.status) for r in sim.requests] == [(fault, 200)]
    assert len(sim.body_for(sim.requests[0].params)) > GZIP_MIN_BYTES
    assert totals(db_path) == (len(events), len(events))
    assert summary_numbers(output_of(result))["loaded"] == len(events)


def notes(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("note:") and text in line]


def test_a_processing_time_in_the_future_is_stored_with_a_note_and_keeps_the_margin(sim, make_env, run_cli, db_path):
    """An event claims a processing time a day ahead: it is stored, the run says so once, and the
    next request still reaches back the margin before the first one's start, so an event processed
    before the first request but visible to the export only after it is collected."""
    events = recent_traffic(100, seed=35)
    now = datetime.now(UTC)
    ahead = make_event("page_view", now - timedelta(minutes=2), processed_at=now - timedelta(minutes=1))
    ahead_ms = int((now + timedelta(days=1)).timestamp() * 1000)
    sim.add_events([*events, ahead.__class__(**{**ahead.__dict__, "claimed_processing_ms": ahead_ms})])
    env = make_env(sim)

    first = run_cli(["collect"], env)
    asked_ms = sim.requests[0].at * 1000
    # processed 10 minutes before the first run asked, visible to the export only after it
    late = make_event("checkout_completed", now - timedelta(minutes=20), processed_at=now - timedelta(minutes=10))
    sim.add_events([late])
    second = run_cli(["collect"], env)

    assert [first.returncode, second.returncode] == [0, 0], output_of(first) + output_of(second)
    said = notes(output_of(first), "processing time in the future")
    assert len(said) == 1, output_of(first)
    assert said[0].startswith("note: 1 event has a Mixpanel processing time in the future (the latest ")
    assert "the cursor stays at this run's request time" in said[0]
    stored = {row[0] for row in query(db_path, f"select insert_id from {EVENTS_TABLE}")}
    assert ahead.properties["$insert_id"] in stored
    assert processed_after_ms(sim.requests[1].params) <= asked_ms - MARGIN_MS
    assert late.properties["$insert_id"] in stored
    expected = len(events) + 2
    assert totals(db_path) == (expected, expected)


# the simulator's project timezone (not UTC: a project created before 2023, which exports local
# time), MIXPANEL_PROJECT_TIMEZONE, and what the note must say (None: no note). The zones keep the
# collector's today no later than the simulator's (a later to_date is a 400).
TIMEZONES = [
    pytest.param("UTC", "America/New_York", "look like UTC", id="new-project-with-its-timezone-set"),
    pytest.param("Asia/Kolkata", "UTC", "look like local time at UTC+05:30", id="legacy-project-left-on-utc"),
    pytest.param("UTC", "UTC", None, id="new-project-on-utc"),
    pytest.param("Asia/Kolkata", "Asia/Kolkata", None, id="legacy-project-with-its-timezone-set"),
]


@pytest.mark.parametrize(("sim_timezone", "setting", "expected"), TIMEZONES)
def test_a_project_timezone_the_data_contradicts_is_warned_once(
    start_sim, make_env, run_cli, sim_timezone, setting, expected
):
    sim = start_sim(project_timezone=sim_timezone)
    sim.add_events(recent_traffic(400, seed=36))

    result = run_cli(["collect"], make_env(sim, MIXPANEL_PROJECT_TIMEZONE=setting))

    output = output_of(result)
    assert result.returncode == 0, output
    warned = notes(output, "MIXPANEL_PROJECT_TIMEZONE=")
    if expected is None:
        assert warned == [], output
    else:
        assert len(warned) == 1, output
        assert warned[0].startswith(f"note: MIXPANEL_PROJECT_TIMEZONE={setting} reads event times as ")
        assert expected in warned[0]
