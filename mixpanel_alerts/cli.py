"""mixpanel-alerts: collect Mixpanel events into a warehouse and watch them.

Exit codes: 0 done; 1 a step failed after its retries; 2 bad configuration or usage; 130/143
stopped by SIGINT/SIGTERM. A failure is said in at most three lines (what, where, what to do);
--debug (or LOG_LEVEL=debug) adds the traceback.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import duckdb
import typer
from rich.console import Console
from rich.markup import escape

from . import orchestration
from .alerts.silences import parse_duration
from .backtest import TARGET_PER_WEEK, Backtest, Period, all_learning_message, run_backtest, summary_lines
from .checks import run_checks
from .core import logs
from .core.config import ConfigError, Redactor, Settings, load_dotenv, load_settings
from .core.errors import first_line
from .core.events_config import EventsConfig, load_events_config, rule_label
from .core.scratch import clean_stale
from .core.secrets import resolve_secrets
from .core.times import utc
from .core.warehouse import query_duckdb, snapshot_duckdb
from .demo import run_demo
from .operations import Status, add_silence, ago, end_silences, list_silences, read_status
from .orchestration import StepError
from .pipelines.mixpanel.settings import LEGACY_SECRET_RETIREMENT
from .runs import minutes

app = typer.Typer(
    help=__doc__,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def fail(message: str, code: int, redact: Callable[[str], str] = str) -> NoReturn:
    if logs.is_json():
        print(logs.json_line(redact(message), "ERROR"), file=sys.stderr, flush=True)
    else:
        console.print(f"{logs.timestamp()} [bold red]error:[/] {escape(redact(message))}", markup=True)
    raise typer.Exit(code)


def say(text: str) -> None:
    """A line of a command's own output (not a run's progress), as LOG_FORMAT wants it."""
    if logs.is_json():
        print(logs.json_line(text), file=sys.stderr, flush=True)
    else:
        console.print(text, markup=False)


class ConsoleReporter:
    """What a run tells the user, on stderr: lines, notes, and download/load progress."""

    def __init__(self, redact: Callable[[str], str] = str) -> None:
        self.console = console
        self.redact = redact
        self.started = time.monotonic()
        self.last = 0.0

    def info(self, text: str) -> None:
        if not text:
            self.console.print()
            return
        if logs.is_json():
            print(logs.json_line(self.redact(text)), file=sys.stderr, flush=True)
            return
        # text from configuration and data (event names like "promo [/sale]") is never markup
        self.console.print(f"{logs.timestamp()} {self.redact(text)}", markup=False)

    def note(self, text: str) -> None:
        if logs.is_json():
            print(logs.json_line(self.redact(text), "WARNING"), file=sys.stderr, flush=True)
            return
        self.console.print(f"{logs.timestamp()} [yellow]note:[/] {escape(self.redact(text))}", markup=True)

    def progress(self) -> Callable[[str, dict[str, float]], None]:
        return self._progress

    def _progress(self, stage: str, numbers: dict[str, float]) -> None:
        now = time.monotonic()
        if stage == "load" and now - self.last < 1.0:
            return
        self.last = now
        if stage == "download":
            megabytes = numbers["bytes"] / 1e6
            rate = megabytes / numbers["seconds"] if numbers["seconds"] else 0.0
            verb = "downloaded" if numbers.get("done") else "downloading"
            self.info(f"  {verb} {megabytes:,.1f} MB ({rate:,.1f} MB/s)")
        elif stage == "parse":
            self.info(f"  parsed {int(numbers['lines']):,} lines, {int(numbers['rejected']):,} rejected")
        elif stage == "load":
            elapsed = now - self.started
            rate = numbers["events"] / elapsed if elapsed else 0.0
            self.info(f"  loading {int(numbers['events']):,} events ({rate:,.0f} events/s)")
        elif stage == "day":
            day = date.fromordinal(int(numbers["day"]))
            self.info(f"backfill: day {day} ({int(numbers['number'])} of {int(numbers['days'])})")
        elif stage == "insert":
            self.info(f"  inserting {int(numbers['events']):,} new events (DuckDB reads the export directly)")


@contextlib.contextmanager
def exit_codes(settings: Settings | None = None) -> Iterator[Callable[[str], str]]:
    """The one edge where errors become what the user reads and an exit code, with secrets
    redacted: 2 for what the user must set (``ConfigError``), 1 for a step that failed after its
    retries (``StepError``), 1 for anything else, said in one line that asks for ``--debug``. With
    ``--debug`` (or LOG_LEVEL=debug) the traceback comes first."""
    redact = Redactor(settings.secrets()) if settings else Redactor([])
    try:
        yield redact
    except ConfigError as exc:
        _traceback(redact)
        fail(str(exc), 2, redact)
    except StepError as exc:
        _traceback(redact)
        fail(str(exc), 1, redact)
    except Exception as exc:  # the edge of every command: a bug's one line, not its traceback
        _traceback(redact)
        fail(f"unexpected error: {first_line(exc)}. Run again with --debug for the traceback, and report it", 1, redact)


def _traceback(redact: Callable[[str], str]) -> None:
    if logs.is_debug():
        print(redact(traceback.format_exc()), file=sys.stderr, end="", flush=True)


def configuration() -> tuple[Settings, EventsConfig]:
    """The settings (secrets read) and the events configuration, or exit 2 naming what is wrong."""
    with exit_codes():
        settings = load_settings()
        logs.set_format(settings.log_format)
        settings = resolve_secrets(settings)
        return settings, load_events_config(settings)
    raise AssertionError("unreachable")  # pragma: no cover


@app.command()
def collect() -> None:
    """Extract/load only: export the enabled events from Mixpanel into the raw table.

    Asks for the days that can still receive events (MIXPANEL_LATE_ARRIVAL_DAYS), filtered on
    Mixpanel's processing time after the last run's cursor; loads only events not stored yet.
    Shows progress (MB, events/s) and ends with a summary: loaded, duplicates skipped, rejected.
    """
    settings, events_config = configuration()
    with exit_codes(settings) as redact:
        reporter = ConsoleReporter(redact)
        with orchestration.recorded("collect", settings, reporter, heartbeat=False) as record:
            try:
                summary = orchestration.collect_step(settings, events_config, reporter)
            except StepError:
                record.collect_result = "failed"
                raise
            record.collect_result, record.events_loaded = "ok", summary.stats.parse.new_events
            record.newest_processed_at = summary.newest_processed_at(datetime.now(UTC))


@app.command()
def backfill(
    start_date: Annotated[str, typer.Option("--start-date", help="first day to export, YYYY-MM-DD")],
    end_date: Annotated[str, typer.Option("--end-date", help="last day to export, YYYY-MM-DD (inclusive)")],
) -> None:
    """Historical export in rate-limit-safe slices (one day per request); never alerts.

    Moves the incremental cursor only when the days backfilled up to today stand in for the next
    collect (then the next run downloads only what is new); events already stored are skipped.
    """
    try:
        start, end = date.fromisoformat(start_date), date.fromisoformat(end_date)
    except ValueError:
        fail("--start-date and --end-date must be dates in YYYY-MM-DD format", 2)
    if start > end:
        fail(f"--start-date {start} is after --end-date {end}", 2)
    settings, events_config = configuration()
    today = datetime.now(ZoneInfo(settings.project_timezone)).date()
    zone = f"today is {today} in the project's timezone, MIXPANEL_PROJECT_TIMEZONE={settings.project_timezone}"
    if start > today:
        fail(f"--start-date {start} is in the future ({zone}): Mixpanel has no events for it yet", 2)
    with exit_codes(settings) as redact:
        reporter = ConsoleReporter(redact)
        if end > today:
            reporter.note(f"--end-date {end} is in the future ({zone}): backfilling up to {today}")
            end = today
        orchestration.collect_step(settings, events_config, reporter, backfill=(start, end))
        reporter.info(
            f"backfill: {start}..{end} done. Next, `mixpanel-alerts detect` counts these days (their incidents "
            "are recorded, not sent); if they lie before a gap in the stored data, `mixpanel-alerts detect "
            "--full-refresh`"
        )


DRY_RUN = typer.Option("--dry-run", help="render the alerts that would be sent; send and record nothing")
FULL_REFRESH = typer.Option(
    "--full-refresh", help="rebuild every minute of history, not only what changed since the last run"
)


@app.command()
def detect(full_refresh: Annotated[bool, FULL_REFRESH] = False, dry_run: Annotated[bool, DRY_RUN] = False) -> None:
    """dbt build of the detection models (rules seed, per-minute counts, windows, anomalies,
    incidents) on the warehouse chosen by WAREHOUSE, then the alert step: one Slack message per
    new incident (the terminal when Slack is not configured), never twice.

    Incremental runs recount only what changed since the last one: the minutes that received
    events (late ones too), the windows and baselines that depend on them, and the minutes since
    the last run (quiet ones too, so drops are judged), so a run's work follows new data, not history.
    """
    settings, events_config = configuration()
    with exit_codes(settings) as redact:
        reporter = ConsoleReporter(redact)
        with orchestration.recorded("detect", settings, reporter, dry_run=dry_run) as record:
            orchestration.detect_step(
                settings, events_config, reporter, full_refresh=full_refresh, dry_run=dry_run, record=record
            )


@app.command()
def run(dry_run: Annotated[bool, DRY_RUN] = False) -> None:
    """collect, then detect: the whole pipeline once, for cron or CI."""
    settings, events_config = configuration()
    with exit_codes(settings) as redact:
        orchestration.run(settings, events_config, ConsoleReporter(redact), dry_run=dry_run)


@app.command()
def demo(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="an events configuration file (e.g. config/events_config.json): serve traffic for its enabled "
            "rules, each inside its band, and a spike past the first threshold",
        ),
    ] = None,
) -> None:
    """The whole pipeline against the built-in Mixpanel simulator, no credentials needed.

    Serves two hours of realistic traffic with an injected error spike, collects it into
    data/demo.duckdb, detects, and shows the alert in the terminal (and in Slack if
    SLACK_WEBHOOK_URL or SLACK_BOT_TOKEN is set). With --config, the traffic and the rules are
    your configuration's.
    """
    with exit_codes() as redact:
        run_demo(ConsoleReporter(redact), config)


@app.command()
def check(
    send_test: Annotated[
        bool,
        typer.Option(
            "--send-test",
            help="also post a test message to each configured Slack channel (each enabled rule's channel with a "
            "bot token, the webhook's channel with a webhook)",
        ),
    ] = False,
) -> None:
    """Validate the configuration and reach each configured service; say what is wrong.

    Exit code 2 names the setting to fix; 1 means a service could not be reached.
    """
    settings, events_config = configuration()
    with exit_codes(settings) as redact:
        report = CheckReport(redact)
        report(
            "ok", "events configuration", f"{events_config.source}: {len(events_config.enabled)} enabled, "
            f"{len(events_config.events) - len(events_config.enabled)} disabled",
        )  # fmt: skip
        if settings.uses_legacy_secret:
            report(
                "warning", "mixpanel", f"MIXPANEL_API_SECRET is a legacy project secret; Mixpanel retires it for the "
                f"export API on {LEGACY_SECRET_RETIREMENT}. Create a service account and set "
                "MIXPANEL_SERVICE_ACCOUNT_USERNAME and MIXPANEL_SERVICE_ACCOUNT_SECRET.",
            )  # fmt: skip
        code = run_checks(settings, events_config, report, send_test=send_test)
    raise typer.Exit(code)


class CheckReport:
    """A check's line: ``   ok slack: …`` (coloured), or with LOG_FORMAT=json one object with the
    check's ``name`` and ``status``."""

    SEVERITY = {"ok": "INFO", "note": "NOTICE", "warning": "WARNING", "config": "ERROR", "failed": "ERROR"}
    COLOUR = {"ok": "green", "note": "yellow", "warning": "yellow", "config": "red", "failed": "red"}

    def __init__(self, redact: Callable[[str], str]) -> None:
        self.redact = redact

    def __call__(self, status: str, name: str, message: str) -> None:
        text = self.redact(message)
        if logs.is_json():
            line = logs.json_line(f"{name}: {text}", self.SEVERITY[status], check=name, status=status)
            print(line, file=sys.stderr, flush=True)
            return
        console.print(f"[{self.COLOUR[status]}]{status:>7}[/] {escape(name)}: {escape(text)}", markup=True)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def dbt(context: typer.Context) -> None:
    """Run any dbt command against the configured warehouse, with the rules in place.

    Example: mixpanel-alerts dbt -- test --select incidents. The alert_rules seed is written from
    the events configuration first, and the profile (dbt_project/profiles.yml) gets its variables
    from your settings (.env included); the command takes the same turn as a run.
    """
    settings, events_config = configuration()
    with exit_codes(settings):
        orchestration.dbt_command(settings, events_config, list(context.args))


BACKTEST_START = typer.Option("--start-date", help="first day to replay, YYYY-MM-DD (UTC)")
BACKTEST_END = typer.Option("--end-date", help="last day to replay, YYYY-MM-DD (UTC, inclusive)")
BACKTEST_JSON = typer.Option(
    "--json", help='write {"incidents": [{event_name, kind, first_anomalous_minute, ...}]} here (times UTC)'
)
BACKTEST_HTML = typer.Option(
    "--html", help="write a self-contained HTML report here: a chart per rule and one per incident listed"
)
BACKTEST_TARGET = typer.Option(
    "--target-per-week", help="threshold rules: suggest the threshold that gives at most this many incidents a week"
)


@app.command()
def backtest(
    start_date: Annotated[str, BACKTEST_START],
    end_date: Annotated[str, BACKTEST_END],
    json_file: Annotated[Path | None, BACKTEST_JSON] = None,
    html_file: Annotated[Path | None, BACKTEST_HTML] = None,
    target_per_week: Annotated[float, BACKTEST_TARGET] = TARGET_PER_WEEK,
) -> None:
    """Replay the current rules over stored history, as if detect had run every minute.

    Sends nothing and writes nothing to the ledger or the live detection tables: the detection
    models are built from scratch into a private copy (DuckDB: a scratch file; BigQuery: the
    dataset BIGQUERY_DATASET_backtest) of the raw events of the enabled rules, from 28 days before
    --start-date (the baseline's history) to the end of --end-date. Prints, per rule, its incidents
    (per week) and the first few, and for a threshold rule the threshold that would have given
    --target-per-week; progress goes to stderr. Collect or backfill the period first: a period
    without events, or in which every rule was still learning, exits 1.
    """
    try:
        period = Period(date.fromisoformat(start_date), date.fromisoformat(end_date))
    except ValueError:
        fail("--start-date and --end-date must be dates in YYYY-MM-DD format", 2)
    if period.end < period.start:
        fail(f"--end-date {period.end} is before --start-date {period.start}", 2)
    if not target_per_week > 0:
        fail(f"--target-per-week {target_per_week:g}: give a number of incidents above 0", 2)
    settings, events_config = configuration()
    with exit_codes(settings) as redact:
        if not events_config.enabled:
            raise ConfigError(f"{events_config.source} enables no event: there is nothing to replay")
        with orchestration.translated(settings, "backtest"):
            result = run_backtest(
                settings,
                events_config,
                period,
                say=ConsoleReporter(redact).info,
                with_series=html_file is not None,
                target_per_week=target_per_week,
            )
        if not result.all_learning:
            write_backtest(result, json_file, html_file)
    for line in summary_lines(result):
        if logs.is_json():  # the summary is the command's result: stdout, as LOG_FORMAT wants it
            print(logs.json_line(redact(line)), flush=True)
        else:
            print(redact(line))
    if result.all_learning:
        fail(all_learning_message(result), 1, redact)


def write_backtest(result: Backtest, json_file: Path | None, html_file: Path | None) -> None:
    from .report import render_backtest_html

    outputs = []
    if json_file is not None:
        outputs.append((json_file, json.dumps(result.json_document(), indent=1, ensure_ascii=False) + "\n"))
    if html_file is not None:
        outputs.append((html_file, render_backtest_html(result.report())))
    for path, text in outputs:
        staged = path.with_name(path.name + ".partial")
        try:
            staged.write_text(text, encoding="utf-8")
            staged.replace(path)
        except OSError as exc:
            staged.unlink(missing_ok=True)
            raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
        say(f"backtest: wrote {path}")


QUERY_SQL = typer.Argument(help="one SQL statement; tables are in the dataset's schema, e.g. mixpanel_data.incidents")
QUERY_FORMAT = typer.Option("--format", help="table, csv or json (one object per line)")


@app.command(name="query")
def query_command(sql: Annotated[str, QUERY_SQL], output: Annotated[str, QUERY_FORMAT] = "table") -> None:
    """Read the DuckDB warehouse safely while cron runs write it: a read-only query between runs.

    DuckDB lets a run write the file only while no other process has it open, so a notebook or the
    DuckDB CLI that keeps it open makes runs wait and then fail. This takes the same turn as a run
    (it waits for a running one, and a run waits for it), opens the file read-only for this query
    alone, prints the rows and lets go. On BigQuery, query the dataset directly.
    """
    if output not in ("table", "csv", "json"):
        fail(f"--format {output!r}: use table, csv or json", 2)
    settings, _ = configuration()
    path = settings.duckdb_path
    # a file nobody may write (a read-only copy or volume) needs no turn: no run can change it
    read_only = settings.warehouse == "duckdb" and path.is_file() and not os.access(path, os.W_OK)
    turn = orchestration.translated(settings, "query") if read_only else orchestration.turn(settings, "query")
    with exit_codes(settings), turn:
        try:
            columns, rows = query_duckdb(settings, sql)
        except duckdb.Error as exc:  # the query's own mistake (the file's were found taking the turn)
            raise ConfigError(f"query failed: {first_line(exc)}") from None
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
        say(f"{len(rows)} row(s)")


SNAPSHOT_TARGET = typer.Argument(help="the copy to write, e.g. /tmp/analysis.duckdb (replaced if it exists)")


@app.command()
def snapshot(target: Annotated[Path, SNAPSHOT_TARGET]) -> None:
    """Copy the DuckDB warehouse to another file, between runs, for a long analysis session.

    A notebook may keep the copy open for as long as it likes: runs never see it. The copy is
    consistent (taken in the same turn as a run, like `query`) and complete (every schema and table).
    """
    settings, _ = configuration()
    started = time.monotonic()
    with exit_codes(settings), orchestration.turn(settings, "snapshot"):
        size = snapshot_duckdb(settings, target)
    say(f"snapshot: {target} ({size / 1e6:,.1f} MB) in {time.monotonic() - started:.1f} s")


SILENCE_EVENT = typer.Argument(
    help="what to mute: an event (all its rules) or one rule by its id, as in the events configuration (case-sensitive)"
)
SILENCE_FOR = typer.Option("--for", help="how long: 90m, 2h, 1h30m, 3d, 1w")
SILENCE_UNTIL = typer.Option("--until", help="until when instead: 2026-12-24T09:00 (UTC unless it says) or a date")
SILENCE_REASON = typer.Option("--reason", help="why: shown by `silences` and `status`")


@app.command()
def silence(
    event: Annotated[str, SILENCE_EVENT],
    reason: Annotated[str, SILENCE_REASON],
    duration: Annotated[str | None, SILENCE_FOR] = None,
    until: Annotated[str | None, SILENCE_UNTIL] = None,
) -> None:
    """Mute an event's alerts, or one rule's, for a while (--for or --until); the silence ends by itself.

    Its incidents meanwhile are recorded as `silenced` in the ledger, not sent; one still open when
    the silence ends is sent then. Stored in the warehouse (alert_silences), so it holds on a
    stateless runtime. With a bot token, a :no_bell: reaction on an alert does the same for 24 hours.
    Example: mixpanel-alerts silence checkout_completed --for 2h --reason "planned launch"
    """
    if (duration is None) == (until is None):
        fail("give one of --for (e.g. --for 2h) or --until (e.g. --until 2026-12-24T09:00)", 2)
    settings, events_config = configuration()
    now = settings.now()
    if duration is not None:
        try:
            end = now + parse_duration(duration)
        except ValueError as exc:
            fail(f"--for {exc}", 2)
    else:
        end = parse_until(str(until))
    with exit_codes(settings):
        made = add_silence(settings, events_config, event, until=end, reason=reason)
    what = f"rule {made.rule_id} of {made.event_name}" if made.rule_id else made.event_name
    say(
        f"silenced {what} until {made.end:%Y-%m-%d %H:%M} UTC ({minutes(made.end - now)}): {made.reason} "
        f"[id {made.silence_id}]"
    )


def stdout_console() -> Console:
    """Tables on stdout: the terminal's width, or 160 columns into a file or a pipe (not 80)."""
    return Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 160)


def parse_until(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"--until {text!r} is not a time: use 2026-12-24T09:00 (UTC unless it says) or 2026-12-24", 2)
    return utc(moment)


@app.command()
def silences(
    include_ended: Annotated[bool, typer.Option("--all", help="also the silences that have ended")] = False,
) -> None:
    """List the active silences (event, rule, until when, why, who): from `silence` and from reactions."""
    settings, _ = configuration()
    with exit_codes(settings):
        found = list_silences(settings, include_ended=include_ended)
    if not found:
        say("no active silence" if not include_ended else "no silence")
        return
    from rich.table import Table

    now = settings.now()
    table = Table("event", "rule", "until (UTC)", "left", "reason", "by", "id", show_lines=False)
    for item in found:
        left = minutes(item.end - now) if item.active(now) else "ended"
        table.add_row(
            item.event_name, item.rule_id or "all rules", f"{item.end:%Y-%m-%d %H:%M}", left, item.reason,
            item.created_by, item.silence_id,
        )  # fmt: skip
    stdout_console().print(table)


@app.command()
def unsilence(
    event: Annotated[
        str, typer.Argument(help="the event (its silences and its rules') or the rule id whose silences end now")
    ],
) -> None:
    """End an event's or a rule's active silences now: its alerts are sent again from the next run."""
    settings, events_config = configuration()
    with exit_codes(settings):
        ended = end_silences(settings, events_config, event)
    if not ended:
        say(f"{event} has no active silence")
        return
    say(f"unsilenced {event} ({len(ended)} silence{'s' if len(ended) != 1 else ''} ended)")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document on stdout (times ISO 8601 UTC)")] = False,
) -> None:
    """What the pipeline did and what it watches: the last runs, how far behind Mixpanel the data
    is, each rule's last-24-hour volume and state (ok, firing, learning, silenced, disabled), open
    incidents, notifications pending or held, and active silences."""
    settings, events_config = configuration()
    with exit_codes(settings):
        report = read_status(settings, events_config)
    if as_json:
        print(json.dumps(report.document(), indent=1, ensure_ascii=False))
        return
    print_status(report)


def print_status(report: Status) -> None:
    from rich.table import Table

    out = stdout_console()
    now = report.generated_at
    last = report.runs[0] if report.runs else None
    health = (
        "no run recorded yet"
        if last is None
        else ("healthy" if last.healthy else "UNHEALTHY") + (f": {last.health}" if last.health else "")
    )
    out.print(f"pipeline: {health}", markup=False)
    lag = f"{minutes(report.lag)} behind" if report.lag is not None else "nothing collected yet"
    out.print(
        f"collection: newest event processed {ago(report.newest_processed_at, now)}: {lag}; last successful "
        f"collect {ago(report.last_collect_ok_at, now)}",
        markup=False,
    )
    if report.drops_held_from is not None and report.lag is not None and report.lag >= timedelta(minutes=5):
        # minutes past the data collected are the pipeline's news, not the events'
        out.print(
            f"drops: held from {report.drops_held_from:%Y-%m-%d %H:%M} UTC until the data collected reaches past "
            "it (spikes are judged as usual)",
            markup=False,
        )
    runs = Table("started (UTC)", "command", "collect", "detect", "alerts", "loaded", "sent", "held", "error",
                 title="last runs", title_justify="left")  # fmt: skip
    for run in report.runs:
        runs.add_row(
            f"{run.started_at:%Y-%m-%d %H:%M:%S}", run.command, run.collect_result or "-", run.detect_result or "-",
            run.alert_result or "-", "-" if run.events_loaded is None else f"{run.events_loaded:,}",
            str(run.alerts_sent or 0), str(run.alerts_held or 0), (run.error or "")[:80],
        )  # fmt: skip
    out.print(runs)
    rules = Table("event", "state", "detector", "channel", "events (24 h)", title="rules", title_justify="left")
    for rule in report.rules:
        state = rule["state"]
        if rule["silenced_until"]:
            state += f" until {rule['silenced_until']:%m-%d %H:%M}"
        label = rule_label(rule["event_name"], rule["rule_id"])
        rules.add_row(label, state, rule["detector"], rule["alert_channel"], f"{rule['events_24h']:,}")
    out.print(rules)
    if report.open_incidents:
        incidents = Table("event", "kind", "since (UTC)", "last (UTC)", "peak", "channel", title="open incidents",
                          title_justify="left")  # fmt: skip
        for item in report.open_incidents:
            incidents.add_row(
                item["event_name"], item["kind"], f"{item['first_anomalous_minute']:%m-%d %H:%M}",
                f"{item['last_anomalous_minute']:%m-%d %H:%M}", f"{item['peak_count']:,}", item["alert_channel"],
            )  # fmt: skip
        out.print(incidents)
    else:
        out.print("open incidents: none", markup=False)
    if report.notifications:
        waiting = Table("event", "kind", "status", "channel", "attempts", "last error",
                        title="notifications not delivered", title_justify="left")  # fmt: skip
        for item in report.notifications:
            waiting.add_row(item["event_name"], item["kind"], item["status"], item["channel"], str(item["attempts"]),
                            (item["last_error"] or "")[:80])  # fmt: skip
        out.print(waiting)
    else:
        out.print("notifications not delivered: none", markup=False)
    if report.silences:
        muted = Table("event", "until (UTC)", "reason", "by", title="active silences", title_justify="left")
        for silence in report.silences:
            muted.add_row(silence.event_name, f"{silence.end:%Y-%m-%d %H:%M}", silence.reason, silence.created_by)
        out.print(muted)
    else:
        out.print("active silences: none", markup=False)


def version_callback(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"mixpanel-alerts {version('mixpanel-alerts')}")
        raise typer.Exit()


VERSION = typer.Option("--version", callback=version_callback, is_eager=True, help="print the version and exit")
DEBUG = typer.Option("--debug", help="on failure, also print the traceback (as LOG_LEVEL=debug does)")


@app.callback()
def _start(show_version: Annotated[bool, VERSION] = False, debug: Annotated[bool, DEBUG] = False) -> None:
    """Before any command: the --debug choice, and the scratch folders of killed runs removed."""
    debug = debug or os.environ.get("LOG_LEVEL", "").strip().lower() == "debug"
    logs.set_debug(debug)
    if debug:
        os.environ["RUNTIME__LOG_LEVEL"] = "DEBUG"  # dlt's own log, for the same run
    clean_stale()


def main(argv: list[str] | None = None) -> Any:
    from .core import signals

    arguments = sys.argv[1:] if argv is None else argv
    command = next((argument for argument in arguments if not argument.startswith("-")), "mixpanel-alerts")
    # SIGTERM (Cloud Run's and cron's timeouts) and SIGINT stop any command within seconds: one
    # line, exit 143 or 130, whatever the command was doing (see core/signals.py)
    with signals.handled(command):
        try:
            # the working directory's .env, under the process environment: dlt and dbt read it there too
            load_dotenv()
            # force: a second main() in one process (the tests) logs to its own stderr, not the first one's
            logging.basicConfig(level=logging.WARNING, force=True)
            logs.set_format(os.environ.get("LOG_FORMAT", "text").strip().lower())
            # dlt's own log stays quiet: its notes (Arrow and dlt column hints differ on `properties`:
            # expected) and its tracebacks of a failed step, which the run says in one line itself
            # (--debug or LOG_LEVEL=debug turns it on)
            os.environ.setdefault("RUNTIME__LOG_LEVEL", "CRITICAL")
            # dlt's normalize and load steps would take SIGTERM/SIGINT for themselves and drop them
            # when the step ends (the run went on): the product's handler must stay, whatever .env says
            os.environ["RUNTIME__INTERCEPT_SIGNALS"] = "false"
            # a scheduled job does not phone home: dlt's and dbt's anonymous usage telemetry stay off
            # unless these variables turn them on (see "Privacy" in the README)
            os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
            os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
            warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
            # google-cloud-bigquery falls back to the REST API without the Storage API client: expected
            warnings.filterwarnings("ignore", message="Cannot create BigQuery Storage client")
            return app(argv, prog_name="mixpanel-alerts")  # click exits with 2 on usage errors
        except BaseException:
            # a stop ends the command however it came out: as Stopped, or as the error of a library
            # that caught it (dbt's runner, DuckDB's "Query interrupted"): its line, 143 or 130
            if signals.received() is None:
                raise
            signals.end()
