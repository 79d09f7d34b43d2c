"""A dlt source for Mixpanel's Raw Event Export API (``GET /api/2.0/export``).

See README.md beside this file for why the cursor is on processing time and how events are
deduplicated.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Generator, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.destination.capabilities import DestinationCapabilitiesContext
from dlt.common.destination.client import SqlModel
from dlt.common.libs.pyarrow import columns_to_arrow
from dlt.common.schema.utils import has_table_seen_data
from requests.exceptions import RequestException

from mixpanel_alerts.core.credentials import MixpanelCredentials

from .client import ExportClient, ExportError, NotAnExport, ProgressCallback, export_base_url, rate_limiter_for
from .parser import CollectStats, ExportParser, ParseStats, new_spool_dir
from .settings import (
    COVERAGE_COLUMNS,
    COVERAGE_TABLE,
    DEFAULT_LATE_ARRIVAL_DAYS,
    DEFAULT_PROCESSING_MARGIN_MINUTES,
    EVENT_COLUMNS,
    EVENTS_TABLE,
    HISTORY_DAYS,
    HISTORY_DAYS_PER_LOAD,
    HISTORY_QUERIES_PER_HOUR,
    MAX_QUERIES_PER_HOUR,
    MAX_QUERIES_PER_SECOND,
    REJECT_COLUMNS,
    REJECTS_TABLE,
)
from .window import (
    BackfillLedger,
    Coverage,
    ExportWindow,
    backfill_left_cursor_note,
    backfill_moved_cursor_note,
    backfill_windows,
    day_start_ms,
    follow_enabled_events,
    future_processing_note,
    history_days_left,
    history_fetched,
    incremental_window,
    keep_history_of,
    next_cursor,
    next_history_day,
    queries_in_last_hour,
    record_queries,
    time_offset_note,
)

__all__ = ["CollectStats", "ExportError", "HistoryReport", "LoadOptions", "mixpanel_source"]


@dataclasses.dataclass
class HistoryReport:
    """What a collect did for the history of events enabled after the first run: the source fills
    it in each run (the incremental run plans it, each history run fetches up to a week of days)."""

    names: set[str] = dataclasses.field(default_factory=set)  # asked for in this collect
    pending: set[str] = dataclasses.field(default_factory=set)  # whose history is not done yet
    days_fetched: int = 0
    days_left: int = 0
    attempts: int = 0
    budget_left: int = 0  # history queries the hour still allows
    queries_per_hour: int = HISTORY_QUERIES_PER_HOUR
    error: str | None = None
    stats: CollectStats = dataclasses.field(default_factory=CollectStats)


@dataclasses.dataclass
class LoadOptions:
    """How the pipeline entry has the source load into its warehouse; not Mixpanel settings.

    ``existing_event_ids``: ``(start, end) -> Iterator[pa.Table]`` of the ids already stored with an
    event time in that range; they are skipped. ``duckdb_table``: with a DuckDB destination, the raw
    table's qualified name: the new events then load as a SQL model that DuckDB runs straight from
    the spooled export (no Arrow or parquet round trip), skipping ids already in that table; the
    spool must outlive the load, so it goes under ``spool_root``, which the caller removes.
    ``create_empty_tables``: a run that finds no event (or no reject) still creates the table with
    an empty batch (off where an empty load file is a risk: BigQuery).
    """

    existing_event_ids: Callable[[datetime, datetime], Iterator[pa.Table]] | None = None
    duckdb_table: str | None = None
    create_empty_tables: bool = True
    spool_root: Path | None = None
    stats: CollectStats = dataclasses.field(default_factory=CollectStats)
    progress: ProgressCallback | None = None
    history: HistoryReport = dataclasses.field(default_factory=HistoryReport)


@dlt.source(name="mixpanel", max_table_nesting=0)
def mixpanel_source(
    credentials: MixpanelCredentials,
    event_names: Sequence[str] = dlt.config.value,
    region: str = "us",
    export_url: str | None = None,
    project_timezone: str = "UTC",
    late_arrival_days: int = DEFAULT_LATE_ARRIVAL_DAYS,
    processing_margin_minutes: int = DEFAULT_PROCESSING_MARGIN_MINUTES,
    start_date: date | None = None,
    backfill: tuple[date, date] | None = None,
    history: bool = False,
    history_days: int = HISTORY_DAYS,
    history_queries_per_hour: int = HISTORY_QUERIES_PER_HOUR,
    table_name: str = EVENTS_TABLE,
    max_queries_per_second: int = MAX_QUERIES_PER_SECOND,
    max_queries_per_hour: int = MAX_QUERIES_PER_HOUR,
    request_max_attempts: int = 5,
    request_backoff_factor: float = 1.0,
    load: LoadOptions | None = None,
) -> Any:
    """Raw events of ``event_names`` from the export API, incremental on processing time.

    Args:
        credentials: a service account (preferred) or the legacy project secret, and the project.
        event_names: the events to request, case-sensitive; nothing else is ever requested.
        region: ``us``, ``eu`` or ``in``; ``export_url`` overrides it.
        project_timezone: timezone of ``from_date``/``to_date`` and of legacy "local epoch" times.
        late_arrival_days: how late, by processing time, an event may arrive and still be collected.
        processing_margin_minutes: how far before the cursor each run re-asks (overlap is deduplicated).
        start_date: the first day to collect when there is no state yet (default: yesterday).
        backfill: export these days instead, one per request; the cursor moves only when the days
            backfilled since it stand in for the next collect (see ``BackfillLedger``).
        history: export the next days of history that events enabled after the first run still
            miss (one request a day for all of them, up to a week per load; the incremental run
            plans it), without touching the cursor; a failed day is reported in ``load.history``,
            not raised: the next run resumes there.
        history_days: how many days before today (and today) a newly enabled event gets.
        history_queries_per_hour: how many of Mixpanel's hourly queries history and backfill
            requests may take, counted across runs in the state.
        max_queries_per_second, max_queries_per_hour: Mixpanel's rate limits, retries included.
        request_max_attempts, request_backoff_factor: dlt's retry policy for 429, 5xx and cut bodies.
        load: how the events reach the warehouse (see ``LoadOptions``).
    """
    options = load or LoadOptions()
    if options.duckdb_table and options.spool_root is None:
        raise ValueError("duckdb_table needs a spool_root that outlives the load")
    if history and backfill is not None:
        raise ValueError("a run exports either a backfill or history, not both")
    base_url = export_base_url(region, export_url)
    names = sorted(set(event_names))
    limiter = rate_limiter_for(base_url, credentials.project_id, max_queries_per_second, max_queries_per_hour)
    export = _Export(names, project_timezone, table_name, options)
    report = options.history
    report.queries_per_hour = history_queries_per_hour

    @dlt.resource(name=table_name, write_disposition="append")
    def events() -> Iterator[Any]:
        state = dlt.current.resource_state()
        if names:
            client = ExportClient(
                base_url=base_url,
                project_id=credentials.project_id,
                auth=credentials.auth,
                limiter=limiter,
                max_attempts=request_max_attempts,
                backoff_factor=request_backoff_factor,
                progress=options.progress,
            )
            if backfill is not None:
                yield from _backfill(client, state, *backfill)
            elif history:
                yield from _history(client, state)
            else:
                yield from _incremental(client, state)
            _report_history(state)
            if not history or not (report.days_left and report.budget_left > 0 and report.error is None):
                yield from _coverage_rows(state)  # history: once the collect's last day is in
        if options.create_empty_tables:
            yield from export.tables_not_created_yet()

    def _scheduled_window(now: datetime, cursor_ms: int | None) -> ExportWindow:
        """What a scheduled collect asked at ``now`` with the cursor ``cursor_ms`` asks for."""
        return incremental_window(
            now=now,
            project_timezone=project_timezone,
            start_date=start_date,
            late_arrival_days=late_arrival_days,
            cursor_ms=cursor_ms,
            margin_minutes=processing_margin_minutes,
        )

    def _incremental(client: ExportClient, state: dict[str, Any]) -> Iterator[Any]:
        requested_at = datetime.now(UTC)
        cursor_ms = state.get("processing_cursor_ms")
        window = _scheduled_window(requested_at, cursor_ms)
        parsed = yield from export.window(client, window)
        _collected(state, window, cursor_ms, next_cursor(requested_at))
        if parsed.future:
            options.stats.note("future", future_processing_note(parsed.future, parsed.max_processing_ms))

    def _collected(state: dict[str, Any], window: ExportWindow, cursor_ms: int | None, new_cursor_ms: int) -> None:
        """The state after the scheduled window ``window``, asked with ``cursor_ms``, is stored:
        each enabled event's coverage and history, and the cursor. Backfilled days asked before the
        new cursor can no longer move it: the ledger goes."""
        follow_enabled_events(
            state, names, window=window, cursor_ms=cursor_ms, margin_minutes=processing_margin_minutes,
            late_arrival_days=late_arrival_days, project_timezone=project_timezone, history_days=history_days,
        )  # fmt: skip
        state["processing_cursor_ms"] = new_cursor_ms
        state["last_window"] = {"from_date": window.from_date.isoformat(), "to_date": window.to_date.isoformat()}
        state.pop("backfill_days", None)

    def _backfill(client: ExportClient, state: dict[str, Any], first: date, last: date) -> Iterator[Any]:
        coverage = Coverage(state.setdefault("coverage", {}))
        ledger = BackfillLedger(state.setdefault("backfill_days", {}))
        try:
            for window in backfill_windows(first, last, days_per_request=1):
                requested_at = datetime.now(UTC)
                yield from export.window(client, window)
                for name in names:
                    coverage.add(name, _day_start(window.from_date), _day_start(window.to_date + timedelta(days=1)))
                ledger.add(names, window.from_date, next_cursor(requested_at))
                _move_cursor_after_backfill(state, ledger, window.to_date, requested_at)
        finally:
            record_queries(state.setdefault("history_queries", []), datetime.now(UTC), client.adapter.attempts)

    def _move_cursor_after_backfill(
        state: dict[str, Any], ledger: BackfillLedger, day: date, requested_at: datetime
    ) -> None:
        """After a backfilled day: when it is today's and the days backfilled since the cursor
        stand in for the next scheduled collect (``BackfillLedger.reach``), the state becomes what
        that collect would have left, asked at the earliest of their requests; the run says
        whether the cursor moved, and if not, from which day to backfill."""
        cursor_ms = state.get("processing_cursor_ms")
        scheduled = _scheduled_window(requested_at, cursor_ms)
        # a day before both can count only for a backfill whose requests took more than a day
        oldest = min(scheduled.from_date, scheduled.to_date - timedelta(days=late_arrival_days + 1))
        ledger.forget(before=oldest, cursor_ms=cursor_ms)
        if day != scheduled.to_date:
            return
        reach = ledger.reach(names, scheduled, cursor_ms, lambda moved_ms: _scheduled_window(requested_at, moved_ms))
        if reach.cursor_ms is None:
            options.stats.note("backfill cursor", backfill_left_cursor_note(scheduled, reach.missing[0]))
            return
        _collected(state, scheduled, cursor_ms, reach.cursor_ms)
        note = backfill_moved_cursor_note(reach.first_day, reach.last_day, reach.cursor_ms, processing_margin_minutes)
        options.stats.note("backfill cursor", note)

    def _history(client: ExportClient, state: dict[str, Any]) -> Iterator[Any]:
        """The next days of history (a week per load at most), while the hour's query budget
        allows; every attempt is counted in the state's ledger."""
        jobs: list[dict[str, Any]] = state.setdefault("history", [])
        ledger = state.setdefault("history_queries", [])
        keep_history_of(jobs, set(names))
        for _ in range(HISTORY_DAYS_PER_LOAD):
            request = next_history_day(jobs)
            if request is None or queries_in_last_hour(ledger, datetime.now(UTC)) >= history_queries_per_hour:
                return
            attempts_before = client.adapter.attempts
            try:
                yield from _history_day(client, state, *request)
            finally:
                attempts = client.adapter.attempts - attempts_before
                report.attempts += attempts
                record_queries(ledger, datetime.now(UTC), attempts)
            if report.error is not None:
                return

    def _history_day(client: ExportClient, state: dict[str, Any], day: date, day_names: list[str]) -> Iterator[Any]:
        """One day of the names that want it; a failed request is reported, not raised: the day
        stays next, for the next run."""
        try:
            yield from export.window(client, ExportWindow(day, day), day_names)
        except (ExportError, RequestException) as exc:
            report.error = f"{day}: {exc}"
            return
        coverage = Coverage(state.setdefault("coverage", {}))
        for name in day_names:
            coverage.add(name, _day_start(day), _day_start(day + timedelta(days=1)))
        history_fetched(state["history"])
        report.days_fetched += 1
        report.names.update(day_names)

    def _report_history(state: dict[str, Any]) -> None:
        jobs = state.get("history", [])
        report.days_left = history_days_left(jobs)
        report.pending = {name for job in jobs for name in job["names"]}
        used = queries_in_last_hour(state.get("history_queries", []), datetime.now(UTC))
        report.budget_left = history_queries_per_hour - used

    def _coverage_rows(state: dict[str, Any]) -> Iterator[Any]:
        """A row for each enabled event whose coverage changed since it was last written."""
        coverage = Coverage(state.setdefault("coverage", {}))
        written = state.setdefault("coverage_written", {})
        now = datetime.now(UTC)
        rows = []
        for name in names:
            collected_from = coverage.collected_from(name)
            if collected_from is not None and written.get(name) != collected_from:
                moment = datetime.fromtimestamp(collected_from / 1000, UTC)
                rows.append({"event_name": name, "collected_from": moment, "updated_at": now})
                written[name] = collected_from
        if rows:
            yield dlt.mark.with_table_name(rows, COVERAGE_TABLE)

    def _day_start(day: date) -> int:
        return day_start_ms(day, project_timezone)

    # The resource's own table holds the events; the rejects are a table variant with their own
    # hints. A new variant starts from a copy of the resource's hints, so it is declared first.
    events.apply_hints(
        table_name=REJECTS_TABLE,
        write_disposition={"disposition": "merge", "strategy": "upsert"},
        primary_key="reject_id",
        columns=REJECT_COLUMNS,  # type: ignore[arg-type]
        create_table_variant=True,
    )
    events.apply_hints(
        table_name=COVERAGE_TABLE,
        write_disposition={"disposition": "merge", "strategy": "upsert"},
        primary_key="event_name",
        columns=COVERAGE_COLUMNS,  # type: ignore[arg-type]
        create_table_variant=True,
    )
    events.apply_hints(
        table_name=table_name,
        primary_key="event_id",
        columns=EVENT_COLUMNS,  # type: ignore[arg-type]
    )
    return events


class _Export:
    """What the events resource yields for each export window: new events and rejects."""

    def __init__(self, names: list[str], project_timezone: str, table_name: str, options: LoadOptions) -> None:
        self.names = names
        self.project_timezone = project_timezone
        self.table_name = table_name
        self.options = options
        # the tables this run yields rows for (a first run that yields none still creates them)
        self.tables_with_rows: set[str] = set()

    def window(
        self, client: ExportClient, window: ExportWindow, names: list[str] | None = None
    ) -> Generator[Any, None, ParseStats]:
        """Download, parse and yield one window of ``names`` (default: all the source's); return
        what the parse found. Each attempt's body is parsed as it arrives: one that is not an
        export fails the attempt, and dlt's retry policy asks again."""
        options = self.options
        names = names or self.names
        spool_dir = new_spool_dir(options.spool_root)
        parsers: list[ExportParser] = []

        def accept(path: Path) -> NotAnExport | None:
            while parsers:  # an earlier attempt's
                parsers.pop().close()
            parser = ExportParser(
                path, event_names=names, project_timezone=self.project_timezone, inserted_at=datetime.now(UTC)
            )
            parsers.append(parser)
            parser.parse()
            return parser.stats.not_an_export()

        try:
            attempts_before = client.adapter.attempts
            download = client.download(window.params(names), spool_dir, accept=accept)
            stats = options.stats
            stats.requests += 1
            stats.attempts += client.adapter.attempts - attempts_before
            stats.bytes_received += download.bytes_received
            stats.windows.append(f"{window.from_date}..{window.to_date}")
            parser = parsers[-1]
            yield from self._parsed(parser, window, spool_dir)
            stats.add(parser.stats)
            self._note_time_offset(parser)
            return parser.stats
        finally:
            for parser in parsers:
                parser.close()
            if not options.duckdb_table:  # else the load reads it: the caller removes spool_root afterwards
                shutil.rmtree(spool_dir, ignore_errors=True)

    def _note_time_offset(self, parser: ExportParser) -> None:
        """Warn (once a run) when the exported times look like another clock than the one
        MIXPANEL_PROJECT_TIMEZONE reads them on."""
        time_range = parser.time_range()
        if time_range is None:
            return
        low, high = time_range
        note = time_offset_note(
            parser.stats.gap_quartiles_ms, parser.stats.gap_events, self.project_timezone, low + (high - low) / 2
        )
        if note is not None:
            self.options.stats.note("time offset", note)

    def _parsed(self, parser: ExportParser, window: ExportWindow, spool_dir: Path) -> Iterator[Any]:
        options, progress = self.options, self.options.progress
        if progress:
            progress("parse", {"lines": parser.stats.lines, "rejected": parser.stats.rejected})
        time_range = parser.time_range()
        if time_range is not None and options.existing_event_ids is not None:
            for batch in options.existing_event_ids(*time_range):
                parser.add_existing_keys(batch)
        new_events = parser.count_new_events()
        if new_events and options.duckdb_table:
            model_path = spool_dir / "new_events.model"
            model_path.write_text(str(SqlModel(parser.new_events_model(options.duckdb_table), "duckdb")))
            if progress:
                progress("insert", {"events": new_events})
            self.tables_with_rows.add(self.table_name)
            yield dlt.mark.with_file_import(str(model_path), "model", new_events)
        elif new_events:
            self.tables_with_rows.add(self.table_name)
            loaded = 0
            for batch in parser.new_events():
                loaded += batch.num_rows
                if progress:
                    progress("load", {"events": loaded})
                yield batch
        if parser.rejects:
            # one row per distinct reject (its id is the line's hash): the summary counts lines
            rejects = list({reject["reject_id"]: reject for reject in parser.rejects}.values())
            for reject in rejects:
                reject["from_date"] = window.from_date
                reject["to_date"] = window.to_date
            self.tables_with_rows.add(REJECTS_TABLE)
            yield dlt.mark.with_table_name(rejects, REJECTS_TABLE)

    def tables_not_created_yet(self) -> Iterator[Any]:
        """An empty batch for each table that has never had rows, so that a warehouse where no
        configured event has happened yet still has the raw and rejects tables (detection reads the
        former, analysts both)."""
        schema = dlt.current.source_schema()
        capabilities = DestinationCapabilitiesContext.generic_capabilities()
        for name, columns in ((self.table_name, EVENT_COLUMNS), (REJECTS_TABLE, REJECT_COLUMNS)):
            table = schema.tables.get(name)
            if name in self.tables_with_rows or (table is not None and has_table_seen_data(table)):
                continue
            arrow_schema = columns_to_arrow(columns, capabilities, "UTC")  # type: ignore[arg-type]
            yield dlt.mark.with_table_name(arrow_schema.empty_table(), name)
