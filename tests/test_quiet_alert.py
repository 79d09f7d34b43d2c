"""A quiet stretch's alert says how long it has been quiet: "0 events in the last 15 min, expected
about 21", in the clock of DETECTION_TIMEZONE. A modest event (14 events every 10 minutes, so half
its 5-minute windows hold none and no single empty window is a drop) goes silent while another
goes on; the raw table is written straight into a real DuckDB file, then ``mixpanel-alerts
detect`` builds and alerts. A sustained rise's alert says over how long: a steady event, 2 events
a minute, gets 5 a minute for half an hour, each window inside its band."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import DB_FILE, output_of, query, rule, write_events_config

EVENT = "checkout_completed"


def write_events(
    database: Path, start: datetime, end: datetime, step_minutes: int, per_minute: str, *bounds: datetime
) -> None:
    """EVENT's events at each ``step_minutes``-th minute from ``start`` to ``end``: ``per_minute`` of
    them (SQL over ``minute_at`` and the parameters ``bounds``, at most 60, one a second), and its coverage
    from ``start``."""
    with duckdb.connect(str(database)) as con:
        con.execute("set TimeZone = 'UTC'")
        con.execute("create schema mixpanel_data")
        con.execute(
            f"""
            create table mixpanel_data.mixpanel_events as
            select
                'e-' || epoch(minute_at)::bigint::varchar || '-' || k::varchar as event_id,
                ? as event_name,
                minute_at + to_seconds(k) as event_timestamp,
                'user' as distinct_id,
                null::varchar as insert_id,
                '{{}}'::json as properties,
                minute_at + to_seconds(k) as mp_processing_time,
                now() as inserted_at
            from (
                select unnest(generate_series(?::timestamptz, ?::timestamptz, interval {step_minutes} minute))
                    as minute_at
            ), range(60) as t(k)
            where k < {per_minute}
            """,
            [EVENT, start, end, *bounds],
        )
        con.execute(
            "create table mixpanel_data.event_coverage as select ? as event_name, ?::timestamptz as collected_from, "
            "now() as updated_at",
            [EVENT, start],
        )


def write_clumps(database: Path, start: datetime, silent_from: datetime, end: datetime) -> None:
    """14 events at each 10th minute from ``start`` to ``end``, none from ``silent_from`` on."""
    write_events(database, start, end, 10, "case when minute_at < ?::timestamptz then 14 else 0 end", silent_from)
    with duckdb.connect(str(database)) as con:
        # another event goes on to the end: the data keeps coming, this event alone is quiet
        con.execute(
            """
            insert into mixpanel_data.mixpanel_events
            select
                'p-' || epoch(minute_at)::bigint::varchar, 'page_viewed', minute_at, 'user', null, '{}',
                minute_at, now()
            from (
                select unnest(generate_series(?::timestamptz - interval 1 day, ?::timestamptz, interval 1 minute))
                    as minute_at
            )
            """,
            [end, end],
        )


@pytest.mark.parametrize(("zone", "day_of"), [(None, "UTC"), ("America/New_York", "America/New_York")])
def test_a_quiet_stretch_alert_says_how_long_and_how_many_were_expected(
    tmp_path: Path, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], zone: str | None,
    day_of: str,
) -> None:  # fmt: skip
    from zoneinfo import ZoneInfo

    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    silent_from = now.replace(minute=now.minute - now.minute % 10) - timedelta(minutes=20)
    write_clumps(tmp_path / DB_FILE, now - timedelta(days=9), silent_from, now)
    baseline = {"detector": "baseline", "direction": "down", "alert_threshold": None, "time_window_minutes": 5}
    # the other event is watched too (the pipeline's health follows the rules' events), never alerts
    steady = rule("page_viewed", alert_threshold=100_000, time_window_minutes=5)
    write_events_config(tmp_path, {"events": [rule(EVENT, **baseline), steady]})
    env = make_env(None, DETECTION_NOW=(now + timedelta(seconds=59)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    if zone:
        env["DETECTION_TIMEZONE"] = zone
    result = run_cli(["detect"], env)
    assert result.returncode == 0, output_of(result)

    [(minutes, count, expected, first)] = query(
        tmp_path / DB_FILE,
        "select quiet_first_minutes, quiet_count, quiet_expected, first_anomalous_minute "
        "from mixpanel_data.incidents where kind = 'drop'",
    )
    # 7 expected a window (the median of 14 and 0), 21 in 15 minutes: past 18.4 with none at all
    assert (minutes, count, round(expected)) == (15, 0, 21)
    flat = " ".join(output_of(result).replace("\u2502", " ").split())  # the terminal's box, unwrapped
    said = re.search(r"0 events in the last 15 min, expected about 21 at this time on a (\w+)", flat)
    assert said, output_of(result)
    assert said.group(1) == first.astimezone(ZoneInfo(day_of)).strftime("%A")
    local = first.astimezone(ZoneInfo(day_of))
    assert f"Anomalous*: since {local:%Y-%m-%d %H:%M} {local.tzname()}" in flat, flat


def write_steady(database: Path, start: datetime, louder_from: datetime, end: datetime) -> None:
    """2 events a minute from ``start`` to ``end``, 5 a minute from ``louder_from`` on."""
    write_events(database, start, end, 1, "case when minute_at >= ?::timestamptz then 5 else 2 end", louder_from)


def test_a_sustained_rise_alert_says_over_how_long_and_how_many_were_expected(
    tmp_path: Path, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any]
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    # twelve days: with fewer, a rise across midnight UTC raises the new day's bar (test_bigquery's twin)
    write_steady(tmp_path / DB_FILE, now - timedelta(days=12), now - timedelta(minutes=30), now)
    baseline = {"detector": "baseline", "direction": "up", "alert_threshold": None, "time_window_minutes": 5}
    write_events_config(tmp_path, {"events": [rule(EVENT, **baseline)]})
    env = make_env(None, DETECTION_NOW=(now + timedelta(seconds=59)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    result = run_cli(["detect"], env)
    assert result.returncode == 0, output_of(result)

    rows = query(
        tmp_path / DB_FILE,
        "select rise_first_minutes, rise_count, rise_expected, peak_count, upper_bound "
        "from mixpanel_data.incidents where kind = 'spike'",
    )
    # no window left its band (25 against a bar of 35); 15 minutes of 2.5 times the rate did: 30
    # expected, 75 came, more than 25 (the bar above the median) times the root of 3 windows
    assert len(rows) == 1, rows
    [(minutes, count, expected, peak, upper)] = rows
    assert peak <= upper, rows
    assert minutes == 15 and round(expected) == 30 and count >= 2 * 30, rows
    flat = " ".join(output_of(result).replace("\u2502", " ").split())
    assert re.search(rf"{count} events in the last 15 min, expected about 30 at this time on a \w+", flat), flat
