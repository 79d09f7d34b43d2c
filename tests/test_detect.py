"""`collect` + `detect` against the simulator: which windows are anomalies, how incidents group,
late events, reruns, and the rules table following the configuration."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mixpanel_alerts.simulator import ExportSimulator, SimEvent, make_event
from tests.conftest import output_of, query, rule, write_events_config
from tests.hostile import HOSTILE_NAMES

ERRORS = "impression_error_null_pointer_detected"
CHECKOUT = "checkout_completed"
DEBUG = "debug_ping"


def events_config(errors_threshold: int = 5) -> dict[str, object]:
    return {
        "events": [
            rule(ERRORS, alert_threshold=errors_threshold, time_window_minutes=1, cooldown_minutes=5),
            rule(CHECKOUT, alert_threshold=10, time_window_minutes=3, alert_channel="#alerts-checkout"),
            rule(DEBUG, enabled=False),
        ]
    }


@pytest.fixture
def base_minute() -> datetime:
    """A whole minute 40 minutes ago (UTC): every incident on it is over."""
    return datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=40)


def burst(name: str, minute: datetime, count: int, *, processed_at: datetime | None = None) -> list[SimEvent]:
    start = minute.replace(tzinfo=UTC)
    return [
        make_event(name, start + timedelta(seconds=1 + index * 50 / max(count, 1)), processed_at=processed_at)
        for index in range(count)
    ]


def scenario(base: datetime) -> list[SimEvent]:
    minute = lambda offset: base + timedelta(minutes=offset)  # noqa: E731
    return [
        # errors, threshold 5, W = 1: 6 alerts, 5 does not; a 3-minute gap joins, a 12-minute gap splits
        *burst(ERRORS, minute(0), 6),
        *burst(ERRORS, minute(1), 5),
        *burst(ERRORS, minute(3), 7),
        *burst(ERRORS, minute(15), 6),
        # checkout, threshold 10, W = 3: 4 + 4 + 3 = 11 alerts once
        *burst(CHECKOUT, minute(0), 4),
        *burst(CHECKOUT, minute(1), 4),
        *burst(CHECKOUT, minute(2), 3),
        # disabled: never collected, never counted
        *burst(DEBUG, minute(0), 100),
    ]


@pytest.fixture
def pipeline(
    sim: ExportSimulator,
    make_env: Callable[..., dict[str, str]],
    run_cli: Callable[..., object],
    tmp_path: Path,
    base_minute: datetime,
) -> Callable[[], None]:
    """Runs collect then detect, asserting both succeed."""
    write_events_config(tmp_path, events_config())
    sim.add_events(scenario(base_minute))
    env = make_env(sim)

    def run() -> None:
        for command in ("collect", "detect"):
            result = run_cli([command], env)
            assert result.returncode == 0, output_of(result)  # type: ignore[attr-defined]

    return run


def anomalies(db_path: Path) -> list[tuple[str, datetime, int, int]]:
    return query(
        db_path,
        "select event_name, window_end_minute, event_count, excess from mixpanel_data.anomalies order by 1, 2",
    )


def test_thresholds_windows_and_disabled_events(
    pipeline: Callable[[], None], db_path: Path, base_minute: datetime
) -> None:
    pipeline()
    minute = lambda offset: base_minute + timedelta(minutes=offset)  # noqa: E731
    assert anomalies(db_path) == [
        (CHECKOUT, minute(2), 11, 1),
        (ERRORS, minute(0), 6, 1),
        (ERRORS, minute(3), 7, 2),
        (ERRORS, minute(15), 6, 1),
    ]
    counts = dict(
        query(
            db_path,
            "select minute_at, event_count from mixpanel_data.int_event_counts_per_minute where event_name = ?",
            [ERRORS],
        )
    )
    assert counts[minute(1)] == 5
    assert counts[minute(2)] == 0, "quiet minutes exist with count 0"
    names = {
        row[0] for row in query(db_path, "select distinct event_name from mixpanel_data.int_event_counts_per_minute")
    }
    assert names == {ERRORS, CHECKOUT}


def test_incidents_group_minutes_closer_than_the_cooldown(
    pipeline: Callable[[], None], db_path: Path, base_minute: datetime
) -> None:
    pipeline()
    minute = lambda offset: base_minute + timedelta(minutes=offset)  # noqa: E731
    rows = query(
        db_path,
        """select event_name, first_anomalous_minute, last_anomalous_minute, anomalous_minutes, peak_count,
                  total_events, status, alert_channel
           from mixpanel_data.incidents order by event_name, first_anomalous_minute""",
    )
    assert rows == [
        (CHECKOUT, minute(2), minute(2), 1, 11, 11, "over", "#alerts-checkout"),
        (ERRORS, minute(0), minute(3), 2, 7, 6 + 5 + 0 + 7, "over", "#alerts-errors"),
        (ERRORS, minute(15), minute(15), 1, 6, 6, "over", "#alerts-errors"),
    ]


def test_rerun_changes_nothing(pipeline: Callable[[], None], db_path: Path) -> None:
    pipeline()
    tables = ("int_event_counts_per_minute", "int_event_window_counts", "anomalies", "incidents")
    before = {table: query(db_path, f"select * from mixpanel_data.{table} order by all") for table in tables}
    pipeline()
    after = {table: query(db_path, f"select * from mixpanel_data.{table} order by all") for table in tables}
    for table in ("anomalies", "incidents"):
        assert after[table] == before[table]
    # the counts may gain the minutes that passed between the runs, never change the old ones
    for table in ("int_event_counts_per_minute", "int_event_window_counts"):
        assert set(before[table]) <= set(after[table])
    # nothing was loaded since the last run: it read no raw row as arrived (the watermark is exact
    # to the microsecond, and a load's rows share one inserted_at)
    assert query(db_path, "select count(*) from mixpanel_data.int_detection_changes") == [(0,)]


def test_late_event_recounts_its_minute_and_keeps_the_incident_id(
    pipeline: Callable[[], None], sim: ExportSimulator, db_path: Path, base_minute: datetime
) -> None:
    pipeline()
    (first_id,) = query(
        db_path, "select incident_id from mixpanel_data.incidents where first_anomalous_minute = ?", [base_minute]
    )[0]
    late_minute = base_minute + timedelta(minutes=1)
    sim.add_events(burst(ERRORS, late_minute, 1, processed_at=datetime.now(UTC)))
    pipeline()
    assert (ERRORS, late_minute, 6, 1) in anomalies(db_path)
    # the run read what arrived since the last one: the late event, not the earlier load again
    assert query(db_path, "select event_name, minute_at, arrived_events from mixpanel_data.int_detection_changes") == [
        (ERRORS, late_minute, 1)
    ]
    rows = query(
        db_path,
        "select incident_id, anomalous_minutes, total_events from mixpanel_data.incidents where event_name = ? "
        "and first_anomalous_minute = ?",
        [ERRORS, base_minute],
    )
    assert rows == [(first_id, 3, 6 + 6 + 0 + 7)]


def test_rules_table_follows_the_configuration(
    pipeline: Callable[[], None],
    db_path: Path,
    tmp_path: Path,
    base_minute: datetime,
) -> None:
    pipeline()
    rules = query(
        db_path,
        "select event_name, enabled, alert_threshold, time_window_minutes, cooldown_minutes "
        "from mixpanel_data.alert_rules order by 1",
    )
    assert rules == [(CHECKOUT, True, 10, 3, 5), (DEBUG, False, 5, 1, 5), (ERRORS, True, 5, 1, 5)]

    write_events_config(tmp_path, events_config(errors_threshold=6))
    pipeline()
    assert query(db_path, "select alert_threshold from mixpanel_data.alert_rules where event_name = ?", [ERRORS]) == [
        (6,)
    ]
    # raised threshold: the windows of 6 are no longer anomalies, the 7 still is
    assert [row[1] for row in anomalies(db_path) if row[0] == ERRORS] == [base_minute + timedelta(minutes=3)]


def test_dbt_unit_tests_pass(pipeline: Callable[[], None], tmp_path: Path, db_path: Path) -> None:
    """The maths' unit tests in the yml files (5 vs 6, W = 3, zero fill, late recount, incidents)."""
    from mixpanel_alerts.core.config import load_settings
    from mixpanel_alerts.detection import detection_vars, run_dbt, warehouse_key

    pipeline()
    settings = load_settings({"DUCKDB_PATH": str(db_path)}, cwd=tmp_path)
    workdir = tmp_path / ".cache" / "mixpanel-alerts" / "dbt" / warehouse_key(settings)
    assert (workdir / "dbt_project.yml").is_file()
    result = run_dbt(
        ["test", "--select", "test_type:unit", "--vars", json.dumps(detection_vars(settings))], workdir, settings
    )
    names = {node.node.name for node in result.result.results}
    assert {"threshold_five_is_quiet_and_six_alerts", "window_of_three_sums_three_minutes"} <= names
    assert all(str(node.status) == "pass" for node in result.result.results)


def test_detect_before_any_collect_says_so_and_succeeds(
    make_env: Callable[..., dict[str, str]], run_cli: Callable[..., object], tmp_path: Path
) -> None:
    write_events_config(tmp_path, events_config())
    result = run_cli(["detect"], make_env())
    assert result.returncode == 0, output_of(result)  # type: ignore[attr-defined,arg-type]
    assert "no raw table mixpanel_data.mixpanel_events yet" in output_of(result)  # type: ignore[arg-type]
    assert "0 incidents" in output_of(result)  # type: ignore[arg-type]


def test_a_first_run_before_any_configured_event_happened(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., object], tmp_path: Path,
    db_path: Path,
) -> None:  # fmt: skip
    """A fresh warehouse where none of the configured events has happened yet: the runs succeed
    (detection once failed on the missing raw table, on every run), and the tables exist."""
    write_events_config(tmp_path, {"events": [rule("not_happened_yet"), rule("nor_this", enabled=False)]})
    sim.add_events(burst("something_else", datetime.now(UTC) - timedelta(minutes=5), 3))
    env = make_env(sim)
    for _ in range(2):
        result = run_cli(["run"], env)
        assert result.returncode == 0, output_of(result)  # type: ignore[attr-defined]
    tables = {row[0] for row in query(db_path, "select table_name from information_schema.tables")}
    assert {"mixpanel_events", "mixpanel_rejects", "alert_rules", "incidents", "alert_notifications"} <= tables
    assert query(db_path, "select count(*) from mixpanel_data.mixpanel_events") == [(0,)]


def _rules_config(names: list[str]) -> dict[str, object]:
    return {
        "events": [
            rule(name, alert_threshold=index + 1, description=names[(index + 1) % len(names)])
            for index, name in enumerate(names)
        ]
    }


def test_the_rules_seed_reads_back_exactly_what_was_validated(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., object], tmp_path: Path,
    db_path: Path,
) -> None:  # fmt: skip
    """Names that DuckDB's CSV sniffer, agate or a careless writer would change: quotes (a file
    whose only quotes are single ones was read with ' as the quote character), backticks, SQL and
    Jinja syntax, line breaks, tabs, RTL marks, "null", "true", 300 characters."""
    document = _rules_config(HOSTILE_NAMES)
    write_events_config(tmp_path, document)
    env = make_env(sim)
    for command in ("collect", "detect"):
        result = run_cli([command], env)
        assert result.returncode == 0, output_of(result)  # type: ignore[attr-defined]
    stored = query(
        db_path,
        "select event_name, alert_threshold, alert_channel, description, enabled from mixpanel_data.alert_rules",
    )
    expected = [
        (entry["name"], entry["alert_threshold"], entry["alert_channel"], entry["description"], True)
        for entry in document["events"]  # type: ignore[attr-defined]
    ]
    assert sorted(stored) == sorted(expected)


@pytest.mark.parametrize(
    "names",
    [["'quoted'", "plain_event"], ["'quoted'"], ["'quoted'", 'with "double" quotes']],
    ids=["single-quotes-only", "alone", "mixed-quotes"],
)
def test_a_rule_whose_name_has_quotes_is_monitored(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., object], tmp_path: Path,
    db_path: Path, names: list[str],
) -> None:  # fmt: skip
    write_events_config(tmp_path, {"events": [rule(name, alert_threshold=3) for name in names]})
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    sim.add_events([event for name in names for event in burst(name, minute, 6)])
    env = make_env(sim)
    for command in ("collect", "detect"):
        result = run_cli([command], env)
        assert result.returncode == 0, output_of(result)  # type: ignore[attr-defined]
    incidents = query(db_path, "select event_name, peak_count from mixpanel_data.incidents order by 1")
    assert incidents == sorted((name, 6) for name in names)


def test_a_direct_message_channel_id_passes_validation_and_detection(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., object], tmp_path: Path,
) -> None:  # fmt: skip
    """One channel rule for the configuration and the dbt test: a D… id passed the first and
    failed every detect on the second."""
    write_events_config(tmp_path, {"events": [rule(ERRORS, alert_channel="D0123ABCD"), rule(CHECKOUT)]})
    env = make_env(sim)
    for command in ("collect", "detect"):
        result = run_cli([command], env)
        assert result.returncode == 0, output_of(result)  # type: ignore[attr-defined]


def test_every_hostile_event_name_is_collected_and_monitored(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., object], tmp_path: Path,
    db_path: Path,
) -> None:  # fmt: skip
    """Each name travels through the export request, the load's SQL (in a text file that dlt reads
    back: a carriage return there once dropped every event of its name), the rules seed and dbt."""
    write_events_config(tmp_path, {"events": [rule(name, alert_threshold=3) for name in HOSTILE_NAMES]})
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    sim.add_events([event for name in HOSTILE_NAMES for event in burst(name, minute, 4)])
    env = make_env(sim)
    for command in ("collect", "detect"):
        result = run_cli([command], env)
        assert result.returncode == 0, output_of(result)  # type: ignore[attr-defined]
    stored = query(db_path, "select event_name, count(*) from mixpanel_data.mixpanel_events group by 1")
    assert sorted(stored) == sorted((name, 4) for name in HOSTILE_NAMES)
    incidents = query(db_path, "select event_name, peak_count from mixpanel_data.incidents")
    assert sorted(incidents) == sorted((name, 4) for name in HOSTILE_NAMES)


def test_the_marts_hold_64_bit_counts_and_utc_timestamps(pipeline: Callable[[], None], db_path: Path) -> None:
    """What analysts' tools see: counts as BIGINT (DuckDB's sum is 128-bit, which pandas turns into
    floats) and instants with their time zone, as in the raw table."""
    pipeline()
    types = dict(
        query(
            db_path,
            "select table_name || '.' || column_name, data_type from information_schema.columns "
            "where table_schema = 'mixpanel_data' and table_name in ('anomalies', 'incidents')",
        )
    )
    for column in ("anomalies.event_count", "incidents.peak_count", "incidents.total_events"):
        assert types[column] == "BIGINT", (column, types[column])
    for column in ("anomalies.window_end_minute", "incidents.started_at", "incidents.last_anomalous_minute"):
        assert types[column] == "TIMESTAMP WITH TIME ZONE", (column, types[column])


def test_a_configuration_without_enabled_events_says_so(
    pipeline: Callable[[], None], make_env: Callable[..., dict[str, str]], run_cli: Callable[..., object],
    sim: ExportSimulator, tmp_path: Path,
) -> None:  # fmt: skip
    """`{"events": []}` once succeeded silently, and still reported the incidents of earlier rules."""
    pipeline()
    write_events_config(tmp_path, {"events": []})
    result = run_cli(["run"], make_env(sim))
    output = output_of(result)  # type: ignore[arg-type]
    assert result.returncode == 0, output  # type: ignore[attr-defined]
    assert "enables no event: nothing is collected" in output
    assert "enables no event: nothing is monitored" in output
    assert "0 incidents (0 open)" in output


def test_detection_now_pins_the_moment_detection_runs_as_of(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., object], tmp_path: Path,
    db_path: Path,
) -> None:  # fmt: skip
    """DETECTION_NOW makes a run deterministic: a spike 20 minutes ago on the clock is 2 minutes ago
    as of the pinned moment, so its incident is still open and its alert within the lookback."""
    spike = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    write_events_config(tmp_path, {"events": [rule(ERRORS, alert_threshold=3)]})
    sim.add_events(burst(ERRORS, spike, 6))
    pinned = (spike + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = run_cli(["run"], make_env(sim, DETECTION_NOW=pinned, ALERT_LOOKBACK_MINUTES="5"))
    assert result.returncode == 0, output_of(result)  # type: ignore[attr-defined]
    assert query(db_path, "select status from mixpanel_data.incidents") == [("open",)]
    assert "1 sent to the terminal" in output_of(result)  # type: ignore[arg-type]
    unpinned = run_cli(["detect"], make_env(sim, ALERT_LOOKBACK_MINUTES="5"))
    assert unpinned.returncode == 0, output_of(unpinned)  # type: ignore[attr-defined]
    assert query(db_path, "select status from mixpanel_data.incidents") == [("over",)]


def steady(
    name: str, start: datetime, end: datetime, per_minute: int, *, processed_at: datetime | None = None
) -> list[SimEvent]:
    """``per_minute`` events in every whole minute from ``start`` to ``end`` (excluded), each
    processed by Mixpanel as it happened, or at ``processed_at``."""
    events: list[SimEvent] = []
    minute = start
    while minute < end:
        events += burst(name, minute, per_minute, processed_at=processed_at or minute + timedelta(seconds=30))
        minute += timedelta(minutes=1)
    return events


def test_drops_wait_for_the_data_and_one_event_silent_alone_is_a_drop(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    db_path: Path,
) -> None:  # fmt: skip
    """Two events at 4 a minute, each with a floor of 5 per 5 minutes. When Mixpanel's data stops
    15 minutes ago for both (the pipeline's news, not the events'), the minutes since are counted
    as zeros but no drop is judged on them. Once the data reaches the present again with only one
    of them in it, the silent one is a drop, from the minute its events stopped."""
    floor = {"alert_threshold": 1000, "min_events": 5, "time_window_minutes": 5, "cooldown_minutes": 60}
    write_events_config(tmp_path, {"events": [rule(CHECKOUT, **floor), rule(ERRORS, **floor)]})
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    stopped = now - timedelta(minutes=15)
    sim.add_events(steady(CHECKOUT, now - timedelta(minutes=60), stopped, 4))
    sim.add_events(steady(ERRORS, now - timedelta(minutes=60), stopped, 4))
    env = make_env(sim)

    held = run_cli(["run"], env)
    assert held.returncode == 0, output_of(held)
    zeros = query(
        db_path,
        "select count(*) from mixpanel_data.int_event_counts_per_minute where minute_at >= ? and event_count = 0",
        [stopped],
    )
    assert zeros[0][0] >= 2 * 13, "the quiet minutes are counted"
    assert query(db_path, "select count(*) from mixpanel_data.anomalies where kind = 'drop'") == [(0,)]
    status = run_cli(["status"], env)
    newest = stopped - timedelta(seconds=30)  # the last event's processing time
    held_from = newest.replace(second=0) - timedelta(minutes=2)
    assert f"drops: held from {held_from:%Y-%m-%d %H:%M} UTC" in output_of(status)

    # the data reaches the present again: checkout's last 15 minutes arrive, errors has none
    sim.add_events(steady(CHECKOUT, stopped, now, 4, processed_at=datetime.now(UTC)))
    found = run_cli(["run"], env)
    assert found.returncode == 0, output_of(found)
    incidents = query(db_path, "select event_name, kind, first_anomalous_minute from mixpanel_data.incidents")
    # the first window holding a silent minute (stopped) has 16 events; the one ending at stopped + 3
    # holds one minute of 4: below 5
    assert incidents == [(ERRORS, "drop", stopped + timedelta(minutes=3))], output_of(found)
    sent = "select kind, status from mixpanel_data.alert_notifications where event_name = ? order by created_at, kind"
    assert query(db_path, sent, [ERRORS]) == [("firing", "sent")]

    # errors' events were only late: they arrive, the drop is no longer in the data, and its alert
    # is resolved in its thread saying so
    sim.add_events(steady(ERRORS, stopped, now, 4, processed_at=datetime.now(UTC)))
    filled = run_cli(["run"], env)
    assert filled.returncode == 0, output_of(filled)
    assert query(db_path, "select count(*) from mixpanel_data.incidents") == [(0,)]
    assert query(db_path, sent, [ERRORS]) == [("firing", "sent"), ("resolved", "sent")]
    assert "resolved (no longer in the data)" in output_of(filled)
