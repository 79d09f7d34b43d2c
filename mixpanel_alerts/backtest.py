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

From the same build: for the HTML report, each rule's series and the minutes around its listed
incidents; for each threshold rule, the threshold that would have given a target number of
incidents a week (``tuning``, from the window counts). A period without events of the enabled
rules stops before the build (``NoDataError``); one in which every rule learned throughout is
``Backtest.all_learning``, which the CLI reports as a failure.
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
from .core.errors import StepError
from .core.events_config import EventRule, EventsConfig
from .core.scratch import scratch_dir
from .core.sql import sql_string, sql_string_list
from .core.times import iso_utc, utc
from .core.warehouse import columns_of, pipeline_for, undefined_relation_errors
from .detection import build_detection
from .orchestration import turn
from .report import LISTED_INCIDENTS
from .tuning import LOWEST_THRESHOLD, Suggestion, incident_curve, suggest_threshold

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
# each listed incident's own chart in the report: these hours either side of it, as Slack's chart
CONTEXT_HOURS = 3
LONGEST_CONTEXT_INCIDENT_HOURS = 18
TARGET_PER_WEEK = 1.0


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


@dataclasses.dataclass(frozen=True)
class Copied:
    """The events copied: all of them, and those in the period (the rest are its history)."""

    events: int
    in_period: int


class NoDataError(StepError):
    """The period holds no event of the enabled rules: a replay would only say "0 incidents"."""


def copy_history(settings: Settings, replica: Settings, names: list[str], since: datetime, period: Period) -> Copied:
    """The raw events of ``names`` from ``since`` to the end of the period and the coverage table
    into the replica, in a run's turn (a run writing meanwhile would make the copy inconsistent)."""
    with turn(settings, "backtest (copying the history)"):
        if settings.warehouse == "bigquery":
            return _copy_bigquery(settings, replica, names, since, period)
        return _copy_duckdb(settings, replica, names, since, period)


def _copy_duckdb(settings: Settings, replica: Settings, names: list[str], since: datetime, period: Period) -> Copied:
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
        copied = Copied(0, 0)
        if settings.table in present:
            con.execute(
                f'create table "{schema}"."{settings.table}" as select * from live."{schema}"."{settings.table}" '
                f"where event_name in ({sql_string_list(names)}) and event_timestamp >= ? and event_timestamp < ?",
                [since, period.ends],
            )
            ((events, in_period),) = con.execute(
                f'select count(*), count(*) filter (where event_timestamp >= ?) from "{schema}"."{settings.table}"',
                [period.begins],
            ).fetchall()
            copied = Copied(int(events), int(in_period))
        if COVERAGE_TABLE in present:
            # the copy's data begins at `since`: before it, unknown (not quiet) for every event
            con.execute(
                f'create table "{schema}".{COVERAGE_TABLE} as select * replace '
                f'(greatest(collected_from, ?) as collected_from) from live."{schema}".{COVERAGE_TABLE}',
                [since],
            )
        con.execute("detach live")
    return copied


def _copy_bigquery(settings: Settings, replica: Settings, names: list[str], since: datetime, period: Period) -> Copied:
    from google.api_core.exceptions import NotFound

    with pipeline_for(replica) as pipeline, pipeline.sql_client() as client:
        if not client.has_dataset():
            client.create_dataset()
        project = settings.gcp_project_id

        def live(table: str) -> str:
            return f"`{project}.{settings.dataset}.{table}`"

        raw = client.make_qualified_table_name(settings.table)
        copied = Copied(0, 0)
        try:
            client.execute_sql(
                f"create or replace table {raw} as select * from {live(settings.table)} "
                f"where event_name in ({sql_string_list(names)}) and event_timestamp >= %s and event_timestamp < %s",
                since,
                period.ends,
            )
            rows = client.execute_sql(
                f"select count(*), sum(case when event_timestamp >= %s then 1 else 0 end) from {raw}", period.begins
            ) or [(0, 0)]
            copied = Copied(int(rows[0][0]), int(rows[0][1] or 0))
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


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def read_incidents(client: Any, period: Period, names: set[str]) -> list[dict[str, Any]]:
    """The incidents of the rules ``names`` (their ids) whose first anomalous minute lies in the
    period, oldest first."""
    table = client.make_qualified_table_name("incidents")
    present = set(columns_of(client, table))
    optional = [column for column in OPTIONAL_COLUMNS if column in present]
    columns = ["rule_id", "event_name", "first_anomalous_minute", "last_anomalous_minute", "peak_count", *optional]
    rows = client.execute_sql(
        f"select {', '.join(columns)} from {table} where first_anomalous_minute >= %s and first_anomalous_minute < %s "
        "order by first_anomalous_minute, rule_id",
        period.begins,
        period.ends,
    )
    incidents = []
    for row in rows or []:
        values = dict(zip(["rule_id", "event_name", "first", "last", "peak", *optional], row, strict=True))
        if values["rule_id"] not in names:
            continue
        incidents.append(
            {
                "rule_id": values["rule_id"],
                "event_name": values["event_name"],
                "segment": "",
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
            return table, set(columns_of(client, table))
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
        f"select rule_id, min(minute_at), min(window_count), max(window_count), avg({expected}), min({lower}), "
        f"max({upper}) from {table} where minute_at >= %s and minute_at < %s "
        f"group by rule_id, {bucket} order by 1, 2",
        period.begins,
        period.ends,
    )
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for name, minute, low_count, high_count, expected_count, lower_bound, upper_bound in rows or []:
        if name not in names:
            continue
        point = _band_point(minute, expected_count, lower_bound, upper_bound)
        series[name].append({**point, "count": int(low_count)})
        if high_count != low_count:
            series[name].append({**point, "count": int(high_count)})
    return series


def _band_point(minute: datetime, expected: Any, lower: Any, upper: Any) -> dict[str, Any]:
    if expected is not None and lower is None and upper is not None:
        lower = 0  # a rule that watches spikes only: its band reaches down to nothing
    return {"minute": iso_utc(minute), "expected": _number(expected), "lower": _number(lower), "upper": _number(upper)}


def context_span(incident: dict[str, Any]) -> tuple[datetime, datetime]:
    """The minutes an incident's own chart shows: CONTEXT_HOURS before its first anomalous minute
    to CONTEXT_HOURS after its last (after LONGEST_CONTEXT_INCIDENT_HOURS of it, for a longer one)."""
    first = datetime.fromisoformat(incident["first_anomalous_minute"])
    last = min(
        datetime.fromisoformat(incident["last_anomalous_minute"]),
        first + timedelta(hours=LONGEST_CONTEXT_INCIDENT_HOURS),
    )
    return first - timedelta(hours=CONTEXT_HOURS), last + timedelta(hours=CONTEXT_HOURS, minutes=1)


def read_incident_context(client: Any, name: str, incidents: list[dict[str, Any]]) -> None:
    """Each incident's minutes around it (``context_span``), per minute with its band, as its
    ``context``: the series of the small chart the report draws beside it, as Slack's chart does."""
    if not incidents:
        return
    table, present = _bands_table(client)
    expected, lower, upper = (
        column if column in present else "null" for column in ("expected_count", "lower_bound", "upper_bound")
    )
    spans = [context_span(incident) for incident in incidents]
    within = " or ".join(["(minute_at >= %s and minute_at < %s)"] * len(spans))
    rows = client.execute_sql(
        f"select minute_at, window_count, {expected}, {lower}, {upper} from {table} "
        f"where rule_id = %s and ({within}) order by minute_at",
        name,
        *(moment for span in spans for moment in span),
    )
    points = [(utc(row[0]), {**_band_point(row[0], *row[2:]), "count": int(row[1] or 0)}) for row in rows or []]
    for incident, (begins, ends) in zip(incidents, spans, strict=True):
        incident["context"] = [point for minute, point in points if begins <= minute < ends]
        incident["context_from"], incident["context_to"] = iso_utc(begins), iso_utc(ends)


def read_window_counts(client: Any, name: str, since: datetime, until: datetime) -> list[tuple[datetime, int]]:
    """The rule's window count of each minute in [since, until) above the lowest threshold, in
    time order (a lower one never starts an incident, nor keeps one going, at any threshold)."""
    table, _ = _bands_table(client)
    rows = client.execute_sql(
        f"select minute_at, window_count from {table} "
        "where rule_id = %s and minute_at >= %s and minute_at < %s and window_count > %s order by minute_at",
        name,
        since,
        until,
        LOWEST_THRESHOLD,
    )
    return [(utc(minute), int(count)) for minute, count in rows or []]


def threshold_suggestion(client: Any, rule: EventRule, period: Period, target_per_week: float) -> Suggestion | None:
    """For a threshold rule, the threshold that would have given at most ``target_per_week``
    incidents a week over the period, from the replay's window counts (``tuning``)."""
    since = period.begins - timedelta(minutes=rule.cooldown_minutes)
    minutes = read_window_counts(client, rule.rule_id, since, period.ends)
    curve = incident_curve(minutes, rule.cooldown_minutes, period.begins)
    return suggest_threshold(curve, period.weeks, target_per_week)


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
        "select rule_id, count(*), sum(case when is_learning then 1 else 0 end), "
        f"min(case when not is_learning then minute_at end) from {table} "
        "where detector = 'baseline' and minute_at >= %s and minute_at < %s group by rule_id",
        period.begins,
        period.ends,
    )
    days: dict[str, tuple[int, int]] = {}
    with contextlib.suppress(Exception):  # models without the mart
        mart = client.make_qualified_table_name("baseline_learning")
        for name, history, needed in client.execute_sql(
            f"select rule_id, history_days, needed_days from {mart}"
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
    state = learning.get(rule.rule_id)
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
    target_per_week: float = TARGET_PER_WEEK

    @property
    def incidents(self) -> list[dict[str, Any]]:
        return sorted(
            (incident for rule in self.rules for incident in rule["incidents"]),
            key=lambda incident: (incident["first_anomalous_minute"], incident["event_name"]),
        )

    @property
    def all_learning(self) -> bool:
        """Every rule a baseline that learned for the whole period: no baseline judged a window."""
        return all(rule["learning_all_period"] for rule in self.rules)

    def json_document(self) -> dict[str, Any]:
        keys = (
            "rule_id", "event_name", "segment", "kind", "first_anomalous_minute", "last_anomalous_minute", "peak_count",
            "expected_count",
        )  # fmt: skip
        return {"incidents": [{key: incident[key] for key in keys} for incident in self.incidents]}

    def report(self) -> dict[str, Any]:
        """The input of ``report.render_backtest_html``."""
        return {
            "generated_at": iso_utc(datetime.now(UTC)),
            "start_date": self.period.start.isoformat(),
            "end_date": self.period.end.isoformat(),
            "warehouse": self.warehouse,
            "target_per_week": self.target_per_week,
            "rules": self.rules,
        }


def learning_all_period(rule: EventRule, learning: dict[str, Learning] | None) -> bool:
    """A baseline rule without a baseline in any minute of the period."""
    if rule.detector != "baseline":
        return False
    state = (learning or {}).get(rule.rule_id)
    return state is None or state.learned_from is None


def run_backtest(
    settings: Settings,
    events_config: EventsConfig,
    period: Period,
    *,
    say: Callable[[str], None],
    with_series: bool = False,
    target_per_week: float = TARGET_PER_WEEK,
) -> Backtest:
    """Replay the enabled rules over ``period``; ``say`` reports progress (stderr). Raises
    NoDataError when the period holds no event of the enabled rules."""
    if period.end < period.start:
        raise ConfigError(f"--end-date {period.end} is before --start-date {period.start}")
    if not target_per_week > 0:
        raise ConfigError(f"--target-per-week {target_per_week:g}: give a number of incidents above 0")
    started = time.monotonic()
    now = detection_moment(period, settings.now())
    rules = list(events_config.enabled)
    names = events_config.enabled_names  # each event once, for the copy
    rule_ids = {rule.rule_id for rule in rules}
    since = period.begins - timedelta(days=HISTORY_DAYS + WINDOW_DAYS)
    with scratch_dir("backtest") as work:
        replica = replica_settings(settings, work)
        where = replica.dataset if settings.warehouse == "bigquery" else "a private copy"
        say(f"backtest: copying the events of {len(names)} rule(s) since {since:%Y-%m-%d} into {where}")
        copied = copy_history(settings, replica, names, since, period)
        if copied.in_period == 0:
            raise NoDataError(
                f"backtest: no event of the {len(names)} enabled rule(s) from {period.start} to {period.end} (UTC) "
                f"in the warehouse ({copied.events:,} in the {HISTORY_DAYS + WINDOW_DAYS} days before): collect or "
                f"backfill the period first (mixpanel-alerts backfill --start-date {since:%Y-%m-%d} "
                f"--end-date {period.end})"
            )
        say(
            f"backtest: {copied.events:,} events copied ({copied.in_period:,} in the period) in "
            f"{time.monotonic() - started:.1f} s; building the detection models"
        )
        with ticking(say, "dbt build of the detection models"):
            result = build_detection(
                replica, events_config, full_refresh=True, detection_now=now, workdir_base=work / "dbt"
            )
        say(f"backtest: {result.nodes} dbt nodes in {result.seconds:.1f} s; reading the incidents")
        with pipeline_for(replica) as pipeline, pipeline.sql_client() as client:
            incidents = read_incidents(client, period, rule_ids)
            by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for incident in incidents:
                by_rule[incident["rule_id"]].append(incident)
            series: dict[str, list[dict[str, Any]]] = {}
            if with_series:
                series = read_series(client, period, rule_ids, settings.warehouse)
                for rule_id in sorted(rule_ids):
                    read_incident_context(client, rule_id, by_rule.get(rule_id, [])[:LISTED_INCIDENTS])
            learning = read_learning(client, period)
            suggestions = {
                rule.rule_id: threshold_suggestion(client, rule, period, target_per_week)
                for rule in rules
                if rule.detector == "threshold"
            }
    report_rules = [
        {
            "rule_id": rule.rule_id,
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
            "learning_all_period": learning_all_period(rule, learning),
            "weeks": period.weeks,
            "series": series.get(rule.rule_id, []),
            "incidents": by_rule.get(rule.rule_id, []),
            "suggestion": _suggestion_fields(suggestions.get(rule.rule_id)),
        }
        for rule in rules
    ]
    return Backtest(
        period=period,
        detection_now=now,
        warehouse=settings.warehouse,
        events_copied=copied.events,
        seconds=time.monotonic() - started,
        rules=report_rules,
        target_per_week=target_per_week,
    )


def _suggestion_fields(suggestion: Suggestion | None) -> dict[str, Any] | None:
    return None if suggestion is None else dataclasses.asdict(suggestion)


def _count(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.1f}".removesuffix(".0")


def suggestion_line(rule: dict[str, Any], target_per_week: float) -> str | None:
    """A threshold rule's suggested threshold in words; None for a baseline rule."""
    if rule["detector"] != "threshold":
        return None
    target = f"at most {target_per_week:g} incident(s) a week"
    suggestion = rule.get("suggestion")
    if suggestion is None:
        return f"suggested alert_threshold for {target}: none (no window count above {LOWEST_THRESHOLD} in the period)"
    return (
        f"suggested alert_threshold for {target}: {suggestion['alert_threshold']:,} "
        f"({suggestion['incidents']} incident(s) in the period, {suggestion['per_week']:.1f} per week)"
    )


def summary_lines(backtest: Backtest) -> list[str]:
    """Per rule: its detector, its incidents (and per week), the first few, a learning note, the
    suggested threshold of a threshold rule."""
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
        named = f"{rule['event_name']!r}" + (
            f" rule {rule['rule_id']!r}" if rule["rule_id"] != rule["event_name"] else ""
        )
        lines.append(f"  {named} ({detector}): {len(incidents)} incident(s), {per_week:.1f} per week")
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
        suggestion = suggestion_line(rule, backtest.target_per_week)
        if suggestion:
            lines.append(f"    {suggestion}")
    return lines


def all_learning_message(backtest: Backtest) -> str:
    """Why a replay in which every rule still learned judged nothing, and what to do."""
    since = backtest.period.begins - timedelta(days=HISTORY_DAYS)
    return (
        f"backtest: every rule was still learning for the whole of {backtest.period.start}..{backtest.period.end}: "
        "no baseline had enough earlier days of data to judge a window (each rule's note above says how many "
        f"it had). Backfill from {since:%Y-%m-%d} (mixpanel-alerts backfill), or replay a later period"
    )
