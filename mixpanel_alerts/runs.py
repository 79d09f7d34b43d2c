"""Run history (``pipeline_runs``), the pipeline's own health, and the heartbeat.

Each `run`, `collect` and `detect` writes one row to ``pipeline_runs``: when it started and ended,
each step's result, the events loaded, how far behind Mixpanel the data is, the alerts sent and
held, and any error. ``status`` reads it.

The pipeline is unhealthy when, for longer than PIPELINE_STALE_MINUTES,

- collect has not succeeded (it fails run after run), or
- the newest event collected was processed that long ago while the rules expect traffic (a rule
  with a minimum, or a baseline that expects events): Mixpanel's data stopped arriving.

An unhealthy pipeline raises one "pipeline" alert to OPS_ALERT_CHANNEL, with a resolved notice
when it recovers, and holds drop alerts meanwhile: a drop then is likely the pipeline's own fault.
HEARTBEAT_URL is called after every successful run, so an outside monitor notices when runs stop.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import requests

from .core.config import Settings
from .core.events_config import EventsConfig
from .core.state_table import StateTable
from .core.times import utc
from .core.warehouse import undefined_relation_errors

logger = logging.getLogger("mixpanel_alerts")

RUNS_TABLE = "pipeline_runs"
COLUMNS = {
    "run_id": ("varchar", "STRING"),
    "command": ("varchar", "STRING"),  # run, collect or detect
    "started_at": ("timestamptz", "TIMESTAMP"),
    "ended_at": ("timestamptz", "TIMESTAMP"),
    # each step: ok, failed, or null when the command did not run it
    "collect_result": ("varchar", "STRING"),
    "detect_result": ("varchar", "STRING"),
    "alert_result": ("varchar", "STRING"),
    "events_loaded": ("bigint", "INT64"),
    # Mixpanel's processing time of the newest event collected, and how long before the run's end
    "newest_processed_at": ("timestamptz", "TIMESTAMP"),
    "collection_lag_seconds": ("bigint", "INT64"),
    "alerts_sent": ("bigint", "INT64"),
    "alerts_held": ("bigint", "INT64"),
    "alerts_pending": ("bigint", "INT64"),
    "alerts_silenced": ("bigint", "INT64"),
    "healthy": ("boolean", "BOOL"),
    "health": ("varchar", "STRING"),
    "error": ("varchar", "STRING"),
    # the detect step's dbt build, as its adapter reported it (BigQuery: bytes and rows; DuckDB:
    # none, see detection.NodeCost): the run's totals, and each node's as JSON
    "bytes_processed": ("bigint", "INT64"),
    "bytes_billed": ("bigint", "INT64"),
    "rows_affected": ("bigint", "INT64"),
    "dbt_nodes": ("varchar", "STRING"),
}
HEARTBEAT_TIMEOUT_SECONDS = 10
HEARTBEAT_ATTEMPTS = 3


@dataclasses.dataclass
class RunRecord:
    run_id: str
    command: str
    started_at: datetime
    ended_at: datetime | None = None
    collect_result: str | None = None
    detect_result: str | None = None
    alert_result: str | None = None
    events_loaded: int | None = None
    newest_processed_at: datetime | None = None
    collection_lag_seconds: int | None = None
    alerts_sent: int | None = None
    alerts_held: int | None = None
    alerts_pending: int | None = None
    alerts_silenced: int | None = None
    healthy: bool | None = None
    health: str | None = None
    error: str | None = None
    bytes_processed: int | None = None
    bytes_billed: int | None = None
    rows_affected: int | None = None
    dbt_nodes: str | None = None
    # not a column: whether the row is in the table already (the alert step writes it as it ends)
    written: bool = False

    def __post_init__(self) -> None:
        for field in ("started_at", "ended_at", "newest_processed_at"):
            setattr(self, field, utc(getattr(self, field)))

    @classmethod
    def start(cls, command: str, now: datetime) -> RunRecord:
        return cls(run_id=f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}", command=command, started_at=now)

    def row(self) -> dict[str, Any]:
        """The record as its ``pipeline_runs`` row: its columns only."""
        values = dataclasses.asdict(self)
        return {name: values[name] for name in COLUMNS}

    @property
    def result(self) -> str:
        steps = (self.collect_result, self.detect_result, self.alert_result)
        return "failed" if "failed" in steps else "ok"


class RunHistory:
    def __init__(self, client: Any, warehouse: str) -> None:
        self.store = StateTable(client, warehouse, RUNS_TABLE, COLUMNS)

    def append(self, record: RunRecord) -> None:
        """Write the run's row (the table made first if need be); the record knows it is written."""
        self.store.ensure()
        self.store.insert(record.row())
        record.written = True

    def recent(self, limit: int = 200) -> list[RunRecord]:
        """The newest runs first (a failing streak longer than ``limit`` runs is stale whatever its start)."""
        return [RunRecord(**row) for row in self.store.rows(order_by="started_at desc", limit=limit)]


@dataclasses.dataclass
class Health:
    """The pipeline's health as of a run. ``problems``: what is wrong now (none: healthy); ``since``:
    when it went wrong; ``pages``: it has been wrong for PIPELINE_STALE_MINUTES, so the pipeline
    alert goes out (one blip does not page)."""

    problems: list[str]
    since: datetime | None = None
    newest_processed_at: datetime | None = None
    lag: timedelta | None = None
    pages: bool = False

    @property
    def healthy(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.problems:
            return "; ".join(self.problems)
        return "ok" if self.lag is None else f"ok, data {minutes(self.lag)} behind"


def minutes(delta: timedelta) -> str:
    total = max(int(delta.total_seconds() // 60), 0)
    if total < 120:
        return f"{total} min"
    if total >= 48 * 60:
        return f"{total // 1440} days"
    return f"{total // 60} h" + (f" {total % 60} min" if total % 60 else "")


# data older than this is "not advancing" only if the enabled events' own history expected at least
# EXPECTED_EVENTS events since (P(no event | Poisson 20) is about 2e-9)
FRESH = timedelta(minutes=5)
EXPECTED_EVENTS = 20
# what to expect at this time of day: the median of the same span on each of the last
# EXPECTATION_DAYS days that were collected (at least MIN_HISTORY_DAYS of them), and no more than the
# same day a week ago saw (a quiet weekend then makes no Saturday stall look like an outage)
EXPECTATION_DAYS = 7
MIN_HISTORY_DAYS = 3


def assess(
    *,
    now: datetime,
    stale: timedelta,
    collect_result: str | None,
    collect_error: str | None,
    history: Sequence[RunRecord],
    newest_processed_at: datetime | None,
    expected_since_newest: float | None,
) -> Health:
    """The pipeline's health as of ``now``, from this run's collect (None: not run), the earlier
    runs (newest first), the newest event collected, and how many events the enabled rules' history
    expected since it (None: not known)."""
    problems: list[str] = []
    since: list[datetime] = []
    collects = [run for run in history if run.collect_result is not None]
    if collect_result == "failed" or (collect_result is None and collects and collects[0].collect_result == "failed"):
        last_ok = next((run for run in collects if run.collect_result == "ok"), None)
        failures = [run for run in collects if last_ok is None or run.started_at > last_ok.started_at]
        failures = [run for run in failures if run.collect_result == "failed"]
        failing_since = min([run.started_at for run in failures] + ([now] if collect_result == "failed" else []))
        count = len(failures) + (collect_result == "failed")
        error = collect_error or next((run.error for run in failures if run.error), None) or "see the run's output"
        problems.append(f"collect has failed in every run since {failing_since:%Y-%m-%d %H:%M} UTC "
                        f"({count} run{'s' if count != 1 else ''}): {error}")  # fmt: skip
        since.append(failing_since)
    lag = now - newest_processed_at if newest_processed_at is not None else None
    if (
        lag is not None
        and newest_processed_at is not None
        and lag >= FRESH
        and expected_since_newest is not None
        and expected_since_newest >= EXPECTED_EVENTS
    ):
        problems.append(
            f"the data stopped advancing: the newest event collected was processed by Mixpanel at "
            f"{newest_processed_at:%Y-%m-%d %H:%M} UTC ({minutes(lag)} ago), while about "
            f"{expected_since_newest:,.0f} events arrive in that time of day (the last {EXPECTATION_DAYS} days)"
        )
        since.append(newest_processed_at)
    began = min(since) if since else None
    return Health(
        problems=problems, since=began, newest_processed_at=newest_processed_at, lag=lag,
        pages=began is not None and now - began >= stale,
    )  # fmt: skip


def observe(
    client: Any, settings: Settings, events_config: EventsConfig, now: datetime, recorded: Sequence[datetime | None]
) -> tuple[datetime | None, float | None]:
    """Mixpanel's processing time of the newest event of the enabled rules, and, when it is not
    fresh, how many events the rules' history expected since it (None when too few days are
    collected to say). The newest processing time comes from what the collects recorded
    (``recorded``: this run's collect and the runs before), not from the raw table; only a warehouse
    whose runs recorded none (an earlier version's) reads it, from the late-arrival days' partitions."""
    names = list(events_config.enabled_names)
    if not names:
        return None, None
    known = [utc(moment) for moment in recorded if moment is not None]
    newest = max(known) if known else newest_in_raw(client, settings, names, now)
    if newest is None or now - newest < FRESH:
        return newest, None  # fresh: what the history expected does not matter (and costs a read)
    return newest, expected_events(client, settings, names, newest, now)


def newest_in_raw(client: Any, settings: Settings, names: list[str], now: datetime) -> datetime | None:
    """The newest processing time among the raw events of ``names`` of the late-arrival days."""
    raw = client.make_qualified_table_name(settings.table)
    marks = ", ".join(["%s"] * len(names))
    since = now - timedelta(days=settings.late_arrival_days + 1)
    try:
        rows = client.execute_sql(
            f"select max(coalesce(mp_processing_time, event_timestamp)) from {raw} "
            f"where event_timestamp >= %s and event_name in ({marks})",
            since,
            *names,
        )
    except undefined_relation_errors():  # no raw table yet: nothing collected, nothing to judge
        return None
    return utc(rows[0][0]) if rows and rows[0][0] is not None else None


def expected_events(client: Any, settings: Settings, names: list[str], start: datetime, end: datetime) -> float | None:
    """How many events the ``names`` usually have in (start, end]: the median over the last
    EXPECTATION_DAYS days (the same span shifted back a day at a time) whose minutes were counted,
    capped by what the same day a week ago had; None for fewer than MIN_HISTORY_DAYS such days (or
    no detection models yet)."""
    counts = client.make_qualified_table_name("int_event_counts_per_minute")
    marks = ", ".join(["%s"] * len(names))
    columns, parameters = [], []
    for days in range(1, EXPECTATION_DAYS + 1):
        shift = timedelta(days=days)
        columns.append("sum(case when minute_at > %s and minute_at <= %s then event_count end)")
        parameters += [sql_time(start - shift, settings.warehouse), sql_time(end - shift, settings.warehouse)]
    try:
        rows = client.execute_sql(
            f"select {', '.join(columns)} from {counts} where event_name in ({marks}) "
            "and minute_at > %s and minute_at <= %s",
            *parameters, *names,
            sql_time(start - timedelta(days=EXPECTATION_DAYS), settings.warehouse),
            sql_time(end - timedelta(days=1), settings.warehouse),
        )  # fmt: skip
    except undefined_relation_errors():  # no detection models yet: no expectation
        return None
    return typical([None if value is None else float(value) for value in (rows[0] if rows else [])])


def typical(day_counts: Sequence[float | None]) -> float | None:
    """``day_counts``: the span's count 1, 2, … EXPECTATION_DAYS days back (None: not collected)."""
    known = sorted(count for count in day_counts if count is not None)
    if len(known) < MIN_HISTORY_DAYS:
        return None
    middle = len(known) // 2
    median = known[middle] if len(known) % 2 else (known[middle - 1] + known[middle]) / 2
    week_ago = day_counts[EXPECTATION_DAYS - 1] if len(day_counts) >= EXPECTATION_DAYS else None
    return median if week_ago is None else min(median, week_ago)


def sql_time(value: datetime, warehouse: str) -> datetime:
    """A moment as a query parameter: BigQuery types an aware one as TIMESTAMP (a naive one would be
    a DATETIME, which it does not compare with TIMESTAMP); DuckDB's detection tables hold naive UTC."""
    value = utc(value)
    return value if warehouse == "bigquery" else value.replace(tzinfo=None)


def ping_heartbeat(url: str) -> str | None:
    """GET the heartbeat URL (a few tries); None when it answered 2xx, else why not. Never raises:
    a monitor that cannot be reached must not fail the run it watches."""
    error = "not tried"
    for _ in range(HEARTBEAT_ATTEMPTS):
        try:
            response = requests.get(url, timeout=HEARTBEAT_TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            error = type(exc).__name__
            continue
        if 200 <= response.status_code < 300:
            return None
        error = f"HTTP {response.status_code}"
        if response.status_code < 500:
            break
    return error
