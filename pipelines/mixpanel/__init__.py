"""A dlt source for Mixpanel's Raw Event Export API (``GET /api/2.0/export``).

See README.md beside this file for why the cursor is on processing time and how events are
deduplicated.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Generator, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.destination.capabilities import DestinationCapabilitiesContext
from dlt.common.destination.client import SqlModel
from dlt.common.libs.pyarrow import columns_to_arrow
from dlt.common.schema.utils import has_table_seen_data

from mixpanel_alerts.core.credentials import MixpanelCredentials

from .client import ExportClient, ExportError, ProgressCallback, export_base_url, rate_limiter_for
from .parser import CollectStats, ExportParser, new_spool_dir
from .settings import (
    DEFAULT_LATE_ARRIVAL_DAYS,
    DEFAULT_PROCESSING_MARGIN_MINUTES,
    EVENT_COLUMNS,
    EVENTS_TABLE,
    MAX_QUERIES_PER_HOUR,
    MAX_QUERIES_PER_SECOND,
    REJECT_COLUMNS,
    REJECTS_TABLE,
)
from .window import ExportWindow, backfill_windows, incremental_window

__all__ = ["CollectStats", "ExportError", "LoadOptions", "mixpanel_source"]


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
        backfill: export these days instead, one per request, without touching the cursor.
        max_queries_per_second, max_queries_per_hour: Mixpanel's rate limits, retries included.
        request_max_attempts, request_backoff_factor: dlt's retry policy for 429, 5xx and cut bodies.
        load: how the events reach the warehouse (see ``LoadOptions``).
    """
    options = load or LoadOptions()
    if options.duckdb_table and options.spool_root is None:
        raise ValueError("duckdb_table needs a spool_root that outlives the load")
    base_url = export_base_url(region, export_url)
    names = sorted(set(event_names))
    limiter = rate_limiter_for(base_url, credentials.project_id, max_queries_per_second, max_queries_per_hour)
    export = _Export(names, project_timezone, table_name, options)

    @dlt.resource(name=table_name, write_disposition="append")
    def events() -> Iterator[Any]:
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
                for window in backfill_windows(*backfill, days_per_request=1):
                    yield from export.window(client, window)
            else:
                yield from _incremental(client)
        if options.create_empty_tables:
            yield from export.tables_not_created_yet()

    def _incremental(client: ExportClient) -> Iterator[Any]:
        state = dlt.current.resource_state()
        requested_at = datetime.now(UTC)
        window = incremental_window(
            now=requested_at,
            project_timezone=project_timezone,
            start_date=start_date,
            late_arrival_days=late_arrival_days,
            cursor_ms=state.get("processing_cursor_ms"),
            margin_minutes=processing_margin_minutes,
        )
        max_processing_ms = yield from export.window(client, window)
        # Everything Mixpanel had processed when we asked is now stored: advance the cursor to the
        # later of that moment and the newest processing time seen (robust to clock skew), but not
        # past the margin: a processing time in the future would make later runs skip events.
        requested_ms = int(requested_at.timestamp() * 1000)
        newest_ms = min(max_processing_ms or 0, requested_ms + processing_margin_minutes * 60_000)
        state["processing_cursor_ms"] = max(state.get("processing_cursor_ms") or 0, newest_ms, requested_ms)
        state["last_window"] = {"from_date": window.from_date.isoformat(), "to_date": window.to_date.isoformat()}

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

    def window(self, client: ExportClient, window: ExportWindow) -> Generator[Any, None, int | None]:
        """Download, parse and yield one window; return the newest processing time seen."""
        options = self.options
        spool_dir = new_spool_dir(options.spool_root)
        try:
            download = client.download(window.params(self.names), spool_dir)
            stats = options.stats
            stats.requests += 1
            stats.attempts = client.adapter.attempts
            stats.bytes_received += download.bytes_received
            stats.windows.append(f"{window.from_date}..{window.to_date}")
            parser = ExportParser(
                download.path, event_names=self.names, project_timezone=self.project_timezone,
                inserted_at=datetime.now(UTC),
            )  # fmt: skip
            try:
                yield from self._parsed(parser, window, spool_dir)
                stats.add(parser.stats)
                return parser.stats.max_processing_ms
            finally:
                parser.close()
        finally:
            if not options.duckdb_table:  # else the load reads it: the caller removes spool_root afterwards
                shutil.rmtree(spool_dir, ignore_errors=True)

    def _parsed(self, parser: ExportParser, window: ExportWindow, spool_dir: Path) -> Iterator[Any]:
        options, progress = self.options, self.options.progress
        parser.parse()
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
