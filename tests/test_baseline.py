"""The baseline detector end to end on a real DuckDB file: eight days of a daily rhythm collected
through the product, then `detect` as of a pinned moment. A spike at night and an outage at noon
are found with their kind, expectation and band; an event known for two days only is learning and
raises nothing; minutes before an event's data begins are unknown, not zeros."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mixpanel_alerts.simulator import ExportSimulator, SimEvent, make_event
from tests.conftest import (
    DB_FILE,
    cli_runner,
    env_maker,
    output_of,
    query,
    rule,
    start_simulator,
    stop_in_background,
    write_events_config,
)  # fmt: skip

CHECKOUT = "checkout_completed"
SIGNUP = "signup_started"
WINDOW_MINUTES = 10


def per_minute_rate(minute: datetime) -> int:
    """The daily rhythm: 4 events a minute from 08:00 to 19:59 UTC, 2 at night."""
    return 4 if 8 <= minute.hour < 20 else 2


def minute_events(name: str, minute: datetime, count: int) -> list[SimEvent]:
    return [
        make_event(name, moment, processed_at=moment)
        for moment in (minute + timedelta(seconds=1 + index * 58 / max(count, 1)) for index in range(count))
    ]


def minutes(start: datetime, end: datetime) -> list[datetime]:
    """Every whole minute from start to end, both included."""
    return [start + timedelta(minutes=offset) for offset in range(int((end - start).total_seconds() // 60) + 1)]


def series(now_minute: datetime) -> tuple[list[SimEvent], dict[str, datetime]]:
    """Checkout: the rhythm from 8 days ago to now, with a spike yesterday at 03:10 (3 minutes of
    32) and an outage yesterday from 12:00 to 12:14. Signup: 1 a minute from 00:00 two days ago,
    and a burst of 60 half an hour ago."""
    today = now_minute.replace(hour=0, minute=0)
    yesterday = today - timedelta(days=1)
    moments = {
        "start": today - timedelta(days=8),
        "spike": yesterday.replace(hour=3, minute=10),
        "outage": yesterday.replace(hour=12),
        "signup_known": today - timedelta(days=2),
        "burst": now_minute - timedelta(minutes=30),
    }
    events: list[SimEvent] = []
    for minute in minutes(moments["start"], now_minute):
        count = per_minute_rate(minute)
        if moments["spike"] <= minute < moments["spike"] + timedelta(minutes=3):
            count = 32
        if moments["outage"] <= minute < moments["outage"] + timedelta(minutes=15):
            count = 0
        events += minute_events(CHECKOUT, minute, count)
    for minute in minutes(moments["signup_known"], now_minute):
        events += minute_events(SIGNUP, minute, 60 if minute == moments["burst"] else 1)
    return events, moments


@pytest.fixture(scope="module")
def detected(
    tmp_path_factory: pytest.TempPathFactory, stopping_servers: list[threading.Thread]
) -> Iterator[tuple[dict[str, datetime], str, dict[str, str], Path]]:
    """Collect the series from its first day, give signup the coverage of an event whose history
    begins a day before its first event (added to tracking two days ago), and detect as of the last
    minute of data: once for the module, whose tests only read the warehouse (or run what must
    change nothing)."""
    directory = tmp_path_factory.mktemp("baseline")
    sim = start_simulator()
    now_minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    events, moments = series(now_minute)
    sim.add_events(events)
    baseline = {"detector": "baseline", "direction": "both", "alert_threshold": None}
    write_events_config(
        directory,
        {
            "events": [
                rule(CHECKOUT, time_window_minutes=WINDOW_MINUTES, **baseline),
                rule(SIGNUP, time_window_minutes=WINDOW_MINUTES, **baseline),
            ]
        },
    )
    env = env_maker(directory)(
        sim,
        MIXPANEL_START_DATE=moments["start"].date().isoformat(),
        DETECTION_NOW=(now_minute + timedelta(seconds=59)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        ALERT_LOOKBACK_MINUTES="60",
    )
    run_cli = cli_runner(directory)
    collected = run_cli(["collect"], env)
    assert collected.returncode == 0, output_of(collected)
    import duckdb

    with duckdb.connect(str(directory / DB_FILE)) as con:
        con.execute(
            "update mixpanel_data.event_coverage set collected_from = ? where event_name = ?",
            [moments["signup_known"] - timedelta(days=1), SIGNUP],
        )
    result = run_cli(["detect"], env)
    assert result.returncode == 0, output_of(result)
    yield moments, output_of(result), env, directory
    stop_in_background(sim, stopping_servers)


INCIDENTS = """select kind, first_anomalous_minute, last_anomalous_minute, peak_count, expected_count,
                     lower_bound, upper_bound, peak_excess, detector
              from mixpanel_data.incidents where event_name = ? order by first_anomalous_minute"""


def test_a_spike_at_night_and_an_outage_at_noon_are_found_with_their_band(
    detected: tuple[dict[str, datetime], str, dict[str, str], Path],
) -> None:
    moments, _, env, directory = detected
    db_path, run_cli = directory / DB_FILE, cli_runner(directory)
    spike, outage = moments["spike"], moments["outage"]
    rows = query(db_path, INCIDENTS, [CHECKOUT])
    # at 03:00 every 10-minute window held 20: band [5, 55] (20 + 8 * sqrt(20) = 55.8 above; below,
    # a quarter of the 5% quantile, 5, is higher than 20 - 4 * sqrt(20) = 2.1);
    # the windows holding 2 or 3 minutes of 32 (80, 110) past 55 are the spike, and it goes on
    # while the count stays above the expected 20: the window holding one minute of 32 (50) too
    # at noon 40: band [15, 90]; the windows with at most 3 minutes of data (12 or fewer) are the drop,
    # and it goes on while the count stays under 40: until the last window holding an outage minute
    assert rows == [
        ("spike", spike + timedelta(minutes=1), spike + timedelta(minutes=11), 110, 20.0, 5, 55, 55, "baseline"),
        ("drop", outage + timedelta(minutes=6), outage + timedelta(minutes=23), 0, 40.0, 15, 90, 15, "baseline"),
    ]
    assert query(
        db_path, "select distinct kind from mixpanel_data.anomalies where event_name = ? order by 1", [CHECKOUT]
    ) == [("drop",), ("spike",)]
    again = run_cli(["detect"], env)  # the incremental branches: the same incidents
    assert again.returncode == 0, output_of(again)
    assert query(db_path, INCIDENTS, [CHECKOUT]) == rows


def test_an_event_known_for_two_days_is_learning_and_raises_nothing(
    detected: tuple[dict[str, datetime], str, dict[str, str], Path],
) -> None:
    _, output, env, directory = detected
    db_path, run_cli = directory / DB_FILE, cli_runner(directory)
    assert query(db_path, "select count(*) from mixpanel_data.incidents where event_name = ?", [SIGNUP]) == [(0,)]
    assert query(
        db_path,
        "select event_name, history_days, needed_days, is_learning "
        "from mixpanel_data.baseline_learning order by event_name",
    ) == [
        (CHECKOUT, 7, 7, False),  # days 1 to 7 before (8 days ago is not a reference day)
        (SIGNUP, 2, 7, True),
    ]
    assert f"{SIGNUP}: learning: 2 of 7 days" in output
    assert f"{CHECKOUT}: learning" not in output
    check = run_cli(["check"], env)
    assert f"baseline: {SIGNUP}: learning: 2 of 7 days" in output_of(check)


def test_minutes_before_an_event_is_known_are_not_zeros(
    detected: tuple[dict[str, datetime], str, dict[str, str], Path],
) -> None:
    moments, _, _, directory = detected
    db_path = directory / DB_FILE
    first = dict(
        query(
            db_path,
            "select event_name, min(minute_at) from mixpanel_data.int_event_counts_per_minute group by 1",
        )
    )
    # signup's collected data begins a day before its first event: it is known from its first
    # event (two days ago), not as a day of zeros from its coverage, nor from checkout's first day
    assert first == {CHECKOUT: moments["start"], SIGNUP: moments["signup_known"]}
    assert query(
        db_path,
        "select event_name, first_event_minute, known_from from mixpanel_data.int_detection_progress order by 1",
    ) == [(CHECKOUT, moments["start"], moments["start"]), (SIGNUP, moments["signup_known"], moments["signup_known"])]


def test_a_learning_rule_named_like_terminal_markup_is_printed_as_written(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    """Run output carries event names: "promo [/sale]" is rich markup that does not parse, and
    "[b]x[/b]" one that would restyle; both are printed as written, and detect goes on to alert."""
    names = ["promo [/sale]", "[b]x[/b]"]
    now_minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    for name in names:
        sim.add_events(minute_events(name, now_minute - timedelta(minutes=5), 3))
    baseline = {"detector": "baseline", "alert_threshold": 1}
    write_events_config(tmp_path, {"events": [rule(name, **baseline) for name in names]})
    env = make_env(sim, MIXPANEL_START_DATE=now_minute.date().isoformat())
    result = run_cli(["run"], env)
    output = output_of(result)
    assert result.returncode == 0, output
    for name in names:
        assert f"{name}: learning: 0 of 7 days" in output
