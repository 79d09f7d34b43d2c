"""``just quality``: replay labelled count series through the product's real path and score it.

1. Each series (CSV ``timestamp,value``, one point per 5 minutes) becomes Mixpanel events: a point
   ``(t, n)`` is ``n`` events of the series' event name, spread evenly over the 5 whole minutes
   from ``t`` floored to the minute, shifted by whole weeks (weekday rhythm kept) so that the
   series ends before today (UTC).
2. The built-in export simulator serves them, one simulator per run of ``--days-per-run`` days:
   all 2M events in one simulator take 1.1 GB, and it scans them all for each one-day request
   (6 s each, 6 minutes for the backfill).
3. ``mixpanel-alerts backfill`` loads them into a fresh DuckDB file (one request per day, within
   the product's own rate limiter); the rows per event are checked against the CSV sums.
4. ``mixpanel-alerts backtest --json`` replays one rule per series (default baseline settings).
5. Each incident's first anomalous minute is mapped back to the series' own time and the series'
   scorer (``score.py``) prints its line.
6. A new event: the second half of the first series, under a name of its own, replayed with the
   others. Every event's data is recorded as collected from the first replayed day
   (``event_coverage``, as the history fetch of an event added to the configuration records it), so
   the new event's known history begins weeks before its first event. Its incidents in its first
   7 days are printed (target 0: a new event learns, it does not alert); it is not scored.
7. Outages: on the series named in OUTAGE_SERIES (FB, GOOG, IBM), 45 minutes of zero events at a
   busy time (the weekday hour of day with the highest median count, in the last third of the
   series, a day away from every labelled window). The minutes from each outage's start to the
   first drop incident that begins in the 3 hours after it are printed; incidents of that event in
   the hour before to 3 hours after are left out of the scorer's input (they are not labelled).
   Drops need ``--direction both`` (or down): with the default direction (up) none is raised.
8. The weekly case (``scripts/weekly_case.py``; ``--no-weekly`` leaves it out): a business-hours
   event in New York across the 2026-11-01 DST change with partial outages on weekday afternoons,
   replayed with DETECTION_TIMEZONE=America/New_York and in UTC: the minutes to each drop, the
   false incidents a week, and those in the two weeks after the change against the two before.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import dataclasses
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from mixpanel_alerts.simulator import ExportSimulator, SimEvent

sys.path.insert(0, str(Path(__file__).resolve().parent))
import weekly_case

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SERIES_DIR = REPO.parent / "shared" / "detection"
POINT_MINUTES = 5
WEEK = timedelta(weeks=1)
MINUTE_MS = 60_000
PROCESSING_DELAY_MS = 2_000
PROJECT_ID = "12345"
API_SECRET = "quality-api-secret"
RAW_TABLE = "mixpanel_data.mixpanel_events"
# the developer's own settings must not reach the replay
FOREIGN_PREFIXES = (
    *("MIXPANEL_", "EVENTS_CONFIG", "SLACK_", "BIGQUERY_", "GCP_", "DUCKDB_", "WAREHOUSE", "DETECTION_"),
    *("ALERT_", "OPS_", "HEARTBEAT_", "SOURCES__", "DESTINATION__"),
)


@dataclasses.dataclass(frozen=True)
class Series:
    """One labelled series: its key in ``windows.json``, its event name, its points and its shift."""

    key: str
    event_name: str
    points: tuple[tuple[datetime, int], ...]  # (original timestamp, count), naive UTC, in time order
    shift: timedelta  # whole weeks added to every original time

    @property
    def total(self) -> int:
        return sum(count for _, count in self.points)

    @functools.cached_property
    def floors(self) -> list[datetime]:
        """Each point's timestamp floored to the minute: its first minute of events."""
        return [floor_minute(at) for at, _ in self.points]

    @functools.cached_property
    def replay_starts(self) -> list[datetime]:
        """Each point's first replayed minute."""
        return [floor + self.shift for floor in self.floors]


def floor_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def parse_time(text: str) -> datetime:
    """ISO 8601 (``Z``, an offset or none, ``T`` or a space) as naive UTC."""
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "T"))
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def read_points(path: Path) -> tuple[tuple[datetime, int], ...]:
    with path.open(newline="") as handle:
        points = [(parse_time(row["timestamp"]), round(float(row["value"]))) for row in csv.DictReader(handle)]
    if any(count < 0 for _, count in points):
        raise SystemExit(f"quality: {path} has a negative count; a series must count events")
    return tuple(sorted(points))


def week_shift(series_end: datetime, today: date) -> timedelta:
    """The whole weeks that move ``series_end`` (exclusive) as late as possible, but not into ``today``."""
    midnight = datetime.combine(today, datetime.min.time())
    return WEEK * ((midnight - series_end) // WEEK)


def event_names(keys: Sequence[str]) -> dict[str, str]:
    """``nab_`` and the last ``_`` part of each file name (``Twitter_volume_AAPL.csv``: ``nab_aapl``);
    the whole file name where that part is not unique."""

    def slug(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")

    stems = {key: Path(key).stem for key in keys}
    short = {key: "nab_" + slug(stem.rsplit("_", 1)[-1]) for key, stem in stems.items()}
    names = list(short.values())
    return {key: name if names.count(name) == 1 else "nab_" + slug(stems[key]) for key, name in short.items()}


def series_keys(nab_dir: Path) -> list[str]:
    """The series named in ``windows.json`` (paths relative to ``nab_dir``), else every CSV under it."""
    windows = nab_dir / "windows.json"
    if windows.is_file():
        return list(json.loads(windows.read_text()))
    return sorted(path.relative_to(nab_dir).as_posix() for path in nab_dir.rglob("*.csv"))


def nab_dir_of(series_dir: Path) -> Path:
    return series_dir / "nab" if (series_dir / "nab").is_dir() else series_dir


def load_series(series_dir: Path, today: date) -> list[Series]:
    nab_dir = nab_dir_of(series_dir)
    keys = series_keys(nab_dir)
    if not keys:
        raise SystemExit(f"quality: no series (CSV files or nab/windows.json) under {series_dir}")
    names = event_names(keys)
    result = []
    for key in keys:
        points = read_points(nab_dir / key)
        if not points:
            raise SystemExit(f"quality: {nab_dir / key} has no points")
        end = floor_minute(points[-1][0]) + timedelta(minutes=POINT_MINUTES)
        result.append(Series(key, names[key], points, week_shift(end, today)))
    return result


def minute_counts(count: int) -> list[int]:
    """``count`` events over the point's minutes: the remainder goes to the first minutes."""
    base, remainder = divmod(count, POINT_MINUTES)
    return [base + (1 if minute < remainder else 0) for minute in range(POINT_MINUTES)]


def point_times_ms(start_ms: int, count: int) -> Iterator[int]:
    """Event times of one point (``start_ms``: its first minute), spread evenly inside each minute."""
    for minute, in_minute in enumerate(minute_counts(count)):
        minute_ms = start_ms + minute * MINUTE_MS
        for index in range(in_minute):
            yield minute_ms + index * MINUTE_MS // in_minute


def to_ms(at: datetime) -> int:
    return int(at.replace(tzinfo=UTC).timestamp() * 1000)


def series_events(series: Series, first_day: date, last_day: date) -> Iterator[SimEvent]:
    """The replayed events of ``series`` whose (UTC) day lies in ``[first_day, last_day]``."""
    begin_ms = to_ms(datetime.combine(first_day, datetime.min.time()))
    end_ms = to_ms(datetime.combine(last_day + timedelta(days=1), datetime.min.time()))
    starts = series.replay_starts
    sequence = 0
    for (_, count), start in zip(series.points, starts, strict=True):
        start_ms = to_ms(start)
        if start_ms + POINT_MINUTES * MINUTE_MS <= begin_ms or start_ms >= end_ms:
            sequence += count
            continue
        for time_ms in point_times_ms(start_ms, count):
            sequence += 1
            if begin_ms <= time_ms < end_ms:
                properties = {"distinct_id": f"user-{sequence % 5000}", "$insert_id": f"{series.event_name}-{sequence}"}
                yield SimEvent(series.event_name, time_ms, time_ms + PROCESSING_DELAY_MS, properties)


NEW_EVENT_DAYS = 7
OUTAGE_SERIES = ("_FB.", "_GOOG.", "_IBM.")
OUTAGE_MINUTES = 45
OUTAGE_WAIT = timedelta(hours=3)


@dataclasses.dataclass(frozen=True)
class Outage:
    series: Series
    start: datetime  # in the series' own time; the replay's is start + series.shift


def labelled_windows(series_dir: Path) -> dict[str, list[tuple[datetime, datetime]]]:
    windows = nab_dir_of(series_dir) / "windows.json"
    if not windows.is_file():
        return {}
    labelled = json.loads(windows.read_text())
    return {key: [(parse_time(a), parse_time(b)) for a, b in spans] for key, spans in labelled.items()}


def with_outage(series: Series, windows: Sequence[tuple[datetime, datetime]]) -> tuple[Series, Outage] | None:
    """``series`` with OUTAGE_MINUTES of zeros at a busy time away from its labelled windows."""
    by_hour: dict[int, list[int]] = {}
    for at, count in series.points:
        if at.weekday() < 5:
            by_hour.setdefault(at.hour, []).append(count)
    busiest = max(by_hour, key=lambda hour: sorted(by_hour[hour])[len(by_hour[hour]) // 2])
    first, last = series.points[0][0], series.points[-1][0]
    third = first + (last - first) * 2 / 3
    candidates = [
        at
        for at, _ in series.points
        if at >= third
        and at.weekday() < 5
        and at.hour == busiest
        and at + timedelta(hours=4) < last
        and all(at + timedelta(days=1) < a or at - timedelta(days=1) > b for a, b in windows)
    ]
    if not candidates:
        return None
    start = candidates[0]
    end = start + timedelta(minutes=OUTAGE_MINUTES)
    points = tuple((at, 0 if start <= at < end else count) for at, count in series.points)
    changed = dataclasses.replace(series, points=points)
    return changed, Outage(changed, start)


def outage_lines(report: Path, outages: Sequence[Outage]) -> list[str]:
    """Per outage, the minutes from its start to the first drop incident beginning within OUTAGE_WAIT."""
    replayed = json.loads(report.read_text())["incidents"]
    lines = []
    for outage in outages:
        start = outage.start.replace(second=0) + outage.series.shift
        drops = sorted(
            parse_time(incident["first_anomalous_minute"])
            for incident in replayed
            if incident["event_name"] == outage.series.event_name
            and incident["kind"] == "drop"
            and start <= parse_time(incident["first_anomalous_minute"]) < start + OUTAGE_WAIT
        )
        found = f"drop after {(drops[0] - start).total_seconds() / 60:.0f} min" if drops else "no drop within 3 h"
        median = sorted(count for _, count in outage.series.points)[len(outage.series.points) // 2]
        lines.append(
            f"quality: outage {outage.series.key} {outage.start:%a %Y-%m-%d %H:%M} ({OUTAGE_MINUTES} min of 0, "
            f"series median {median} a window): {found}"
        )
    return lines


def unlabelled_outage_incidents(incidents: dict[str, list[str]], outages: Sequence[Outage]) -> None:
    """Leave out of the scorer's input the incidents around each outage (they are not labelled)."""
    for outage in outages:
        start = outage.start.replace(second=0)
        kept = [
            at
            for at in incidents.get(outage.series.key, [])
            if not start - timedelta(hours=1) <= parse_time(at) < start + OUTAGE_WAIT
        ]
        incidents[outage.series.key] = kept


def new_event_case(all_series: Sequence[Series]) -> Series:
    """The first series' second half as an event of its own: it begins mid-history."""
    source = all_series[0]
    half = source.points[len(source.points) // 2 :]
    return Series(f"new event ({source.key}, second half)", f"{source.event_name}_new", half, source.shift)


def new_event_line(report: Path, case: Series) -> str:
    """The new event's incidents in its first NEW_EVENT_DAYS days."""
    first = case.replay_starts[0]
    until = first + timedelta(days=NEW_EVENT_DAYS)
    replayed = json.loads(report.read_text())["incidents"]
    early = [
        incident
        for incident in replayed
        if incident["event_name"] == case.event_name and first <= parse_time(incident["first_anomalous_minute"]) < until
    ]
    kinds = Counter(incident["kind"] for incident in early)
    detail = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "none"
    return (
        f"quality: {case.key}: first event {first:%Y-%m-%d %H:%M}, its data known from weeks before: "
        f"{len(early)} incident(s) in its first {NEW_EVENT_DAYS} days ({detail}; target 0)"
    )


def replay_days(all_series: Sequence[Series]) -> tuple[date, date]:
    first = min(series.replay_starts[0] for series in all_series)
    last = max(series.replay_starts[-1] + timedelta(minutes=POINT_MINUTES - 1) for series in all_series)
    return first.date(), last.date()


def original_minute(series: Series, replay_minute: datetime) -> datetime:
    """A replayed minute in the series' own time: the shift undone, and the flooring of its point
    undone too (minute 05:12 of the point 05:10:53 is 05:12:53)."""
    at = replay_minute - series.shift
    floors = series.floors
    index = bisect.bisect_right(floors, at) - 1
    if index >= 0 and at < floors[index] + timedelta(minutes=POINT_MINUTES):
        return at + (series.points[index][0] - floors[index])
    return at


def incidents_by_series(incidents: Sequence[dict[str, Any]], all_series: Sequence[Series]) -> dict[str, list[str]]:
    """The scorer's input: per series key, its incidents' first anomalous minutes in original time."""
    by_name = {series.event_name: series for series in all_series}
    result: dict[str, list[str]] = {series.key: [] for series in all_series}
    for incident in incidents:
        series = by_name.get(incident["event_name"])
        if series is None:
            continue
        first = original_minute(series, parse_time(incident["first_anomalous_minute"]))
        result[series.key].append(first.isoformat(timespec="seconds"))
    for starts in result.values():
        starts.sort()
    return result


def events_config(all_series: Sequence[Series], direction: str | None, extra: dict[str, Any]) -> str:
    """One baseline rule per series; ``extra`` is merged into each (a ``null`` value removes the key)."""
    rules = []
    for series in all_series:
        rule: dict[str, Any] = {
            "name": series.event_name,
            "enabled": True,
            "alert_channel": "#quality",
            "time_window_minutes": POINT_MINUTES,
            "detector": "baseline",
        }
        if direction:
            rule["direction"] = direction
        rule.update(extra)
        rules.append({key: value for key, value in rule.items() if value is not None})
    return json.dumps({"events": rules})


def product_env(database: Path, config: str, export_url: str = "") -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(FOREIGN_PREFIXES)}
    env |= {
        "MIXPANEL_PROJECT_ID": PROJECT_ID,
        "MIXPANEL_API_SECRET": API_SECRET,
        "DUCKDB_PATH": str(database),
        "EVENTS_CONFIG": config,
        "RUNTIME__DLTHUB_TELEMETRY": "false",
    }
    if export_url:
        env["MIXPANEL_EXPORT_URL"] = export_url
    return env


def cli() -> str:
    beside = Path(sys.executable).with_name("mixpanel-alerts")
    found = str(beside) if beside.exists() else shutil.which("mixpanel-alerts")
    if not found:
        raise SystemExit("quality: no mixpanel-alerts command; install the project: pip install -e '.[dev]'")
    return found


def run_cli(args: Sequence[str], env: dict[str, str], cwd: Path) -> float:
    """``mixpanel-alerts ARGS`` with its output shown as it comes; the wall seconds it took."""
    started = time.perf_counter()
    code = subprocess.run([cli(), *args], env=env, cwd=cwd, check=False).returncode
    if code != 0:
        raise SystemExit(f"quality: mixpanel-alerts {args[0]} failed (exit {code}); see its output above")
    return time.perf_counter() - started


def backtest_available() -> bool:
    result = subprocess.run([cli(), "backtest", "--help"], capture_output=True, text=True, check=False)
    return result.returncode == 0


def day_chunks(first: date, last: date, days_per_run: int) -> Iterator[tuple[date, date]]:
    while first <= last:
        end = min(last, first + timedelta(days=days_per_run - 1))
        yield first, end
        first = end + timedelta(days=1)


@dataclasses.dataclass
class Timings:
    generation: float = 0.0
    backfill: float = 0.0
    backtest: float = 0.0


def backfill(all_series: Sequence[Series], env: dict[str, str], workdir: Path, days_per_run: int) -> Timings:
    """Serve each run's days from a fresh simulator and load them with ``mixpanel-alerts backfill``."""
    timings = Timings()
    first_day, last_day = replay_days(all_series)
    for start, end in day_chunks(first_day, last_day, days_per_run):
        started = time.perf_counter()
        simulator = ExportSimulator(project_id=PROJECT_ID, api_secret=API_SECRET, service_account=None)
        for series in all_series:
            simulator.add_events(series_events(series, start, end))
        timings.generation += time.perf_counter() - started
        print(f"quality: {len(simulator.events):,} events for {start}..{end}", flush=True)
        with simulator:
            run_env = env | {"MIXPANEL_EXPORT_URL": simulator.url}
            timings.backfill += run_cli(
                ["backfill", "--start-date", start.isoformat(), "--end-date", end.isoformat()], run_env, workdir
            )
    return timings


def record_coverage(database: Path, all_series: Sequence[Series], first_day: date) -> None:
    """Every event's data collected from ``first_day``: what the history fetch records for an
    event added to the configuration, whether or not it existed then."""
    with duckdb.connect(str(database)) as con:
        con.execute(
            "create table if not exists mixpanel_data.event_coverage "
            "(event_name varchar, collected_from timestamptz, updated_at timestamptz)"
        )
        con.execute("delete from mixpanel_data.event_coverage")
        con.executemany(
            "insert into mixpanel_data.event_coverage values (?, ?, now())",
            [(series.event_name, datetime.combine(first_day, datetime.min.time(), UTC)) for series in all_series],
        )


def check_load(database: Path, all_series: Sequence[Series]) -> None:
    """Every event of every series is in the raw table, once."""
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute(f"select event_name, count(*) from {RAW_TABLE} group by 1").fetchall()
    loaded = {name: count for name, count in rows}
    expected = {series.event_name: series.total for series in all_series if series.total}
    if loaded != expected:
        raise SystemExit(f"quality: the raw table holds {loaded}, the series sum to {expected}")
    print(f"quality: raw table matches the series: {sum(expected.values()):,} events", flush=True)


def score(scorer: Path, incidents_file: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(scorer), str(incidents_file)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"quality: {scorer} failed:\n{result.stdout}{result.stderr}")
    return result.stdout.strip()


def score_backtest(report: Path, all_series: Sequence[Series], scorer: Path, outages: Sequence[Outage] = ()) -> str:
    """Write ``incidents.json`` beside the backtest's report, print the incidents per series and
    return the scorer's line."""
    replayed = json.loads(report.read_text())["incidents"]
    incidents = incidents_by_series(replayed, all_series)
    unlabelled_outage_incidents(incidents, outages)
    incidents_file = report.with_name("incidents.json")
    incidents_file.write_text(json.dumps(incidents, indent=1))
    kinds = Counter((incident["event_name"], incident["kind"]) for incident in replayed)
    for series in all_series:
        by_kind = ", ".join(f"{kinds[series.event_name, kind]} {kind}" for kind in sorted({k for _, k in kinds}))
        print(f"quality: {series.key}: {len(incidents[series.key])} incident(s) ({by_kind or 'none'})")
    return score(scorer, incidents_file)


def rules_label(args: argparse.Namespace) -> str:
    if args.direction or args.events_config_extra:
        overrides = {**({"direction": args.direction} if args.direction else {}), **args.events_config_extra}
        return f"baseline with {json.dumps(overrides)}"
    return "default baseline settings"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python scripts/quality.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--series-dir", type=Path, default=DEFAULT_SERIES_DIR, help="default: %(default)s")
    parser.add_argument("--scorer", type=Path, help="default: SERIES_DIR/score.py")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (DuckDB file, incidents)")
    parser.add_argument("--direction", choices=["up", "down", "both"], help="default: the product's")
    parser.add_argument(
        "--events-config-extra", type=json.loads, default={}, help="JSON merged into each rule (null removes a key)"
    )
    parser.add_argument("--days-per-run", type=int, default=7, help="days per backfill run (default: %(default)s)")
    parser.add_argument("--load-only", action="store_true", help="stop after the load and its check")
    parser.add_argument("--no-outages", action="store_true", help="replay the series without injected outages")
    parser.add_argument("--no-weekly", action="store_true", help="leave out the weekly case (scripts/weekly_case.py)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    started = time.perf_counter()
    args = parse_args(argv)
    scorer = args.scorer or args.series_dir / "score.py"
    if not args.load_only and not backtest_available():
        raise SystemExit(
            "quality: this install has no `mixpanel-alerts backtest` command, so nothing can be scored; "
            "--load-only stops after the load"
        )
    all_series = load_series(args.series_dir, datetime.now(UTC).date())
    outages: list[Outage] = []
    if not args.no_outages:
        windows = labelled_windows(args.series_dir)
        for index, series in enumerate(all_series):
            if any(marker in series.key for marker in OUTAGE_SERIES):
                injected = with_outage(series, windows.get(series.key, []))
                if injected is not None:
                    all_series[index], outage = injected
                    outages.append(outage)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="mixpanel-quality-"))
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "quality.duckdb"
    database.unlink(missing_ok=True)
    new_event = new_event_case(all_series)
    replayed = [*all_series, new_event]
    env = product_env(database, events_config(replayed, args.direction, args.events_config_extra))
    first_day, last_day = replay_days(replayed)
    shifts = sorted({series.shift.days // 7 for series in all_series})
    print(f"quality: {len(all_series)} series, days {first_day}..{last_day} (shifted {shifts} weeks)", flush=True)
    try:
        timings = backfill(replayed, env, workdir, args.days_per_run)
        check_load(database, replayed)
        record_coverage(database, replayed, first_day)
        if not args.load_only:
            report = workdir / "backtest.json"
            span = ["--start-date", first_day.isoformat(), "--end-date", last_day.isoformat()]
            timings.backtest = run_cli(["backtest", *span, "--json", str(report)], env, workdir)
            print(f"quality ({rules_label(args)}): {score_backtest(report, all_series, scorer, outages)}")
            print(new_event_line(report, new_event))
            for line in outage_lines(report, outages):
                print(line)
            if not args.no_weekly:
                started_weekly = time.perf_counter()
                weekly_case.run_case(workdir, weekly_case.Case())
                timings.backtest += time.perf_counter() - started_weekly
        print(
            f"quality: times: generation {timings.generation:.0f} s, backfill {timings.backfill:.0f} s, "
            f"backtest {timings.backtest:.0f} s, total {time.perf_counter() - started:.0f} s"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"quality: kept {workdir}")


if __name__ == "__main__":
    main()
