"""A dlt source for Mixpanel's Raw Event Export API (``GET /api/2.0/export``).

See README.md beside this file for why the cursor is on processing time and how events are
deduplicated.
"""

from __future__ import annotations

import shutil
from collections.abc import Generator, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination.capabilities import DestinationCapabilitiesContext
from dlt.common.destination.client import SqlModel
from dlt.common.libs.pyarrow import columns_to_arrow
from dlt.common.schema.utils import has_table_seen_data
from dlt.common.typing import TSecretStrValue

from .helpers import (
    CollectStats,
    ExportClient,
    ExportError,
    ExportParser,
    ExportWindow,
    backfill_windows,
    export_base_url,
    incremental_window,
    new_spool_dir,
    rate_limiter_for,
)
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

__all__ = ["CollectStats", "ExportError", "mixpanel_source"]


@dlt.source(name="mixpanel", max_table_nesting=0)
def mixpanel_source(
    event_names: Sequence[str] = dlt.config.value,
    project_id: str | None = None,
    service_account_username: str | None = None,
    service_account_secret: TSecretStrValue | None = None,
    api_secret: TSecretStrValue | None = None,
    region: str = "us",
    export_url: str | None = None,
    project_timezone: str = "UTC",
    late_arrival_days: int = DEFAULT_LATE_ARRIVAL_DAYS,
    processing_margin_minutes: int = DEFAULT_PROCESSING_MARGIN_MINUTES,
    start_date: date | None = None,
    backfill_start: date | None = None,
    backfill_end: date | None = None,
    backfill_days_per_request: int = 1,
    table_name: str = EVENTS_TABLE,
    max_queries_per_second: int = MAX_QUERIES_PER_SECOND,
    max_queries_per_hour: int = MAX_QUERIES_PER_HOUR,
    request_max_attempts: int = 5,
    request_backoff_factor: float = 1.0,
    existing_event_ids: Any = None,
    duckdb_table: str | None = None,
    create_empty_tables: bool = True,
    spool_root: Path | None = None,
    stats: Any = None,
    progress: Any = None,
) -> Any:
    """Raw events of ``event_names`` from the export API, incremental on processing time.

    Args:
        event_names: the events to request, case-sensitive; nothing else is ever requested.
        project_id: Mixpanel project id, sent as ``project_id`` (required with a service account).
        service_account_username, service_account_secret: service-account auth (preferred).
        api_secret: legacy project secret (basic-auth username, empty password).
        region: ``us``, ``eu`` or ``in``; ``export_url`` overrides it.
        project_timezone: timezone of ``from_date``/``to_date`` and of legacy "local epoch" times.
        late_arrival_days: how late, by processing time, an event may arrive and still be collected.
        processing_margin_minutes: how far before the cursor each run re-asks (overlap is deduplicated).
        start_date: the first day to collect when there is no state yet (default: yesterday).
        backfill_start, backfill_end: export these days instead, in slices, without touching the cursor.
        existing_event_ids: ``(start, end) -> Iterator[pa.Table]`` of event ids already stored with
            an event time in that range; they are skipped.
        duckdb_table: with a DuckDB destination, the raw table's qualified name there. The new
            events then load as a SQL model that DuckDB runs straight from the spooled export at
            load time (no Arrow or parquet round trip), skipping ids already in that table. The
            spool must outlive the load, so it goes under ``spool_root``, which the caller removes.
        create_empty_tables: a run that finds no event (or no reject) still creates the table, with
            an empty batch; off for destinations that should not load an empty file (BigQuery).
        spool_root: where export bodies are spooled (default: a temporary folder per request,
            removed once its events are extracted).
        stats: a ``CollectStats`` to fill in; progress: ``(stage, numbers)`` callback.
    """
    if service_account_username and service_account_secret:
        auth = (service_account_username, service_account_secret)
    elif api_secret:
        auth = (api_secret, "")
    else:
        raise ExportError(
            "no Mixpanel credentials: set MIXPANEL_SERVICE_ACCOUNT_USERNAME and "
            "MIXPANEL_SERVICE_ACCOUNT_SECRET (or the legacy MIXPANEL_API_SECRET)"
        )
    if auth[1] and not project_id:
        raise ExportError("MIXPANEL_PROJECT_ID is required with service-account credentials")
    if duckdb_table and spool_root is None:
        raise ValueError("duckdb_table needs a spool_root that outlives the load")
    base_url = export_base_url(region, export_url)
    run_stats: CollectStats = stats if stats is not None else CollectStats()
    names = sorted(set(event_names))

    # the tables this run yields rows for (a first run that yields none still creates them)
    tables_with_rows: set[str] = set()

    @dlt.resource(name=table_name, write_disposition="append")
    def events() -> Iterator[Any]:
        if names:
            yield from _export(names)
        if create_empty_tables:
            yield from _tables_not_created_yet()

    def _export(names: list[str]) -> Iterator[Any]:
        client = ExportClient(
            base_url=base_url,
            project_id=project_id,
            auth=auth,
            limiter=rate_limiter_for(base_url, project_id or "", max_queries_per_second, max_queries_per_hour),
            max_attempts=request_max_attempts,
            backoff_factor=request_backoff_factor,
            progress=progress,
        )
        if backfill_start is not None:
            windows = backfill_windows(backfill_start, backfill_end or backfill_start, backfill_days_per_request)
            for window in windows:
                yield from _export_window(client, window, names)
            return

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
        max_processing_ms = yield from _export_window(client, window, names)
        # Everything Mixpanel had processed when we asked is now stored: advance the cursor to the
        # later of that moment and the newest processing time seen (robust to clock skew), but not
        # past the margin: a processing time in the future would make later runs skip events.
        requested_ms = int(requested_at.timestamp() * 1000)
        newest_ms = min(max_processing_ms or 0, requested_ms + processing_margin_minutes * 60_000)
        state["processing_cursor_ms"] = max(state.get("processing_cursor_ms") or 0, newest_ms, requested_ms)
        state["last_window"] = {"from_date": window.from_date.isoformat(), "to_date": window.to_date.isoformat()}

    def _tables_not_created_yet() -> Iterator[Any]:
        """An empty batch for each table that has never had rows, so that a warehouse where no
        configured event has happened yet still has the raw and rejects tables (detection reads the
        former, analysts both)."""
        schema = dlt.current.source_schema()
        for name, columns in ((table_name, EVENT_COLUMNS), (REJECTS_TABLE, REJECT_COLUMNS)):
            table = schema.tables.get(name)
            if name in tables_with_rows or (table is not None and has_table_seen_data(table)):
                continue
            arrow_schema = columns_to_arrow(columns, DestinationCapabilitiesContext.generic_capabilities(), "UTC")  # type: ignore[arg-type]
            yield dlt.mark.with_table_name(arrow_schema.empty_table(), name)

    def _export_window(
        client: ExportClient, window: ExportWindow, names: list[str]
    ) -> Generator[Any, None, int | None]:
        spool_dir = new_spool_dir(spool_root)
        try:
            download = client.download(window.params(names), spool_dir)
            run_stats.requests += 1
            run_stats.attempts = client.adapter.attempts
            run_stats.bytes_received += download.bytes_received
            run_stats.windows.append(f"{window.from_date}..{window.to_date}")
            parser = ExportParser(
                download.path,
                event_names=names,
                project_timezone=project_timezone,
                inserted_at=datetime.now(UTC),
            )
            try:
                parser.parse()
                if progress:
                    progress("parse", {"lines": parser.stats.lines, "rejected": parser.stats.rejected})
                time_range = parser.time_range()
                if time_range is not None and existing_event_ids is not None:
                    for batch in existing_event_ids(*time_range):
                        parser.add_existing_keys(batch)
                new_events = parser.count_new_events()
                if new_events and duckdb_table:
                    model_path = spool_dir / "new_events.model"
                    model_path.write_text(str(SqlModel(parser.new_events_model(duckdb_table), "duckdb")))
                    if progress:
                        progress("insert", {"events": new_events})
                    tables_with_rows.add(table_name)
                    yield dlt.mark.with_file_import(str(model_path), "model", new_events)
                elif new_events:
                    tables_with_rows.add(table_name)
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
                    tables_with_rows.add(REJECTS_TABLE)
                    yield dlt.mark.with_table_name(rejects, REJECTS_TABLE)
                run_stats.add(parser.stats)
                return parser.stats.max_processing_ms
            finally:
                parser.close()
        finally:
            if not duckdb_table:  # else the load reads it: the caller removes spool_root afterwards
                shutil.rmtree(spool_dir, ignore_errors=True)

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
