"""``mixpanel-alerts``: collect Mixpanel events into a warehouse and watch them.

Exit codes: 0 done; 1 a step failed after its retries; 2 bad configuration or usage.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from .duckdb_file import DuckDBFileBusyError, busy_message, is_lock_conflict
from .events_config import EventsConfig, load_events_config
from .scratch import clean_stale
from .settings import ConfigError, Settings, load_settings, require_mixpanel_credentials

app = typer.Typer(
    help=__doc__,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console(stderr=True, highlight=False, soft_wrap=True)


class Redactor:
    """Replaces every known secret in text before it is shown."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = sorted((secret for secret in secrets if len(secret) >= 4), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def fail(message: str, code: int, redact: Callable[[str], str] = str) -> NoReturn:
    console.print(f"[bold red]error:[/] {redact(message)}", markup=True)
    raise typer.Exit(code)


def _settings() -> Settings:
    from .secrets import resolve_secrets

    try:
        return resolve_secrets(load_settings())
    except ConfigError as exc:
        fail(str(exc), 2)


def _events_config(settings: Settings) -> EventsConfig:
    try:
        return load_events_config(settings)
    except ConfigError as exc:
        fail(str(exc), 2)


class ProgressPrinter:
    """Progress lines on stderr: bytes and rate while downloading, events while loading."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, stage: str, numbers: dict[str, float]) -> None:
        now = time.monotonic()
        if stage == "load" and now - self.last < 1.0:
            return
        self.last = now
        elapsed = now - self.started
        if stage == "download":
            megabytes = numbers["bytes"] / 1e6
            rate = megabytes / numbers["seconds"] if numbers["seconds"] else 0.0
            verb = "downloaded" if numbers.get("done") else "downloading"
            console.print(f"  {verb} {megabytes:,.1f} MB ({rate:,.1f} MB/s)")
        elif stage == "parse":
            console.print(f"  parsed {int(numbers['lines']):,} lines, {int(numbers['rejected']):,} rejected")
        elif stage == "load":
            rate = numbers["events"] / elapsed if elapsed else 0.0
            console.print(f"  loading {int(numbers['events']):,} events ({rate:,.0f} events/s)")
        elif stage == "insert":
            console.print(f"  inserting {int(numbers['events']):,} new events (DuckDB reads the export directly)")


def _unwrap(exc: BaseException) -> BaseException:
    """dlt wraps step errors; find the one a user should read."""
    seen = exc
    while True:
        inner = getattr(seen, "exception", None) or seen.__cause__
        if inner is None or inner is seen:
            return seen
        seen = inner


def run_collect(settings: Settings, events_config: EventsConfig, backfill: tuple[date, date] | None = None) -> None:
    from pipelines.mixpanel.helpers import ExportError
    from pipelines.mixpanel_pipeline import collect

    redact = Redactor(settings.secrets())
    try:
        require_mixpanel_credentials(settings)
        if not settings.project_id:
            raise ConfigError("MIXPANEL_PROJECT_ID is not set: it is sent with every export request")
    except ConfigError as exc:
        fail(str(exc), 2)
    names = events_config.enabled_names
    what = f"backfill {backfill[0]}..{backfill[1]}" if backfill else "collect"
    console.print(f"{what}: {len(names)} enabled event(s) into {_target(settings)}")
    try:
        summary = collect(settings, events_config, progress=ProgressPrinter(), backfill=backfill)
    except Exception as exc:
        cause = _unwrap(exc)
        if isinstance(cause, ConfigError):
            fail(str(cause), 2, redact)
        if isinstance(cause, ExportError | DuckDBFileBusyError):
            fail(str(cause), 1, redact)
        if is_lock_conflict(cause):
            fail(busy_message(settings.duckdb_path, cause), 1, redact)
        logging.getLogger("mixpanel_alerts").debug("collect failed", exc_info=True)
        fail(f"{what} failed: {type(cause).__name__}: {cause}", 1, redact)
    console.print(summary.line())


def _target(settings: Settings) -> str:
    if settings.warehouse == "bigquery":
        return f"bigquery {settings.gcp_project_id}.{settings.dataset}.{settings.table}"
    return f"duckdb {settings.duckdb_path} ({settings.dataset}.{settings.table})"


@app.command()
def collect() -> None:
    """Extract/load only: export the enabled events from Mixpanel into the raw table.

    Asks for the days that can still receive events (MIXPANEL_LATE_ARRIVAL_DAYS), filtered on
    Mixpanel's processing time after the last run's cursor; loads only events not stored yet.
    Shows progress (MB, events/s) and ends with a summary: loaded, duplicates skipped, rejected.
    """
    settings = _settings()
    run_collect(settings, _events_config(settings))


@app.command()
def backfill(
    start_date: Annotated[str, typer.Option("--start-date", help="first day to export, YYYY-MM-DD")],
    end_date: Annotated[str, typer.Option("--end-date", help="last day to export, YYYY-MM-DD (inclusive)")],
) -> None:
    """Historical export in rate-limit-safe slices (one day per request); never alerts.

    Does not move the incremental cursor; events already stored are skipped.
    """
    try:
        start, end = date.fromisoformat(start_date), date.fromisoformat(end_date)
    except ValueError:
        fail("--start-date and --end-date must be dates in YYYY-MM-DD format", 2)
    if start > end:
        fail(f"--start-date {start} is after --end-date {end}", 2)
    settings = _settings()
    run_collect(settings, _events_config(settings), backfill=(start, end))


def run_detect(
    settings: Settings, events_config: EventsConfig, *, full_refresh: bool = False, dry_run: bool = False
) -> None:
    redact = Redactor(settings.secrets())
    console.print(f"detect: dbt build of the detection models on {_target(settings)}")
    with _single_writer(settings, redact):
        _detect_and_alert(settings, events_config, full_refresh=full_refresh, dry_run=dry_run, redact=redact)


def _single_writer(settings: Settings, redact: Callable[[str], str]) -> contextlib.ExitStack:
    """The warehouse's single-writer lock (a later run waits), taken now; a failure to take it
    ends the command with a clear message."""
    from pipelines.mixpanel_pipeline import single_writer

    stack = contextlib.ExitStack()
    try:
        stack.enter_context(single_writer(settings))
    except DuckDBFileBusyError as exc:
        fail(str(exc), 1, redact)
    except Exception as exc:
        fail(f"could not take the single-writer lock: {type(_unwrap(exc)).__name__}: {_unwrap(exc)}", 1, redact)
    return stack


def _detect_and_alert(
    settings: Settings, events_config: EventsConfig, *, full_refresh: bool, dry_run: bool, redact: Redactor
) -> None:
    from alerts.step import choose_sender, run_alerts
    from pipelines.mixpanel_pipeline import warehouse_ready

    from .detection import DetectionError, build_detection, open_incidents_summary, raw_table_exists

    try:
        warehouse_ready(settings)
        if not raw_table_exists(settings):
            console.print(
                f"[yellow]note:[/] no raw table {settings.dataset}.{settings.table} yet: nothing collected, so nothing "
                "to detect (run `mixpanel-alerts collect`, or check BIGQUERY_DATASET and BIGQUERY_TABLE)",
                markup=True,
            )
        result = build_detection(settings, events_config, full_refresh=full_refresh)
        summary = open_incidents_summary(settings)
    except (DetectionError, DuckDBFileBusyError) as exc:
        if is_lock_conflict(exc):
            fail(busy_message(settings.duckdb_path, exc), 1, redact)
        fail(str(exc), 1, redact)
    console.print(f"detect: {result.nodes} dbt nodes in {result.seconds:.1f} s; {summary}")
    sender = choose_sender(settings, console)
    if dry_run:
        console.print("alerts (dry run): rendering what would be sent; nothing is sent or recorded")
    try:
        warehouse_ready(settings)
        descriptions = {rule.name: rule.description for rule in events_config.events}
        alerts = run_alerts(settings, console=console, dry_run=dry_run, sender=sender, descriptions=descriptions)
    except DuckDBFileBusyError as exc:
        fail(str(exc), 1, redact)
    except Exception as exc:
        if is_lock_conflict(_unwrap(exc)):
            fail(busy_message(settings.duckdb_path, _unwrap(exc)), 1, redact)
        fail(f"alert step failed: {type(_unwrap(exc)).__name__}: {_unwrap(exc)}", 1, redact)
    if dry_run:
        console.print(f"alerts (dry run): {alerts.rendered} message(s) would be sent to {sender.description}")
        return
    console.print(redact(alerts.line(sender.description)))
    if alerts.pending or alerts.failed:
        fail(f"{alerts.pending + alerts.failed} alert(s) not delivered; they stay pending for the next run", 1, redact)


DRY_RUN = typer.Option("--dry-run", help="render the alerts that would be sent; send and record nothing")


@app.command()
def detect(
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="rebuild every minute of history, not only the lookback")
    ] = False,
    dry_run: Annotated[bool, DRY_RUN] = False,
) -> None:
    """dbt build of the detection models (rules seed, per-minute counts, windows, anomalies,
    incidents) on the warehouse chosen by WAREHOUSE, then the alert step: one Slack message per
    new incident (the terminal when Slack is not configured), never twice.

    Incremental runs recount the last MIXPANEL_LATE_ARRIVAL_DAYS + 1 days of minutes, so late
    events recount their minute while each run's work stays proportional to recent data.
    """
    settings = _settings()
    run_detect(settings, _events_config(settings), full_refresh=full_refresh, dry_run=dry_run)


@app.command()
def run(dry_run: Annotated[bool, DRY_RUN] = False) -> None:
    """collect, then detect: the whole pipeline once, for cron or CI."""
    settings = _settings()
    events_config = _events_config(settings)
    # one turn on the warehouse for both steps (on BigQuery: one lease, not two)
    with _single_writer(settings, Redactor(settings.secrets())):
        run_collect(settings, events_config)
        run_detect(settings, events_config, dry_run=dry_run)


@app.command()
def demo() -> None:
    """The whole pipeline against the built-in Mixpanel simulator, no credentials needed.

    Serves two hours of realistic traffic with an injected error spike, collects it into
    data/demo.duckdb, detects, and shows the alert in the terminal (and in Slack if
    SLACK_WEBHOOK_URL or SLACK_BOT_TOKEN is set).
    """
    from .demo import run_demo

    run_demo(console, run_collect, run_detect)


@app.command()
def check() -> None:
    """Validate the configuration and reach each configured service; say what is wrong.

    Exit code 2 names the setting to fix; 1 means a service could not be reached.
    """
    from pipelines.mixpanel.settings import LEGACY_SECRET_RETIREMENT

    from .checks import run_checks

    settings = _settings()
    events_config = _events_config(settings)
    console.print(
        f"events configuration: {events_config.source}: {len(events_config.enabled)} enabled, "
        f"{len(events_config.events) - len(events_config.enabled)} disabled"
    )
    if settings.uses_legacy_secret:
        console.print(
            f"[yellow]warning:[/] MIXPANEL_API_SECRET is a legacy project secret; Mixpanel retires it for the "
            f"export API on {LEGACY_SECRET_RETIREMENT}. Create a service account and set "
            "MIXPANEL_SERVICE_ACCOUNT_USERNAME and MIXPANEL_SERVICE_ACCOUNT_SECRET.",
            markup=True,
        )
    code = run_checks(settings, events_config, console, Redactor(settings.secrets()))
    raise typer.Exit(code)


@app.callback()
def _start() -> None:
    """Before any command: remove the scratch folders of runs that were killed."""
    clean_stale()


QUERY_SQL = typer.Argument(help="one SQL statement; tables are in the dataset's schema, e.g. mixpanel_data.incidents")
QUERY_FORMAT = typer.Option("--format", help="table, csv or json (one object per line)")


@app.command(name="query")
def query_command(
    sql: Annotated[str, QUERY_SQL],
    output: Annotated[str, QUERY_FORMAT] = "table",
) -> None:
    """Read the DuckDB warehouse safely while cron runs write it: a read-only query between runs.

    DuckDB lets a run write the file only while no other process has it open, so a notebook or the
    DuckDB CLI that keeps it open makes runs wait and then fail. This takes the same turn as a run
    (it waits for a running one, and a run waits for it), opens the file read-only for this query
    alone, prints the rows and lets go. On BigQuery, query the dataset directly.
    """
    import csv
    import json

    import duckdb

    from pipelines.mixpanel_pipeline import single_writer

    settings = _settings()
    if output not in ("table", "csv", "json"):
        fail(f"--format {output!r}: use table, csv or json", 2)
    if settings.warehouse != "duckdb":
        fail("query reads the DuckDB file (WAREHOUSE=duckdb); on BigQuery, query the dataset directly", 2)
    if not settings.duckdb_path.exists():
        fail(f"DUCKDB_PATH={settings.duckdb_path} does not exist yet: run `mixpanel-alerts collect` first", 2)
    try:
        with single_writer(settings), duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
            cursor = con.execute(sql)
            columns = [column[0] for column in cursor.description or []]
            rows = cursor.fetchall()
    except DuckDBFileBusyError as exc:
        fail(str(exc), 1)
    except duckdb.Error as exc:
        fail(f"query failed: {exc}", 2)
    if output == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    elif output == "json":
        for row in rows:
            print(json.dumps(dict(zip(columns, row, strict=True)), default=str, ensure_ascii=False))
    else:
        from rich.table import Table

        table = Table(*columns, show_lines=False)
        for row in rows:
            table.add_row(*("" if value is None else str(value) for value in row))
        Console(highlight=False).print(table)
        console.print(f"{len(rows)} row(s)")


@app.command()
def snapshot(
    target: Annotated[
        Path, typer.Argument(help="the copy to write, e.g. /tmp/analysis.duckdb (replaced if it exists)")
    ],
) -> None:
    """Copy the DuckDB warehouse to another file, between runs, for a long analysis session.

    A notebook may keep the copy open for as long as it likes: runs never see it. The copy is
    consistent (taken in the same turn as a run, like `query`) and complete (every schema and table).
    """
    import duckdb

    from pipelines.mixpanel_pipeline import single_writer

    settings = _settings()
    if settings.warehouse != "duckdb":
        fail("snapshot copies the DuckDB file (WAREHOUSE=duckdb)", 2)
    if not settings.duckdb_path.exists():
        fail(f"DUCKDB_PATH={settings.duckdb_path} does not exist yet: run `mixpanel-alerts collect` first", 2)
    target = target.expanduser().resolve()
    if target == settings.duckdb_path.resolve():
        fail("the snapshot must be another file than DUCKDB_PATH", 2)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    source, copy = (str(path).replace("'", "''") for path in (settings.duckdb_path, partial))
    started = time.monotonic()
    try:
        with single_writer(settings), duckdb.connect() as con:
            con.execute(f"attach '{source}' as warehouse (read_only); attach '{copy}' as snapshot")
            con.execute("copy from database warehouse to snapshot")
    except DuckDBFileBusyError as exc:
        partial.unlink(missing_ok=True)
        fail(str(exc), 1)
    except duckdb.Error as exc:
        partial.unlink(missing_ok=True)
        fail(f"snapshot failed: {exc}", 1)
    partial.replace(target)
    size = target.stat().st_size / 1e6
    console.print(f"snapshot: {target} ({size:,.1f} MB) in {time.monotonic() - started:.1f} s")


def main(argv: list[str] | None = None) -> Any:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # dlt notes that Arrow and dlt column hints differ (the json hint on `properties`): expected
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    # a scheduled job does not phone home: dlt's and dbt's anonymous usage telemetry stay off
    # unless these variables turn them on (see "Privacy" in the README)
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
    return app(argv)  # click exits with 2 on usage errors, as the contract asks
