"""A warehouse built by the previous release upgrades in place: the release before rule ids keyed
every detection table by event name. The new release adds ``rule_id`` (the event's name, as it
was), judges nothing again, sends nothing again, and leaves what a full refresh would.

The previous release is vendored (``tests/fixtures/previous_release.tar.gz``, its package and dbt
project at ``PREVIOUS_RELEASE``; ``just previous-release SHA`` makes it again) and runs as a process
of its own with it first on ``PYTHONPATH``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.alert_runs import ERRORS
from tests.conftest import DB_FILE, EMULATOR, output_of, query, rule, write_events_config
from tests.raw_traffic import RAW_TABLE, burst, coverage, stamp, traffic, write_minutes, write_raw

PREVIOUS_RELEASE = "ef73f81"  # main before rule ids (issue 22)
FIXTURE = Path(__file__).parent / "fixtures" / "previous_release.tar.gz"
END = datetime.fromisoformat("2026-11-20T15:00:00+00:00")
BASELINE, THRESHOLD = "checkout_completed", "page_view"
INCREMENTAL = (
    "int_event_counts_per_minute",
    "int_event_window_counts",
    "int_event_hour_windows",
    "int_event_baselines",
    "int_event_daily_surprise",
    "anomalies",
    "incidents",
)
COMPARED = {
    "int_event_counts_per_minute": "rule_id, event_name, minute_at, event_count",
    "int_event_window_counts": "rule_id, event_name, minute_at, window_count, minutes_in_window, is_anomalous",
    "int_event_hour_windows": "rule_id, event_name, window_day, hour_of_day, cast(window_counts as varchar)",
    "int_event_baselines": "rule_id, event_name, window_day, hour_of_day, q05, q50, q95, history_days",
    "int_event_daily_surprise": "rule_id, event_name, window_day, max_surprise",
    "anomalies": "rule_id, event_name, window_end_minute, event_count, kind, expected_count, upper_bound, excess",
    "incidents": "incident_id, rule_id, event_name, kind, first_anomalous_minute, last_anomalous_minute, status",
}


def moment(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.slow
def test_a_warehouse_of_the_previous_release_gets_rule_ids_in_place_and_nothing_is_judged_or_sent_again(
    make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    previous = tmp_path / "previous"
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(previous, filter="tar")
    database = tmp_path / DB_FILE
    begin = END - timedelta(days=9)
    write_raw(database, RAW_TABLE + "".join([
        traffic(BASELINE, begin, END, 6, "base"),
        traffic(THRESHOLD, begin, END, 20, "base", seed=0.3),
        burst(THRESHOLD, END - timedelta(minutes=3), 500, "spike"),
        burst(BASELINE, END - timedelta(days=1, hours=3), 400, "spike"),
        *(coverage(name, begin) for name in (BASELINE, THRESHOLD)),
    ]))  # fmt: skip
    write_events_config(tmp_path, {"events": [
        rule(BASELINE, detector="baseline", direction="both", alert_threshold=None, time_window_minutes=5),
        rule(THRESHOLD, alert_threshold=400, time_window_minutes=5),
    ]})  # fmt: skip
    env = make_env()

    def old(*args: str, at: datetime = END) -> subprocess.CompletedProcess[str]:
        code = "import sys, mixpanel_alerts.cli as cli; print(cli.__file__, file=sys.stderr); cli.main()"
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            env={**env, "PYTHONPATH": str(previous), "DETECTION_NOW": moment(at)},
            cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    built = old("detect")
    assert built.returncode == 0, built.stdout + built.stderr
    assert built.stderr.splitlines()[0].startswith(str(previous)), "the previous release did not run"
    assert "1 sent to the terminal" in built.stderr, built.stdout + built.stderr
    assert "rule_id" not in [
        name
        for (name,) in query(
            database, "select column_name from information_schema.columns where table_name = 'incidents'"
        )
    ]
    [(old_incidents,)] = query(database, "select count(*) from mixpanel_data.incidents")
    assert old_incidents >= 2, "the scenario raised no incidents"

    now = {**env, "DETECTION_NOW": moment(END + timedelta(minutes=1))}
    status = run_cli(["status", "--json"], now)
    assert status.returncode == 0, output_of(status)
    upgraded = run_cli(["detect"], now)
    assert upgraded.returncode == 0, output_of(upgraded)
    # the incident the previous release sent is the same incident: not sent again
    assert "0 sent" in upgraded.stderr, output_of(upgraded)

    for table in INCREMENTAL:  # every row named by its rule, which is its event
        [(rows, named, as_before)] = query(
            database,
            f"select count(*), count(rule_id), count(*) filter (where rule_id = event_name) from mixpanel_data.{table}",
        )
        assert rows == named == as_before, (table, rows, named, as_before)
    # nothing judged again: the run counted the new minute, no rule's whole history
    kinds = query(database, "select distinct kind from mixpanel_data.int_detection_ranges order by 1")
    assert ("rewindow",) not in kinds, kinds
    whole = query(database, "select count(*) from mixpanel_data.int_detection_ranges as ranges "
                            "join mixpanel_data.int_detection_plan as plan using (rule_id) "
                            "where ranges.kind = 'recount' and ranges.range_from <= plan.known_from")  # fmt: skip
    assert whole == [(0,)], "the upgrade counted a rule's whole history again"

    # what a full refresh by the new release builds
    rebuilt = tmp_path / "rebuilt"
    rebuilt.mkdir()
    shutil.copy(database, rebuilt / DB_FILE)
    shutil.copy(tmp_path / "events_config.json", rebuilt / "events_config.json")
    full = run_cli(["detect", "--full-refresh"], now, cwd=rebuilt)
    assert full.returncode == 0, output_of(full)
    for table, columns in COMPARED.items():
        mine = query(database, f"select {columns} from mixpanel_data.{table} order by all")
        theirs = query(rebuilt / DB_FILE, f"select {columns} from mixpanel_data.{table} order by all")
        assert mine == theirs, (table, sorted(set(mine) ^ set(theirs))[:6])
    # and the next run has nothing to do again
    second = run_cli(["detect"], now)
    assert second.returncode == 0, output_of(second)
    assert query(database, "select count(*) from mixpanel_data.int_detection_ranges where kind != 'recount'") == [(0,)]


@pytest.mark.skipif(
    not EMULATOR, reason='BIGQUERY_EMULATOR_HOST is not set: run `eval "$(scripts/bq_emulator.sh start)"`'
)
def test_a_bigquery_dataset_of_the_previous_release_gets_rule_ids_in_place(
    bigquery: Any, dataset: str, tmp_path: Path,
    bigquery_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
) -> None:  # fmt: skip
    """The same on BigQuery SQL (the emulator): a baseline rule's sustained rise, alerted by the
    previous release, is the same incident after the upgrade; every table gets its rule ids."""
    previous = tmp_path / "previous"
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(previous, filter="tar")
    now_minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    start, louder = now_minute - timedelta(days=12), now_minute - timedelta(minutes=30)
    write_minutes(bigquery, dataset, start, now_minute, f"case when minute_at >= {stamp(louder)} then 5 else 2 end")
    baseline = {"detector": "baseline", "direction": "up", "alert_threshold": None, "time_window_minutes": 5}
    write_events_config(tmp_path, {"events": [rule(ERRORS, **baseline)]})
    env = bigquery_env(dataset, DETECTION_NOW=moment(now_minute + timedelta(seconds=59)))

    built = subprocess.run(
        [sys.executable, "-c", "from mixpanel_alerts.cli import main; main()", "detect"],
        env={**env, "PYTHONPATH": str(previous)}, cwd=tmp_path, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert built.returncode == 0 and "1 sent to the terminal" in built.stderr, built.stdout + built.stderr
    [before] = [tuple(row) for row in bigquery.query(f"select incident_id, kind from {dataset}.incidents")]

    upgraded = run_cli(["detect"], {**env, "DETECTION_NOW": moment(now_minute + timedelta(seconds=119))})
    assert upgraded.returncode == 0, output_of(upgraded)
    assert "0 sent to the terminal" in upgraded.stderr, output_of(upgraded)
    for table in INCREMENTAL:
        [(rows, named, as_before)] = bigquery.query(
            f"select count(*), count(rule_id), countif(rule_id = event_name) from {dataset}.{table}"
        )
        assert rows == named == as_before, (table, rows, named, as_before)
    after = [tuple(row) for row in bigquery.query(f"select incident_id, kind from {dataset}.incidents")]
    assert after == [before]
    kinds = [row[0] for row in bigquery.query(f"select distinct kind from {dataset}.int_detection_ranges")]
    assert "rewindow" not in kinds, kinds
