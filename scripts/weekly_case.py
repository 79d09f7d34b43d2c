"""The weekly case of ``just quality``: a business-hours event in New York, partial outages, a DST change.

An event with a weekly rhythm in America/New_York: on weekdays about ``busy`` events per 5 minutes
from 09:00 to 17:00 local time, at weekends 20 from 10:00 to 18:00, each ramping over about half
an hour, and 2 at night. Minute counts with Poisson-like noise (seeded) are written straight into a fresh DuckDB raw
table for ``weeks`` weeks ending ``end``, across the 2026-11-01 change from daylight saving time.
On some weekday afternoons the rate falls to ``outage_fraction`` for 45 minutes. Then
``mixpanel-alerts backtest`` replays the period from the fourth week on (one baseline rule,
``direction: both``) with ``DETECTION_TIMEZONE`` set to New York, and again without it (UTC),
and for each it prints the minutes from each outage's start to its first drop incident and the
false incidents (all others) a week, and those in the two weeks after the DST change against the
two weeks before.

    python scripts/weekly_case.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from mixpanel_alerts.bench import POISSON_LIKE_COUNT, create_raw_table

EVENT = "checkout_business_hours"
TIMEZONE = "America/New_York"
DST_END = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)  # 02:00 EDT becomes 01:00 EST
OUTAGE_MINUTES = 45
OUTAGE_WAIT = timedelta(hours=3)
FOREIGN_PREFIXES = (
    *("MIXPANEL_", "EVENTS_CONFIG", "SLACK_", "BIGQUERY_", "GCP_", "DUCKDB_", "WAREHOUSE", "DETECTION_"),
    *("ALERT_", "OPS_", "HEARTBEAT_", "SOURCES__", "DESTINATION__"),
)


@dataclasses.dataclass(frozen=True)
class Case:
    """The traffic: ``weeks`` weeks of minutes before ``end`` (UTC midnight), outages at the
    local times in ``outages``, each for OUTAGE_MINUTES at ``outage_fraction`` of the rate."""

    end: datetime = datetime(2026, 11, 16, tzinfo=UTC)
    weeks: int = 7
    busy: float = 150.0  # events per 5 minutes, weekday business hours
    outage_fraction: float = 0.1
    outages: tuple[datetime, ...] = (
        # weekday afternoons, two before the change and two after, each in an hour of its own (an
        # outage lowers its hour's 5% quantile on the comparable days of the next four weeks)
        datetime(2026, 10, 20, 13, 10),  # a Tuesday
        datetime(2026, 10, 29, 15, 20),  # a Thursday
        datetime(2026, 11, 3, 14, 40),  # a Tuesday
        datetime(2026, 11, 12, 12, 5),  # a Thursday
    )
    seed: float = 0.17

    @property
    def start(self) -> datetime:
        return self.end - timedelta(weeks=self.weeks)

    def outage_starts(self) -> list[datetime]:
        """The outages' first minutes, UTC."""
        zone = ZoneInfo(TIMEZONE)
        return [local.replace(tzinfo=zone).astimezone(UTC) for local in self.outages]


def write_traffic(database: Path, case: Case) -> int:
    """The case's events in a fresh raw table (the columns collect writes); the events written."""
    outages = ", ".join(
        f"(timestamptz '{at:%Y-%m-%d %H:%M}+00', timestamptz '{until:%Y-%m-%d %H:%M}+00')"
        for at in case.outage_starts()
        for until in [at + timedelta(minutes=OUTAGE_MINUTES)]
    )
    minutes = int((case.end - case.start).total_seconds() // 60)
    with duckdb.connect(str(database)) as con:
        con.execute("set TimeZone = 'UTC'")
        con.execute(f"select setseed({case.seed})")
        create_raw_table(con)
        con.execute(
            f"""
            insert into mixpanel_data.mixpanel_events
            with minutes as (
                select
                    minute_index,
                    timestamptz '{case.start:%Y-%m-%d %H:%M}+00' + to_minutes(minute_index) as minute_at
                from range({minutes}) as t(minute_index)
            ),
            local as (
                select minute_index, minute_at, timezone('{TIMEZONE}', minute_at) as local_at from minutes
            ),
            expected as (
                -- a working day's level from 09:00 to 17:00 (a weekend's from 10:00 to 18:00), ramping
                -- up and down over about half an hour, and the same quiet night on every day
                select
                    minute_index, minute_at,
                    (
                        0.4 + (
                            case when dayofweek(local_at) in (0, 6) then 4.0 else {case.busy} / 5.0 end - 0.4
                        )
                        / (1 + exp(-(hour(local_at) + minute(local_at) / 60.0 - ramp_up) / 0.15))
                        / (1 + exp(-(ramp_up + 8 - hour(local_at) - minute(local_at) / 60.0) / 0.15))
                    )
                    * case
                        when exists (select 1 from (values {outages}) as o(a, b) where minute_at >= a and minute_at < b)
                            then {case.outage_fraction}
                        else 1.0
                    end as mean
                from (
                    select *, case when dayofweek(local_at) in (0, 6) then 10 else 9 end as ramp_up from local
                )
            ),
            counted as (
                select minute_index, minute_at,
                    {POISSON_LIKE_COUNT} as n
                from expected
            ),
            spread as (
                select minute_index, minute_at, n, unnest(range(n)) as k from counted where n > 0
            )
            select
                '{EVENT}-' || minute_index::varchar || '-' || k::varchar,
                '{EVENT}',
                minute_at + to_milliseconds((k * 59000) // n),
                'user-' || (k % 100)::varchar,
                null,
                '{{"case": "weekly"}}'::json,
                minute_at + to_milliseconds((k * 59000) // n) + to_seconds(2),
                now()
            from spread
            """
        )
        con.execute(
            "create table if not exists mixpanel_data.event_coverage "
            "(event_name varchar, collected_from timestamptz, updated_at timestamptz)"
        )
        con.execute("insert into mixpanel_data.event_coverage values (?, ?, now())", [EVENT, case.start])
        return int(con.execute("select count(*) from mixpanel_data.mixpanel_events").fetchall()[0][0])


def cli() -> str:
    beside = Path(sys.executable).with_name("mixpanel-alerts")
    found = str(beside) if beside.exists() else shutil.which("mixpanel-alerts")
    if not found:
        raise SystemExit("weekly case: no mixpanel-alerts command; install the project: pip install -e '.[dev]'")
    return found


def backtest(database: Path, case: Case, timezone: str | None, workdir: Path) -> list[dict[str, str]]:
    """``mixpanel-alerts backtest`` of the weeks after the first three (the baseline's history);
    its incidents."""
    rule = {"name": EVENT, "enabled": True, "alert_channel": "#quality", "time_window_minutes": 5}
    rule |= {"detector": "baseline", "direction": "both"}
    env = {key: value for key, value in os.environ.items() if not key.startswith(FOREIGN_PREFIXES)}
    env |= {
        "MIXPANEL_PROJECT_ID": "12345",
        "DUCKDB_PATH": str(database),
        "EVENTS_CONFIG": json.dumps({"events": [rule]}),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
    }
    if timezone:
        env["DETECTION_TIMEZONE"] = timezone
    report = workdir / f"backtest-{(timezone or 'UTC').replace('/', '_')}.json"
    first = (case.start + timedelta(weeks=3)).date()
    last = (case.end - timedelta(days=1)).date()
    span = ["--start-date", first.isoformat(), "--end-date", last.isoformat()]
    command = [cli(), "backtest", *span, "--json", str(report)]
    result = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        failed = f"weekly case: backtest failed (exit {result.returncode})"
        raise SystemExit(f"{failed}:\n{result.stdout}{result.stderr}")
    incidents: list[dict[str, str]] = json.loads(report.read_text())["incidents"]
    return incidents


@dataclasses.dataclass(frozen=True)
class Outcome:
    minutes_to_drop: list[float | None]  # per outage: minutes from its start to its first drop
    false_per_week: float
    false_before_dst: int  # in the two weeks before the change
    false_after_dst: int  # in the two weeks after it
    false_kinds: dict[str, int]


def parse_time(text: str) -> datetime:
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def judge(incidents: Sequence[dict[str, str]], case: Case) -> Outcome:
    """Each outage's minutes to its first drop within OUTAGE_WAIT; every other incident is false."""
    starts = case.outage_starts()
    minutes: list[float | None] = []
    claimed: set[int] = set()
    for start in starts:
        found = None
        for index, incident in enumerate(incidents):
            first = parse_time(incident["first_anomalous_minute"])
            if incident["kind"] == "drop" and start <= first < start + OUTAGE_WAIT:
                if found is None or first < found:
                    found = first
                claimed.add(index)
            elif start - timedelta(minutes=10) <= first < start + timedelta(minutes=OUTAGE_MINUTES + 30):
                claimed.add(index)  # a recovery's rebound right after the outage is the outage's
        minutes.append(None if found is None else (found - start).total_seconds() / 60)
    false = [incident for index, incident in enumerate(incidents) if index not in claimed]
    replayed_weeks = case.weeks - 3
    before = [i for i in false if DST_END - timedelta(weeks=2) <= parse_time(i["first_anomalous_minute"]) < DST_END]
    after = [i for i in false if DST_END <= parse_time(i["first_anomalous_minute"]) < DST_END + timedelta(weeks=2)]
    kinds: dict[str, int] = {}
    for incident in false:
        kinds[incident["kind"]] = kinds.get(incident["kind"], 0) + 1
    return Outcome(minutes, len(false) / replayed_weeks, len(before), len(after), kinds)


def describe(outcome: Outcome, case: Case, timezone: str | None) -> list[str]:
    label = f"DETECTION_TIMEZONE={timezone}" if timezone else "DETECTION_TIMEZONE unset (UTC)"
    lines = []
    for local, minutes in zip(case.outages, outcome.minutes_to_drop, strict=True):
        found = f"drop after {minutes:.0f} min" if minutes is not None else "no drop within 3 h"
        lines.append(
            f"weekly ({label}): outage {local:%a %Y-%m-%d %H:%M} New York, rate at "
            f"{case.outage_fraction:.0%} for {OUTAGE_MINUTES} min: {found}"
        )
    kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(outcome.false_kinds.items())) or "none"
    lines.append(
        f"weekly ({label}): false incidents {outcome.false_per_week:.2f} a week ({kinds}); "
        f"two weeks before the DST change {outcome.false_before_dst}, two weeks after {outcome.false_after_dst}"
    )
    return lines


def run_case(
    workdir: Path, case: Case, timezones: Sequence[str | None] = (TIMEZONE, None)
) -> dict[str | None, Outcome]:
    database = workdir / "weekly.duckdb"
    database.unlink(missing_ok=True)
    events = write_traffic(database, case)
    print(f"weekly: {events:,} events of {EVENT}, {case.start:%Y-%m-%d}..{case.end:%Y-%m-%d}", flush=True)
    outcomes = {}
    for timezone in timezones:
        outcome = judge(backtest(database, case, timezone, workdir), case)
        for line in describe(outcome, case, timezone):
            print(line, flush=True)
        outcomes[timezone] = outcome
    return outcomes


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args(argv)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="mixpanel-weekly-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        run_case(workdir, Case())
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
