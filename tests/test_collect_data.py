"""What lands in the raw table: only enabled events, intact values, exact times, one row per event."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from mixpanel_alerts.simulator import ExportSimulator, make_event
from tests.conftest import (
    DISABLED_NAME,
    ENABLED_NAMES,
    EVENTS_TABLE,
    REJECTS_TABLE,
    output_of,
    query,
    recent_traffic,
    rule,
    run_overlapping,
    summary_numbers,
    write_events_config,
)
from tests.hostile import hostile_lines


def event_counts(db_path) -> dict[str, int]:
    return dict(query(db_path, f"select event_name, count(*) from {EVENTS_TABLE} group by 1"))


def test_only_enabled_events_are_requested_and_stored(sim, make_env, run_cli, db_path):
    events = recent_traffic(120, names=[*ENABLED_NAMES, DISABLED_NAME, "unconfigured_event"])
    sim.add_events(events)

    result = run_cli(["collect"], make_env(sim))

    assert result.returncode == 0, output_of(result)
    requested = json.loads(sim.requests[0].params["event"])
    assert sorted(requested) == sorted(ENABLED_NAMES)
    expected = Counter(event.name for event in events if event.name in ENABLED_NAMES)
    assert event_counts(db_path) == dict(expected)


def test_raw_table_holds_the_contract_columns(sim, make_env, run_cli, db_path):
    events = recent_traffic(25)
    sim.add_events(events)
    before = datetime.now(UTC)

    result = run_cli(["collect"], make_env(sim))

    after = datetime.now(UTC)
    assert result.returncode == 0, output_of(result)
    rows = query(
        db_path,
        f"""select insert_id, event_name, epoch_ms(event_timestamp), distinct_id, properties::varchar,
        epoch_ms(inserted_at) from {EVENTS_TABLE}""",
    )
    by_insert_id = {event.properties["$insert_id"]: event for event in events}
    assert len(rows) == len(events)
    for insert_id, name, timestamp_ms, distinct_id, properties, inserted_ms in rows:
        event = by_insert_id[insert_id]
        assert (name, timestamp_ms, distinct_id) == (event.name, event.time_ms, event.properties["distinct_id"])
        assert json.loads(properties) == {
            "time": event.time_ms,
            **event.properties,
            "mp_processing_time_ms": event.processing_ms,
        }
        assert before.timestamp() * 1000 - 1000 <= inserted_ms <= after.timestamp() * 1000 + 1000
    assert query(db_path, f"select count(*) from {EVENTS_TABLE} where event_id is null or event_id = ''") == [(0,)]


class IgnoresEventFilter(ExportSimulator):
    """A host that answers with every event, whatever ``event`` asks for."""

    def body_for(self, params: dict[str, str]) -> bytes:
        return super().body_for({key: value for key, value in params.items() if key != "event"})


def test_events_not_requested_are_dropped_even_if_the_host_sends_them(start_sim, make_env, run_cli, db_path):
    sim = start_sim(IgnoresEventFilter)
    events = recent_traffic(90, names=[*ENABLED_NAMES, DISABLED_NAME, "unconfigured_event"])
    sim.add_events(events)

    result = run_cli(["collect"], make_env(sim))

    assert result.returncode == 0, output_of(result)
    expected = Counter(event.name for event in events if event.name in ENABLED_NAMES)
    assert event_counts(db_path) == dict(expected)
    assert f"not requested {len(events) - sum(expected.values())}" in output_of(result)


def test_event_names_are_case_sensitive(sim, make_env, run_cli, tmp_path, db_path):
    write_events_config(tmp_path, {"events": [rule("Checkout"), rule("checkout")]})
    events = recent_traffic(60, names=["Checkout", "checkout", "CHECKOUT"])
    sim.add_events(events)

    result = run_cli(["collect"], make_env(sim))

    assert result.returncode == 0, output_of(result)
    assert sorted(json.loads(sim.requests[0].params["event"])) == ["Checkout", "checkout"]
    expected = Counter(event.name for event in events if event.name != "CHECKOUT")
    assert event_counts(db_path) == dict(expected)


AWKWARD_TEXT = "line\u2028separator\u2029paragraph\u0085next-line\x1cfile-separator é ✓ 😀"


def test_line_separator_characters_inside_values_survive(sim, make_env, run_cli, db_path):
    now = datetime.now(UTC)
    awkward = make_event(
        "page_view",
        now - timedelta(hours=1),
        distinct_id="user\u2028\u2029\u0085\x1c1",
        note=AWKWARD_TEXT,
        **{"key\u2028with\u0085separators": AWKWARD_TEXT},
    )
    neighbours = [
        make_event("page_view", now - timedelta(hours=2)),
        make_event("checkout_completed", now - timedelta(minutes=1)),
    ]
    sim.add_events([awkward, *neighbours])

    result = run_cli(["collect"], make_env(sim))

    assert result.returncode == 0, output_of(result)
    assert summary_numbers(output_of(result)) == {"loaded": 3, "skipped": 0, "rejected": 0}
    rows = query(
        db_path,
        f"select distinct_id, properties::varchar from {EVENTS_TABLE} where insert_id = ?",
        [awkward.properties["$insert_id"]],
    )
    assert len(rows) == 1
    distinct_id, properties = rows[0]
    assert distinct_id == "user\u2028\u2029\u0085\x1c1"
    stored = json.loads(properties)
    assert stored["note"] == AWKWARD_TEXT
    assert stored["key\u2028with\u0085separators"] == AWKWARD_TEXT
    assert {key: value for key, value in stored.items() if key not in ("time", "mp_processing_time_ms")} == (
        awkward.properties
    )


@pytest.mark.parametrize("process_tz", ["UTC", "Asia/Kolkata"], ids=lambda tz: f"TZ={tz}")
def test_event_timestamp_is_exact_to_the_millisecond(sim, make_env, run_cli, db_path, process_tz):
    now = datetime.now(UTC)
    events = [
        make_event("page_view", (now - timedelta(hours=3)).replace(microsecond=987_000)),
        make_event("checkout_completed", (now - timedelta(minutes=7)).replace(microsecond=1_000)),
    ]
    sim.add_events(events)

    result = run_cli(["collect"], make_env(sim, TZ=process_tz))

    assert result.returncode == 0, output_of(result)
    assert sim.requests[0].params["time_in_ms"] == "true"
    stored = dict(query(db_path, f"select insert_id, epoch_ms(event_timestamp) from {EVENTS_TABLE}"))
    assert stored == {event.properties["$insert_id"]: event.time_ms for event in events}


def test_legacy_local_epoch_project_stores_true_utc(start_sim, make_env, run_cli, db_path):
    project_tz = ZoneInfo("America/Los_Angeles")
    sim = start_sim(project_timezone=project_tz.key)
    today = datetime.now(project_tz).date()
    yesterday = today - timedelta(days=1)
    # wall-clock times far from a DST change (legacy local epoch is ambiguous in the repeated hour)
    events = [
        make_event("page_view", datetime.combine(yesterday, time(12, 0, 0, 250_000), tzinfo=project_tz)),
        make_event("checkout_completed", datetime.combine(yesterday, time(20, 30, 59, 999_000), tzinfo=project_tz)),
    ]
    sim.add_events(events)

    result = run_cli(["collect"], make_env(sim, MIXPANEL_PROJECT_TIMEZONE=project_tz.key))

    assert result.returncode == 0, output_of(result)
    assert sim.requests[0].params["to_date"] in {today.isoformat(), datetime.now(project_tz).date().isoformat()}
    stored = dict(query(db_path, f"select insert_id, epoch_ms(event_timestamp) from {EVENTS_TABLE}"))
    assert stored == {event.properties["$insert_id"]: event.time_ms for event in events}


def _with(event, **properties):
    return dataclasses.replace(event, properties={**event.properties, **properties})


def dedup_cases() -> tuple[list, int]:
    """Events as the host delivers them, and how many rows they must make."""
    now = datetime.now(UTC)
    original = make_event("page_view", now - timedelta(hours=1), distinct_id="alice", insert_id="ins-1")
    redelivered = dataclasses.replace(  # same dedup key, processed again, another property differs
        _with(original, **{"$city": "Elsewhere"}), processing_ms=original.processing_ms + 60_000
    )
    other_user = _with(original, distinct_id="bob")
    other_time = dataclasses.replace(original, time_ms=original.time_ms + 1_000)
    no_insert_id = make_event("checkout_completed", now - timedelta(hours=2), distinct_id="carol", insert_id=None)
    no_insert_id_other = _with(no_insert_id, button="buy-now")
    delivered = [original, original, redelivered, other_user, other_time, no_insert_id, no_insert_id]
    delivered.append(no_insert_id_other)
    return delivered, 5  # original, other_user, other_time, no_insert_id, no_insert_id_other


def test_duplicates_are_stored_once_and_distinct_events_are_kept(start_sim, make_env, run_cli, tmp_path, db_path):
    delivered, expected_rows = dedup_cases()
    first, second = start_sim(), start_sim()
    first.add_events(delivered)
    second.add_events(delivered)

    result = run_cli(["collect"], make_env(first))
    other = run_cli(["collect"], make_env(second, DUCKDB_PATH="other.duckdb"))

    assert result.returncode == 0, output_of(result)
    assert other.returncode == 0, output_of(other)
    assert query(db_path, f"select count(*), count(distinct event_id) from {EVENTS_TABLE}") == [
        (expected_rows, expected_rows)
    ]
    assert summary_numbers(output_of(result)) == {"loaded": 5, "skipped": 3, "rejected": 0}
    by_user = Counter(row[0] for row in query(db_path, f"select distinct_id from {EVENTS_TABLE}"))
    assert by_user == {"alice": 2, "bob": 1, "carol": 2}
    no_insert_id_rows = query(db_path, f"select event_id from {EVENTS_TABLE} where insert_id is null")
    assert len(no_insert_id_rows) == 2
    ids_sql = f"select event_id from {EVENTS_TABLE} order by event_id"
    assert query(db_path, ids_sql) == query(tmp_path / "other.duckdb", ids_sql)


# an unusable line, and a word its reject reason contains; the last one ends the body when the
# bad lines come last: a complete line (it ends in a newline) that is not JSON is not a cut body
BAD_LINES = [
    (b"[1, 2, 3]", "object"),
    (b'{"event":"x"}', "properties"),
    (b'{"event":"","properties":{"time":1700000000000,"distinct_id":"u1"}}', "name"),
    (b'{"event":"page_view","properties":{"distinct_id":"u2"}}', "time"),
    (b'{"event":"page_view","properties":{"time":1e30,"distinct_id":"u3","$insert_id":"far"}}', "time"),
    (b"not json", "JSON"),
]


class ServesBadLines(ExportSimulator):
    """A host whose export also holds lines no collector can use."""

    bad_lines_first = False

    def body_for(self, params: dict[str, str]) -> bytes:
        body = super().body_for(params)
        bad = b"".join(line + b"\n" for line, _ in BAD_LINES)
        return bad + body if self.bad_lines_first else body + bad


@pytest.mark.parametrize("bad_lines_first", [True, False], ids=["bad-lines-first", "bad-lines-last"])
def test_unusable_lines_become_rejects_once(start_sim, make_env, run_cli, db_path, bad_lines_first):
    sim = start_sim(ServesBadLines)
    sim.bad_lines_first = bad_lines_first
    events = recent_traffic(40)
    sim.add_events(events)
    env = make_env(sim)

    first = run_cli(["collect"], env)
    assert [r.status for r in sim.requests] == [200], "a complete body was fetched again"
    second = run_cli(["collect"], env)

    assert first.returncode == 0, output_of(first)
    assert second.returncode == 0, output_of(second)
    assert summary_numbers(output_of(first))["rejected"] == len(BAD_LINES)
    assert query(db_path, f"select count(*) from {EVENTS_TABLE}") == [(len(events),)]
    rejects = query(db_path, f"select line, reason from {REJECTS_TABLE}")
    assert len(rejects) == len(BAD_LINES)
    assert all(reason for _, reason in rejects)
    reasons = " | ".join(reason for _, reason in rejects)
    for _, reason_word in BAD_LINES:
        assert reason_word in reasons
    assert any("not json" in line for line, _ in rejects)


def test_overlapping_runs_store_each_event_once(sim, make_env, tmp_path, db_path):
    """Two cron runs that overlap on one DuckDB file: the second waits, nothing is stored twice."""
    events = recent_traffic(300)
    sim.add_events(events)
    env = make_env(sim)

    runs = run_overlapping(["collect"], env, tmp_path)
    outputs = [output for _, output in runs]

    assert [code for code, _ in runs] == [0, 0], outputs
    assert query(db_path, f"select count(*), count(distinct event_id) from {EVENTS_TABLE}") == [
        (len(events), len(events))
    ]
    assert sorted(summary_numbers(output)["loaded"] for output in outputs) == [0, len(events)]


def test_large_gzip_export_loads_every_event(sim, make_env, run_cli, db_path):
    events = recent_traffic(20_000, seed=11)
    sim.add_events(events)

    result = run_cli(["collect"], make_env(sim))

    assert result.returncode == 0, output_of(result)
    assert [r.status for r in sim.requests] == [200]
    assert query(db_path, f"select count(*), count(distinct event_id) from {EVENTS_TABLE}") == [(20_000, 20_000)]
    assert summary_numbers(output_of(result))["loaded"] == 20_000


class ServesHostileLines(ExportSimulator):
    """A host whose export also holds hostile lines (tests/hostile.py) for the requested events."""

    hostile_first = False
    hostile: list[bytes] = []

    def body_for(self, params: dict[str, str]) -> bytes:
        body = super().body_for(params)
        hostile = b"".join(line + b"\n" for line in self.hostile)
        return hostile + body if self.hostile_first else body + hostile


@pytest.mark.parametrize("hostile_first", [True, False], ids=["hostile-first", "hostile-last"])
def test_no_line_fails_a_load(start_sim, make_env, run_cli, db_path, hostile_first):
    """Repeated keys, wrong types, broken JSON: each line is an event or a reject, never a failed
    collect (a repeated top-level key once failed every run, and with it all alerting)."""
    sim = start_sim(ServesHostileLines)
    sim.hostile_first = hostile_first
    sim.hostile = hostile_lines(ENABLED_NAMES[0], int((datetime.now(UTC) - timedelta(hours=2)).timestamp() * 1000))
    events = recent_traffic(40)
    sim.add_events(events)
    env = make_env(sim)

    first = run_cli(["collect"], env)
    second = run_cli(["collect"], env)

    assert first.returncode == 0, output_of(first)
    assert second.returncode == 0, output_of(second)
    loaded = summary_numbers(output_of(first))
    stored, distinct = query(db_path, f"select count(*), count(distinct event_id) from {EVENTS_TABLE}")[0]
    assert stored == distinct == loaded["loaded"] > len(events)
    # one row per distinct rejected line (lines that differ only in what a reject keeps are one row)
    rejects, distinct = query(db_path, f"select count(*), count(distinct reject_id) from {REJECTS_TABLE}")[0]
    assert 0 < rejects == distinct <= loaded["rejected"]
    assert summary_numbers(output_of(second))["loaded"] == 0
    assert query(db_path, f"select count(*) from {EVENTS_TABLE}")[0][0] == stored
