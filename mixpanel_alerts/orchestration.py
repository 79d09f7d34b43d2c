"""A run: collect → detect (dbt) → alert, in the warehouse's single-writer turn.

Every command that touches the warehouse does it in ``turn`` (or ``session``, its SQL client): the
one place the single-writer lock is taken and errors are translated. What leaves a turn is a
``ConfigError`` (something the user must set: exit 2) or a ``StepError`` (a step failed after its
retries: exit 1; ``WarehouseError`` and ``WarehouseBusyError`` when the warehouse cannot be used),
each with a message that says what, where and what to do; the CLI prints and maps them. Each step
reports through a ``Reporter`` (lines for the user, download and load progress). Nothing here
parses arguments or exits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from rich.console import Console

from .alerts.deliver import AlertSummary, DryRunOutput, SlackOutput
from .alerts.health import ops_channel
from .alerts.step import AlertRequest, run_alerts
from .core import signals
from .core.config import ConfigError, Redactor, Settings
from .core.credentials import mixpanel_credentials
from .core.duckdb_file import file_problem
from .core.errors import StepError, WarehouseBusyError, WarehouseError, first_line, unwrap
from .core.events_config import EventsConfig
from .core.times import utc
from .core.warehouse import pipeline_for, single_writer, warehouse_ready
from .detection import (
    DetectionError,
    build_detection,
    invoke_dbt,
    learning_lines,
    open_incidents_summary,
    raw_table_exists,
)
from .pipelines.mixpanel.client import ExportError
from .pipelines.mixpanel_pipeline import CollectSummary, ProgressCallback, collect
from .runs import Health, RunHistory, RunRecord, assess, observe, ping_heartbeat

logger = logging.getLogger("mixpanel_alerts")
# a collect longer than this is not covered by the drop settle time: detect as of its start
LONG_COLLECT = timedelta(seconds=60)


__all__ = ["StepError", "WarehouseBusyError", "WarehouseError", "run", "session", "turn"]


class Reporter(Protocol):
    """Where a run tells the user what it does."""

    console: Console  # the terminal, where alerts are shown when Slack is not configured

    def info(self, text: str) -> None: ...

    def note(self, text: str) -> None: ...

    def progress(self) -> ProgressCallback: ...


@dataclasses.dataclass
class DetectOutcome:
    alerts: AlertSummary
    dry_run: bool


def target(settings: Settings) -> str:
    if settings.warehouse == "bigquery":
        return f"bigquery {settings.gcp_project_id}.{settings.dataset}.{settings.table}"
    return f"duckdb {settings.duckdb_path} ({settings.dataset}.{settings.table})"


def translate(error: BaseException, settings: Settings, what: str) -> BaseException:
    """``error`` as the typed error the user reads: typed errors as they are; a problem with the
    DuckDB file (held, damaged, empty, read-only, on a full disk) or the disk as a ``WarehouseError``
    that says what to do; Mixpanel's and dbt's refusals with their own message; anything else as
    ``WHAT failed: Type: message``. Not an ``Exception`` (a signal, an exit): as it is."""
    stop = signals.received()
    if stop is not None:  # a library turned the stop into its own error (dbt's runner, DuckDB): the stop wins
        return error if isinstance(error, signals.Stopped) else signals.Stopped(stop)
    if not isinstance(error, Exception) or isinstance(error, ConfigError | StepError):
        return error
    cause = unwrap(error)
    if isinstance(cause, ConfigError | StepError):
        return cause
    if settings.warehouse == "duckdb":
        problem = file_problem(settings.duckdb_path, cause)
        if problem is not None:
            return problem
    elif isinstance(cause, OSError) and cause.errno is not None:
        return WarehouseError(f"{what} failed: the disk of this machine: {first_line(cause)}")
    if isinstance(cause, ExportError | DetectionError):
        return StepError(str(cause))
    logger.debug("%s failed", what, exc_info=error)
    return StepError(f"{what} failed: {first_line(cause)}")


@contextlib.contextmanager
def translated(settings: Settings, what: str) -> Iterator[None]:
    """Errors raised inside become the typed errors of ``translate``."""
    try:
        yield
    except BaseException as exc:
        typed = translate(exc, settings, what)
        if typed is exc:
            raise
        raise typed from exc


@contextlib.contextmanager
def turn(settings: Settings, what: str) -> Iterator[None]:
    """The warehouse's single-writer turn for ``what`` (a later run waits for it; reentrant), with
    its errors translated: the one place both happen."""
    with translated(settings, what), single_writer(settings):
        warehouse_ready(settings)
        yield


@contextlib.contextmanager
def session(settings: Settings, what: str) -> Iterator[Any]:
    """The warehouse's SQL client (dlt's, on DuckDB or BigQuery), in the turn."""
    with turn(settings, what), pipeline_for(settings) as pipeline, pipeline.sql_client() as client:
        yield client


def collect_step(
    settings: Settings, events_config: EventsConfig, reporter: Reporter, backfill: tuple[date, date] | None = None
) -> CollectSummary:
    """Export the enabled events (or the backfill's days) into the raw table."""
    mixpanel_credentials(settings)  # a ConfigError names what is missing before anything is asked
    what = f"backfill {backfill[0]}..{backfill[1]}" if backfill else "collect"
    reporter.info(f"{what}: {len(events_config.enabled_names)} enabled event(s) into {target(settings)}")
    if not events_config.enabled_names:
        reporter.note(f"{events_config.source} enables no event: nothing is collected")
    with turn(settings, what):
        summary = collect(settings, events_config, progress=reporter.progress(), backfill=backfill)
    reporter.info(summary.line())
    for note in summary.notes():
        reporter.note(note)
    history = summary.history_line()
    if history is not None:
        # history that stopped or waits for the hour's query budget is resumed by the next run
        (reporter.info if summary.history_complete else reporter.note)(history)
    return summary


def detect_step(
    settings: Settings,
    events_config: EventsConfig,
    reporter: Reporter,
    *,
    full_refresh: bool = False,
    dry_run: bool = False,
    detection_now: datetime | None = None,
    record: RunRecord | None = None,
) -> DetectOutcome:
    """dbt build of the detection models as of ``detection_now`` (``DETECTION_NOW``, else the
    current time), then the alert step."""
    reporter.info(f"detect: dbt build of the detection models on {target(settings)}")
    if not events_config.enabled_names:
        reporter.note(f"{events_config.source} enables no event: nothing is monitored")
    with turn(settings, "detect"):
        try:
            # one warehouse session before the build and one after (each costs dlt's configuration)
            with session(settings, "reading the warehouse before the build") as client:
                if not raw_table_exists(settings, client):
                    reporter.note(
                        f"no raw table {settings.dataset}.{settings.table} yet: nothing collected, so nothing to "
                        "detect (run `mixpanel-alerts collect`, or check BIGQUERY_DATASET and BIGQUERY_TABLE)"
                    )
                data_through = newest_collected(settings, record, client)
            as_of = settings.detection_now or detection_now
            result = build_detection(
                settings, events_config, full_refresh=full_refresh, detection_now=as_of, data_through=data_through
            )
            with session(settings, "reading what the build found") as client:
                summary = open_incidents_summary(settings, as_of, client)
                learning = learning_lines(settings, client)
        except DetectionError:
            if record is not None:
                record.detect_result = "failed"
            raise
        if record is not None:
            record.detect_result = "ok"
            record.bytes_processed = result.total("bytes_processed")
            record.bytes_billed = result.total("bytes_billed")
            record.rows_affected = result.total("rows_affected")
            record.dbt_nodes = result.nodes_json()
        cost = f" ({result.describe_cost()})" if result.describe_cost() else ""
        reporter.info(f"detect: {result.nodes} dbt nodes in {result.seconds:.1f} s{cost}; {summary}")
        for line in learning:
            # a baseline rule raises no baseline anomaly until it has enough history
            reporter.info(f"detect: {line}")
        alerts = alert_step(settings, events_config, reporter, dry_run=dry_run, record=record)
        return DetectOutcome(alerts, dry_run)


def newest_collected(settings: Settings, record: RunRecord | None, client: Any) -> datetime | None:
    """The newest Mixpanel processing time collected: this run's collect and the collects before
    (``pipeline_runs``, a small table, read through ``client``); None when no collect recorded one
    (a warehouse filled another way: a detect's own record only repeats what it read). Drops are
    judged only on minutes before it (macros/drops_judged_before.sql)."""
    history = RunHistory(client, settings.warehouse).recent()
    recorded = [record.newest_processed_at if record is not None else None]
    recorded += [run.newest_processed_at for run in history if run.collect_result == "ok"]
    moments = [utc(moment) for moment in recorded if moment is not None]
    return max(moments) if moments else None


def alert_step(
    settings: Settings,
    events_config: EventsConfig,
    reporter: Reporter,
    *,
    dry_run: bool = False,
    record: RunRecord | None = None,
    collect_error: str | None = None,
) -> AlertSummary:
    """One Slack message per new incident (the terminal when Slack is not configured), never twice;
    a ``StepError`` while any stays undelivered (the next run sends it). With a run ``record``, the
    pipeline's health is judged first (runs.py) and the record written as the step ends, in the same
    warehouse session; after a failed collect (``collect_error``) only the pipeline's own alert."""
    output = DryRunOutput(settings, reporter.console) if dry_run else SlackOutput(settings, reporter.console)
    if dry_run:
        reporter.info("alerts (dry run): rendering what would be sent; nothing is sent or recorded")
    with session(settings, "the alert step") as client:
        health = judge_health(client, settings, events_config, record, collect_error) if record else None
        request = AlertRequest(
            settings=settings, rules={rule.rule_id: rule.enabled for rule in events_config.events},
            descriptions={rule.rule_id: rule.description for rule in events_config.events},
            ops_channel=ops_channel(settings, events_config), now=settings.now(), clock=settings.now,
            health=health, incidents_current=collect_error is None, note=reporter.note,
        )  # fmt: skip
        alerts = run_alerts(client, request, output)
        if record is not None and not dry_run:
            finish_record(record, alerts, collect_error, settings.now())
            RunHistory(client, settings.warehouse).append(record)
    if dry_run:
        reporter.info(f"alerts (dry run): {alerts.sent} message(s) would be sent to {output.sender.description}")
        return alerts
    if health is not None:
        (reporter.info if health.healthy else reporter.note)(f"pipeline: {health.summary()}")
    if collect_error is not None:
        return alerts
    reporter.info(alerts.line(output.sender.description))
    if alerts.pending or alerts.failed:
        raise StepError(f"{alerts.pending + alerts.failed} alert(s) not delivered; they stay pending for the next run")
    return alerts


def judge_health(
    client: Any, settings: Settings, events_config: EventsConfig, record: RunRecord, collect_error: str | None
) -> Health:
    """This run's verdict on the pipeline (runs.assess) from the run history and the warehouse; the
    record keeps it."""
    moment = settings.now()
    history = RunHistory(client, settings.warehouse).recent()
    recorded = [record.newest_processed_at, *(run.newest_processed_at for run in history)]
    newest, expected = observe(client, settings, events_config, moment, recorded)
    health = assess(
        now=moment, stale=timedelta(minutes=settings.pipeline_stale_minutes), collect_result=record.collect_result,
        collect_error=collect_error, history=history, newest_processed_at=newest, expected_since_newest=expected,
    )  # fmt: skip
    record.newest_processed_at = newest
    record.collection_lag_seconds = int(health.lag.total_seconds()) if health.lag is not None else None
    record.healthy = health.healthy
    record.health = health.summary()
    return health


def finish_record(record: RunRecord, alerts: AlertSummary, collect_error: str | None, moment: datetime) -> None:
    """The alert step's numbers in the run's record, as the run ends."""
    undelivered = alerts.pending + alerts.failed
    record.alerts_sent, record.alerts_pending = alerts.sent, undelivered
    record.alerts_held, record.alerts_silenced = alerts.held, alerts.silenced
    if collect_error is not None:
        record.error = collect_error
    else:
        record.alert_result = "failed" if undelivered else "ok"
        if undelivered:
            record.error = f"{undelivered} alert(s) not delivered; they stay pending for the next run"
    record.ended_at = moment


def run(settings: Settings, events_config: EventsConfig, reporter: Reporter, *, dry_run: bool = False) -> None:
    """collect, then detect and alert, in one turn on the warehouse (on BigQuery: one lease).

    A failed collect still judges the pipeline's health (its alert goes out once collect has failed
    for PIPELINE_STALE_MINUTES), then the run fails; the run is recorded in ``pipeline_runs`` either
    way, and HEARTBEAT_URL is called when it succeeded."""
    with recorded("run", settings, reporter, dry_run=dry_run) as record, turn(settings, "run"):
        # after a long collect, detection as of the moment it asked Mixpanel: the minutes since
        # are not collected yet, and counted as zeros they would read as a drop (a collect that
        # fetched a new event's history, or waited on Mixpanel's rate limit, can take minutes).
        # A shorter gap lies within the drop settle time (drop_settle_minutes). Pinning costs
        # no parse: the moment reaches dbt as DETECTION_NOW, read only while dbt executes.
        collect_started = datetime.now(UTC)
        try:
            summary = collect_step(settings, events_config, reporter)
        except (WarehouseBusyError, WarehouseError):
            raise  # the warehouse cannot be written: no health to record either
        except StepError as exc:
            record.collect_result, record.error = "failed", redact(str(exc), settings)
            if not dry_run:
                with contextlib.suppress(StepError):
                    alert_step(settings, events_config, reporter, record=record, collect_error=record.error)
            raise
        record.collect_result, record.events_loaded = "ok", summary.stats.parse.new_events
        record.newest_processed_at = summary.newest_processed_at(datetime.now(UTC))
        as_of = collect_started if datetime.now(UTC) - collect_started > LONG_COLLECT else None
        detect_step(settings, events_config, reporter, dry_run=dry_run, detection_now=as_of, record=record)


@contextlib.contextmanager
def recorded(
    command: str, settings: Settings, reporter: Reporter, *, dry_run: bool = False, heartbeat: bool = True
) -> Iterator[RunRecord]:
    """The command's row in ``pipeline_runs``, written when it ends (however it ends; a dry run
    writes none), and the heartbeat after a success (``run`` and ``detect``, which alert)."""
    record = RunRecord.start(command, settings.now())
    try:
        yield record
    except (WarehouseBusyError, WarehouseError):
        record.written = True  # the warehouse cannot be written: the row cannot be either
        raise
    except (StepError, ConfigError) as exc:
        record.error = redact(str(exc), settings)
        raise
    except signals.Stopped as exc:  # nothing failed: the run was asked to stop
        for step in ("collect_result", "detect_result", "alert_result"):
            if getattr(record, step) is None and step == _running_step(record):
                setattr(record, step, "stopped")
        record.error = redact(str(exc), settings)
        raise
    except BaseException as exc:
        record.error = redact(f"{type(exc).__name__}: {exc}", settings)
        raise
    finally:
        if not dry_run and not record.written:  # the alert step did not get to write it
            record.ended_at = settings.now()
            write_record(settings, record, reporter)
    if settings.heartbeat_url and heartbeat and not dry_run:
        problem = ping_heartbeat(settings.heartbeat_url)
        if problem is None:
            reporter.info("heartbeat: HEARTBEAT_URL called")
        else:
            reporter.note(f"heartbeat: HEARTBEAT_URL did not answer ({problem}); the run itself succeeded")


def _running_step(record: RunRecord) -> str | None:
    """The step a stopped run was in: the first it had not finished (a detect-only record has no
    collect)."""
    steps: tuple[str, ...] = ("collect_result", "detect_result", "alert_result")
    if record.command == "detect":
        steps = steps[1:]
    if record.command == "collect":
        steps = steps[:1]
    return next((step for step in steps if getattr(record, step) is None), None)


def redact(text: str, settings: Settings) -> str:
    return Redactor(settings.secrets())(text)


def write_record(settings: Settings, record: RunRecord, reporter: Reporter) -> None:
    """Append the run's row; a failure to write it is said, and does not change the run's outcome."""
    try:
        with session(settings, "recording this run") as client:
            RunHistory(client, settings.warehouse).append(record)
    except StepError as exc:  # the run's own outcome is what the user needs; this one is a note
        reporter.note(f"could not record this run in pipeline_runs: {exc}")


def dbt_command(settings: Settings, events_config: EventsConfig, args: list[str]) -> None:
    """``dbt ARGS`` against the configured warehouse with the rules in place, in the run's turn."""
    with turn(settings, f"dbt {' '.join(args[:1])}"):
        if not invoke_dbt(settings, events_config, args):
            raise StepError(f"dbt {' '.join(args[:1])} failed: see dbt's output above")
