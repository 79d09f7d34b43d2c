"""``mixpanel-alerts backtest``: the current rules replayed over stored history, as if ``detect`` had
run every minute, without touching what a run owns.

The detection models are built with ``--full-refresh`` into a private copy of the data they read:
on DuckDB a scratch DuckDB file, on BigQuery the dataset ``<BIGQUERY_DATASET>_backtest``. Only the
raw events of the enabled rules from ``HISTORY_DAYS`` before the period to its end are copied (the
baseline's history), with the events' coverage. The live detection tables, the ledger and Slack are
never touched: nothing is sent, nothing recorded. The models' ``detection_now`` is the end of the
period (or now, if that is earlier), so no event after it is seen.

A detection model is computed from strictly earlier history, so one full build gives each window
what a run at that minute would have computed; incidents are grouped as a run would group them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from .core.config import ConfigError, Settings
from .core.events_config import EventRule, EventsConfig
from .core.scratch import scratch_dir
from .core.sql import sql_string, sql_string_list
from .core.times import iso_utc, utc
from .core.warehouse import pipeline_for, undefined_relation_errors
from .detection import build_detection
from .orchestration import turn

# the baseline's history before the period (the collector fetches as much for a new event), and
# one day more: a window reaches at most one day back
HISTORY_DAYS = 28
WINDOW_DAYS = 1
COVERAGE_TABLE = "event_coverage"
BACKTEST_DATASET_SUFFIX = "_backtest"
PROGRESS_SECONDS = 15.0
FIRST_INCIDENTS_SHOWN = 5
# at most this many points per rule in the HTML report's series (twice that with the envelopes)
SERIES_POINTS = 4000
OPTIONAL_COLUMNS = ("kind", "expected_count", "lower_bound", "upper_bound")


@dataclasses.dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def begins(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def ends(self) -> datetime:
        """The first instant after the period."""
        return datetime(self.end.year, self.end.month, self.end.day, tzinfo=UTC) + timedelta(days=1)

    @property
    def weeks(self) -> float:
        return ((self.end - self.start).days + 1) / 7


def detection_moment(period: Period, now: datetime) -> datetime:
    """The replay's "now": the period's last second, or ``now`` if that comes first."""
    if now < period.begins:
        raise ConfigError(f"--start-date {period.start} is in the future (now is {iso_utc(now)})")
    return min(period.ends - timedelta(seconds=1), utc(now))


def replica_settings(settings: Settings, work: Path) -> Settings:
    if settings.warehouse == "bigquery":
        return settings.model_copy(update={"dataset": settings.dataset + BACKTEST_DATASET_SUFFIX})
    return settings.model_copy(update={"duckdb_path": work / "backtest.duckdb"})


def copy_history(settings: Settings, replica: Settings, names: list[str], since: datetime, until: datetime) -> int:
    """The raw events of ``names`` in [since, until) and the coverage table into the replica, in a
    run's turn (a run writing meanwhile would make the copy inconsistent); the events copied."""
    with turn(settings, "backtest (copying the history)"):
        if settings.warehouse == "bigquery":
            return _copy_bigquery(settings, replica, names, since, until)
        return _copy_duckdb(settings, replica, names, since, until)


def _copy_duckdb(settings: Settings, replica: Settings, names: list[str], since: datetime, until: datetime) -> int:
    import duckdb

    if not settings.duckdb_path.exists():
        raise ConfigError(f"DUCKDB_PATH={settings.duckdb_path} does not exist yet: run `mixpanel-alerts collect` first")
    schema = settings.dataset
    with duckdb.connect(str(replica.duckdb_path)) as con:
        con.execute("set TimeZone = 'UTC'")
        con.execute(f"attach {sql_string(str(settings.duckdb_path.resolve()))} as live (read_only)")
        con.execute(f'create schema if not exists "{schema}"')
        present = {
            row[0]
            for row in con.execute(
                "select table_name from duckdb_tables() where database_name = 'live' and schema_name = ?", [schema]
            ).fetchall()
        }
        copied = 0
        if settings.table in present:
            con.execute(
                f'create table "{schema}"."{settings.table}" as select * from live."{schema}"."{settings.table}" '
                f"where event_name in ({sql_string_list(names)}) and event_timestamp >= ? and event_timestamp < ?",
                [since, until],
            )
            copied = con.execute(f'select count(*) from "{schema}"."{settings.table}"').fetchall()[0][0]
        if COVERAGE_TABLE in present:
            # the copy's data begins at `since`: before it, unknown (not quiet) for every event
            con.execute(
                f'create table "{schema}".{COVERAGE_TABLE} as select * replace '
                f'(greatest(collected_from, ?) as collected_from) from live."{schema}".{COVERAGE_TABLE}',
                [since],
            )
        con.execute("detach live")
    return int(copied)


def _copy_bigquery(settings: Settings, replica: Settings, names: list[str], since: datetime, until: datetime) -> int:
    from google.api_core.exceptions import NotFound

    with pipeline_for(replica) as pipeline, pipeline.sql_client() as client:
        if not client.has_dataset():
            client.create_dataset()
        project = settings.gcp_project_id

        def live(table: str) -> str:
            return f"`{project}.{settings.dataset}.{table}`"

        raw = client.make_qualified_table_name(settings.table)
        copied = 0
        try:
            client.execute_sql(
                f"create or replace table {raw} as select * from {live(settings.table)} "
                f"where event_name in ({sql_string_list(names)}) and event_timestamp >= %s and event_timestamp < %s",
                since,
                until,
            )
            rows = client.execute_sql(f"select count(*) from {raw}") or [(0,)]
            copied = int(rows[0][0])
        except NotFound:
            client.execute_sql(f"drop table if exists {raw}")
        coverage = client.make_qualified_table_name(COVERAGE_TABLE)
        try:
            client.execute_sql(
                f"create or replace table {coverage} as select * replace "
                f"(greatest(collected_from, %s) as collected_from) from {live(COVERAGE_TABLE)}",
                since,
            )
        except NotFound:
            client.execute_sql(f"drop table if exists {coverage}")
    return copied


@contextlib.contextmanager
def ticking(say: Callable[[str], None], what: str, every: float = PROGRESS_SECONDS) -> Iterator[None]:
    """``what`` with the seconds elapsed, every ``every`` seconds while the block runs."""
    started = time.monotonic()
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            say(f"backtest: {what}, {time.monotonic() - started:.0f} s so far")

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _columns(client: Any, table: str) -> list[str]:
    with client.execute_query(f"select * from {table} where 1 = 0") as cursor:
        return [str(column[0]) for column in cursor.description or []]


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def read_incidents(client: Any, period: Period, names: set[str]) -> list[dict[str, Any]]:
    """The incidents of ``names`` whose first anomalous minute lies in the period, oldest first."""
    table = client.make_qualified_table_name("incidents")
    present = set(_columns(client, table))
    optional = [column for column in OPTIONAL_COLUMNS if column in present]
    selected = ", ".join(["event_name", "first_anomalous_minute", "last_anomalous_minute", "peak_count", *optional])
    rows = client.execute_sql(
        f"select {selected} from {table} where first_anomalous_minute >= %s and first_anomalous_minute < %s "
        "order by first_anomalous_minute, event_name",
        period.begins,
        period.ends,
    )
    incidents = []
    for row in rows or []:
        values = dict(zip(["event_name", "first", "last", "peak", *optional], row, strict=True))
        if values["event_name"] not in names:
            continue
        incidents.append(
            {
                "event_name": values["event_name"],
                "kind": values.get("kind") or "spike",
                "first_anomalous_minute": iso_utc(values["first"]),
                "last_anomalous_minute": iso_utc(values["last"]),
                "peak_count": int(values["peak"]),
                "expected_count": _number(values.get("expected_count")),
                "lower_bound": _number(values.get("lower_bound")),
                "upper_bound": _number(values.get("upper_bound")),
            }
        )
    return incidents


def _bands_table(client: Any) -> tuple[str, set[str]]:
    """Where each window's expectation is: the bands view of the baseline models, else the window
    counts (models without a baseline); and its columns."""
    for name in ("int_event_window_bands", "int_event_window_counts"):
        table = client.make_qualified_table_name(name)
        try:
            return table, set(_columns(client, table))
        except undefined_relation_errors():  # not built by these models
            continue
    raise ConfigError("the detection models built no window counts")


def series_step(period: Period) -> int:
    """Minutes per point of a chart's series: whole minutes up to SERIES_POINTS points, else
    buckets (each kept as its lowest and highest window count, so a one-minute spike or drop
    survives the report's own reduction to one column per pixel)."""
    minutes = int((period.ends - period.begins).total_seconds() // 60)
    return max(1, math.ceil(minutes / SERIES_POINTS))


def read_series(
    client: Any, period: Period, names: set[str], warehouse: str = "duckdb"
) -> dict[str, list[dict[str, Any]]]:
    """Per rule, its window counts with the expected count and band (a threshold rule's band: its
    minimum and its threshold), per minute or per bucket of ``series_step`` minutes."""
    table, present = _bands_table(client)
    expected, lower, upper = (
        column if column in present else "null" for column in ("expected_count", "lower_bound", "upper_bound")
    )
    step = series_step(period)
    if warehouse == "bigquery":
        bucket = f"div(timestamp_diff(minute_at, timestamp '{period.begins:%Y-%m-%d %H:%M:%S}', minute), {step})"
    else:
        bucket = f"date_diff('minute', timestamptz '{period.begins:%Y-%m-%d %H:%M:%S}+00', minute_at) // {step}"
    rows = client.execute_sql(
        f"select event_name, min(minute_at), min(window_count), max(window_count), avg({expected}), min({lower}), "
        f"max({upper}) from {table} where minute_at >= %s and minute_at < %s "
        f"group by event_name, {bucket} order by 1, 2",
        period.begins,
        period.ends,
    )
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for name, minute, low_count, high_count, expected_count, lower_bound, upper_bound in rows or []:
        if name not in names:
            continue
        if expected_count is not None and lower_bound is None and upper_bound is not None:
            lower_bound = 0  # a rule that watches spikes only: its band reaches down to nothing
        point = {
            "minute": iso_utc(minute),
            "expected": _number(expected_count),
            "lower": _number(lower_bound),
            "upper": _number(upper_bound),
        }
        series[name].append({**point, "count": int(low_count)})
        if high_count != low_count:
            series[name].append({**point, "count": int(high_count)})
    return series


@dataclasses.dataclass(frozen=True)
class Learning:
    """A baseline rule's learning in the period: its minutes, those still learning, the first
    minute that was not, and at the end how many days of history it had of how many needed."""

    minutes: int
    learning_minutes: int
    learned_from: datetime | None
    history_days: int | None = None
    needed_days: int | None = None


def read_learning(client: Any, period: Period) -> dict[str, Learning] | None:
    """Per baseline rule, its learning in the period; None if the models have no baseline."""
    table, present = _bands_table(client)
    if "is_learning" not in present:
        return None
    rows = client.execute_sql(
        "select event_name, count(*), sum(case when is_learning then 1 else 0 end), "
        f"min(case when not is_learning then minute_at end) from {table} "
        "where detector = 'baseline' and minute_at >= %s and minute_at < %s group by event_name",
        period.begins,
        period.ends,
    )
    days: dict[str, tuple[int, int]] = {}
    with contextlib.suppress(Exception):  # models without the mart
        mart = client.make_qualified_table_name("baseline_learning")
        for name, history, needed in client.execute_sql(
            f"select event_name, history_days, needed_days from {mart}"
        ) or []:  # fmt: skip
            days[name] = (int(history), int(needed))
    return {
        name: Learning(int(minutes), int(learning or 0), utc(first) if first else None, *days.get(name, (None, None)))
        for name, minutes, learning, first in rows or []
    }


def learning_note(rule: EventRule, learning: dict[str, Learning] | None) -> str | None:
    """For a baseline rule that lacked history for part of the period, what the user should know."""
    if rule.detector != "baseline":
        return None
    if learning is None:
        return "learning: these detection models compute no baseline"
    state = learning.get(rule.name)
    if state is None or state.learning_minutes == 0:
        return None
    if state.learned_from is None:
        have = f": {state.history_days} of {state.needed_days} days" if state.needed_days else ""
        return f"learning{have}; no baseline alerts in the whole period (only min_events and alert_threshold)"
    days = state.learning_minutes / 1440
    return f"learning until {state.learned_from:%Y-%m-%d %H:%M} UTC ({days:.1f} days of the period without a baseline)"


@dataclasses.dataclass
class Backtest:
    period: Period
    detection_now: datetime
    warehouse: str
    events_copied: int
    seconds: float
    rules: list[dict[str, Any]]

    @property
    def incidents(self) -> list[dict[str, Any]]:
        return sorted(
            (incident for rule in self.rules for incident in rule["incidents"]),
            key=lambda incident: (incident["first_anomalous_minute"], incident["event_name"]),
        )

    def json_document(self) -> dict[str, Any]:
        keys = ("event_name", "kind", "first_anomalous_minute", "last_anomalous_minute", "peak_count", "expected_count")
        return {"incidents": [{key: incident[key] for key in keys} for incident in self.incidents]}

    def report(self) -> dict[str, Any]:
        """The input of ``report.render_backtest_html``."""
        return {
            "generated_at": iso_utc(datetime.now(UTC)),
            "start_date": self.period.start.isoformat(),
            "end_date": self.period.end.isoformat(),
            "warehouse": self.warehouse,
            "rules": self.rules,
        }


def run_backtest(
    settings: Settings,
    events_config: EventsConfig,
    period: Period,
    *,
    say: Callable[[str], None],
    with_series: bool = False,
) -> Backtest:
    """Replay the enabled rules over ``period``; ``say`` reports progress (stderr)."""
    if period.end < period.start:
        raise ConfigError(f"--end-date {period.end} is before --start-date {period.start}")
    started = time.monotonic()
    now = detection_moment(period, settings.now())
    rules = list(events_config.enabled)
    names = [rule.name for rule in rules]
    since = period.begins - timedelta(days=HISTORY_DAYS + WINDOW_DAYS)
    with scratch_dir("backtest") as work:
        replica = replica_settings(settings, work)
        where = replica.dataset if settings.warehouse == "bigquery" else "a private copy"
        say(f"backtest: copying the events of {len(names)} rule(s) since {since:%Y-%m-%d} into {where}")
        copied = copy_history(settings, replica, names, since, period.ends)
        say(f"backtest: {copied:,} events copied in {time.monotonic() - started:.1f} s; building the detection models")
        with ticking(say, "dbt build of the detection models"):
            result = build_detection(
                replica, events_config, full_refresh=True, detection_now=now, workdir_base=work / "dbt"
            )
        say(f"backtest: {result.nodes} dbt nodes in {result.seconds:.1f} s; reading the incidents")
        with pipeline_for(replica) as pipeline, pipeline.sql_client() as client:
            incidents = read_incidents(client, period, set(names))
            series = read_series(client, period, set(names), settings.warehouse) if with_series else {}
            learning = read_learning(client, period)
    by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for incident in incidents:
        by_rule[incident["event_name"]].append(incident)
    report_rules = [
        {
            "event_name": rule.name,
            "detector": rule.detector,
            "direction": rule.direction,
            "sensitivity": rule.sensitivity,
            "time_window_minutes": rule.time_window_minutes,
            "alert_threshold": rule.alert_threshold,
            "min_events": rule.min_events,
            "description": rule.description or "",
            "alert_channel": rule.alert_channel,
            "learning": learning_note(rule, learning),
            "weeks": period.weeks,
            "series": series.get(rule.name, []),
            "incidents": by_rule.get(rule.name, []),
        }
        for rule in rules
    ]
    return Backtest(
        period=period,
        detection_now=now,
        warehouse=settings.warehouse,
        events_copied=copied,
        seconds=time.monotonic() - started,
        rules=report_rules,
    )


def _count(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.1f}".removesuffix(".0")


def summary_lines(backtest: Backtest) -> list[str]:
    """Per rule: its detector, its incidents (and per week), the first few, a learning note."""
    period = backtest.period
    total = len(backtest.incidents)
    lines = [
        f"backtest {period.start}..{period.end} ({period.weeks:.1f} weeks, as of {iso_utc(backtest.detection_now)}): "
        f"{total} incident(s) from {len(backtest.rules)} rule(s); nothing sent or recorded"
    ]
    for rule in backtest.rules:
        incidents = rule["incidents"]
        detector = rule["detector"] if rule["detector"] != "baseline" else f"baseline, {rule['direction']}"
        per_week = len(incidents) / period.weeks if period.weeks else 0.0
        lines.append(f"  {rule['event_name']!r} ({detector}): {len(incidents)} incident(s), {per_week:.1f} per week")
        for incident in incidents[:FIRST_INCIDENTS_SHOWN]:
            first = incident["first_anomalous_minute"].replace("T", " ").removesuffix(":00Z") + " UTC"
            expected = ""
            if incident["expected_count"] is not None:
                expected = f", expected {_count(incident['expected_count'])}"
                lower, upper = incident["lower_bound"], incident["upper_bound"]
                if lower is not None and upper is not None:
                    expected += f" ({_count(lower)}\u2013{_count(upper)})"
                elif upper is not None:
                    expected += f" (at most {_count(upper)})"
                elif lower is not None:
                    expected += f" (at least {_count(lower)})"
            extreme = "lowest" if incident["kind"] == "drop" else "peak"
            lines.append(f"    {first}  {incident['kind']:<5}  {extreme} {incident['peak_count']:,}{expected}")
        if len(incidents) > FIRST_INCIDENTS_SHOWN:
            lines.append(f"    … and {len(incidents) - FIRST_INCIDENTS_SHOWN} more")
        if rule["learning"]:
            lines.append(f"    {rule['learning']}")
    return lines
