"""Incremental detection equals a full rebuild: after runs minute after minute, late events into
minutes already counted, an event enabled later with its history, a changed rule, events from
days past any lookback, a rule disabled and enabled again, runs with nothing new, a repeated run
and a replay of an earlier moment, `detect` leaves the same counts, windows, baselines, daily
surprise, `anomalies` and `incidents` as `detect --full-refresh` of the same data, at each step;
in UTC and in New York's clock (the 20 days span the 2026-11-01 change from daylight saving time),
and after DETECTION_TIMEZONE changes (every baseline rule judged again, as a full refresh would).

The warehouse is a real DuckDB file whose raw table is written with SQL (days of minute traffic
with a daily rhythm, spikes and an outage), so the comparison covers baselines and thresholds
without an export; `detect` runs through the CLI with DETECTION_NOW pinned.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DB_FILE, output_of, query, rule, write_events_config
from tests.raw_traffic import RAW_TABLE, burst, coverage, outage, traffic, write_raw

END = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
DAYS = 20
BASELINE = "checkout_completed"
THRESHOLD = "payment_failed"
WINDOWED = "page_view"
LATER = "signup_completed"  # enabled on the last day, its history arriving afterwards

ANOMALY_COLUMNS = (
    "event_name, window_start, window_end_minute, time_window_minutes, event_count, kind, expected_count, "
    "lower_bound, upper_bound, outside_band, excess, repeated_bursts, alert_threshold, min_events, quiet_minutes, "
    "quiet_count, quiet_expected"
)
INCIDENT_COLUMNS = (
    "incident_id, event_name, kind, started_at, first_anomalous_minute, last_anomalous_minute, ended_at, status, "
    "peak_count, total_events, expected_count, lower_bound, upper_bound, quiet_first_minutes, quiet_count, "
    "quiet_expected"
)


def rules(payment_threshold: int = 30, windowed: bool = True) -> dict[str, Any]:
    return {
        "events": [
            rule(
                BASELINE,
                detector="baseline",
                direction="both",
                alert_threshold=None,
                time_window_minutes=5,
                alert_channel="#alerts-checkout",
            ),
            rule(THRESHOLD, alert_threshold=payment_threshold, min_events=1, time_window_minutes=15),
            rule(WINDOWED, enabled=windowed, alert_threshold=400, time_window_minutes=5),
            rule(LATER, detector="baseline", direction="up", alert_threshold=None, time_window_minutes=1),
        ]
    }


def rows(database: Path, table: str, columns: str) -> list[tuple[Any, ...]]:
    return query(database, f"select {columns} from mixpanel_data.{table} order by all")


@pytest.mark.slow
@pytest.mark.parametrize("zone", [None, "America/New_York"])
def test_incremental_detect_equals_a_full_refresh_after_late_events_new_history_and_a_changed_rule(
    make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path, zone: str | None
) -> None:
    database = tmp_path / DB_FILE
    begin = END - timedelta(days=DAYS)
    write_raw(database, RAW_TABLE + "".join([
        traffic(BASELINE, begin, END - timedelta(hours=2), 6, "base"),
        traffic(THRESHOLD, begin, END - timedelta(hours=2), 0.5, "base", seed=0.2),
        traffic(WINDOWED, begin, END - timedelta(hours=2), 20, "base", seed=0.3),
        traffic(LATER, END - timedelta(hours=6), END - timedelta(hours=2), 3, "base", seed=0.4),
        burst(BASELINE, END - timedelta(days=1, hours=3), 400, "spike"),
        burst(THRESHOLD, END - timedelta(days=2), 80, "spike"),
        outage(WINDOWED, END - timedelta(days=1, hours=6), END - timedelta(days=1, hours=5)),
        *(coverage(name, begin) for name in (BASELINE, THRESHOLD, WINDOWED)),
        coverage(LATER, END - timedelta(hours=6)),
    ]))  # fmt: skip
    write_events_config(tmp_path, rules())
    env = make_env(DETECTION_TIMEZONE=zone)

    def detect(at: datetime, *extra: str) -> None:
        result = run_cli(["detect", *extra], {**env, "DETECTION_NOW": at.strftime("%Y-%m-%dT%H:%M:%SZ")})
        assert result.returncode == 0, output_of(result)

    compared: list[str] = []

    def same_as_full_refresh(at: datetime) -> None:
        """A copy of the warehouse rebuilt from scratch as of ``at`` holds what detect left."""
        rebuilt = tmp_path / f"rebuilt-{len(compared)}"
        rebuilt.mkdir()
        shutil.copy(database, rebuilt / DB_FILE)
        shutil.copy(tmp_path / "events_config.json", rebuilt / "events_config.json")
        moment = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        full = run_cli(["detect", "--full-refresh"], {**env, "DETECTION_NOW": moment}, cwd=rebuilt)
        assert full.returncode == 0, output_of(full)
        for table, columns in (
            ("int_event_counts_per_minute", "event_name, minute_at, event_count"),
            ("int_event_window_counts", "event_name, minute_at, window_count, minutes_in_window, is_anomalous"),
            ("int_event_hour_windows", "event_name, window_day, hour_of_day, cast(window_counts as varchar)"),
            ("int_event_baselines", "*"),
            ("int_event_daily_surprise", "*"),
            ("anomalies", ANOMALY_COLUMNS),
            ("incidents", INCIDENT_COLUMNS),
        ):
            incremental, rebuilt_rows = rows(database, table, columns), rows(rebuilt / DB_FILE, table, columns)
            assert rebuilt_rows, f"the scenario raised no {table}"
            missing = sorted(set(rebuilt_rows) - set(incremental))[:5]
            extra = sorted(set(incremental) - set(rebuilt_rows))[:5]
            assert incremental == rebuilt_rows, json.dumps(
                {"as_of": moment, "table": table, "only_in_full_refresh": missing, "only_incremental": extra},
                default=str, indent=1,
            )  # fmt: skip
        compared.append(moment)
        shutil.rmtree(rebuilt)

    detect(END - timedelta(hours=2))
    # the next hour arrives minute by minute, with late events into minutes already counted
    for step, minutes in enumerate((20, 40, 60)):
        now = END - timedelta(hours=2) + timedelta(minutes=minutes)
        write_raw(database, "".join([
            traffic(BASELINE, now - timedelta(minutes=20), now, 6, f"live{step}"),
            traffic(THRESHOLD, now - timedelta(minutes=20), now, 0.5, f"live{step}", seed=0.5),
            traffic(WINDOWED, now - timedelta(minutes=20), now, 20, f"live{step}", seed=0.6),
            burst(BASELINE, END - timedelta(days=1, hours=2 - step), 50 + 10 * step, f"late{step}"),
            burst(WINDOWED, END - timedelta(hours=3, minutes=step), 300, f"late{step}"),
        ]))  # fmt: skip
        detect(now)
    same_as_full_refresh(END - timedelta(hours=1))
    # an event enabled later gets its history: its coverage now begins days earlier
    write_raw(database, traffic(LATER, begin + timedelta(days=2), END - timedelta(hours=6), 3, "history", seed=0.7)
              + coverage(LATER, begin + timedelta(days=2)))  # fmt: skip
    detect(END - timedelta(minutes=50))
    # a changed rule: its whole history is judged by the new threshold
    write_events_config(tmp_path, rules(payment_threshold=20))
    # and payments keep arriving, a few a minute, to END - 20 min, loaded now: rows ahead of the
    # next runs' moments, counted as their minutes come
    steady = traffic(THRESHOLD, END - timedelta(minutes=44), END - timedelta(minutes=20), 1, "steady", seed=0.3)
    write_raw(database, burst(THRESHOLD, END - timedelta(minutes=45), 25, "last") + steady)
    detect(END - timedelta(minutes=40))
    same_as_full_refresh(END - timedelta(minutes=40))
    # events from days ago arriving now (a backfill, far past any lookback) raise old incidents
    busy_hour = END - timedelta(days=16, hours=1)  # 16 days ago: the baselines 14 days later learn from it
    write_raw(database, "".join([
        burst(THRESHOLD, END - timedelta(days=8), 60, "old"),
        burst(BASELINE, END - timedelta(days=6, hours=1), 300, "old"),
        traffic(BASELINE, busy_hour, busy_hour + timedelta(hours=1), 30, "old", seed=0.8),
    ]))  # fmt: skip
    detect(END - timedelta(minutes=35))
    same_as_full_refresh(END - timedelta(minutes=35))
    # a rule disabled for a run, then enabled again
    write_events_config(tmp_path, rules(payment_threshold=20, windowed=False))
    detect(END - timedelta(minutes=30))
    same_as_full_refresh(END - timedelta(minutes=30))
    write_events_config(tmp_path, rules(payment_threshold=20))
    detect(END - timedelta(minutes=25))
    # nothing new: quiet minutes are counted and the checkout silence since END - 1h is judged
    # (a drop); the same run twice
    detect(END - timedelta(minutes=20))
    detect(END - timedelta(minutes=20))
    same_as_full_refresh(END - timedelta(minutes=20))
    assert query(database, "select count(*) from mixpanel_data.incidents where kind = 'drop' and event_name = ?",
                 [BASELINE]) != [(0,)], "the checkout silence raised no drop"  # fmt: skip
    # a replay of an earlier moment, then the moment again
    detect(END - timedelta(minutes=50))
    same_as_full_refresh(END - timedelta(minutes=50))
    detect(END - timedelta(minutes=15))
    same_as_full_refresh(END - timedelta(minutes=15))
    # the detection clock changes: every baseline rule's history is judged again in the new one
    env["DETECTION_TIMEZONE"] = "Asia/Kolkata"
    detect(END - timedelta(minutes=10))
    same_as_full_refresh(END - timedelta(minutes=10))
