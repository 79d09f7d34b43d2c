"""The pipeline entry: one collect (or backfill) run of the Mixpanel source into the warehouse.

dlt keeps the cursor in the destination (``_dlt_pipeline_state``), committed with each load, and
every run starts from a fresh local working folder that it restores from there. So a cron job, a
cloud job with a fresh working directory and a laptop behave the same, and local state never
lands in the source tree.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

import dlt
import pyarrow as pa
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.destinations.adapters import bigquery_adapter
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from mixpanel_alerts.core.config import Settings
from mixpanel_alerts.core.credentials import MixpanelCredentials, mixpanel_credentials
from mixpanel_alerts.core.events_config import EventsConfig
from mixpanel_alerts.core.scratch import scratch_dir
from mixpanel_alerts.core.warehouse import pipeline_for, single_writer

from .mixpanel import CollectStats, HistoryReport, LoadOptions, mixpanel_source
from .mixpanel.client import ProgressCallback
from .mixpanel.settings import CLUSTER_COLUMNS, PARTITION_COLUMN
from .mixpanel.window import backfill_windows


@dataclasses.dataclass
class CollectSummary:
    stats: CollectStats
    seconds: float
    history: HistoryReport = dataclasses.field(default_factory=HistoryReport)

    @property
    def duplicates_skipped(self) -> int:
        return self.stats.parse.duplicates_in_export + self.stats.parse.already_stored

    def line(self) -> str:
        parse = self.stats.parse
        rate = parse.new_events / self.seconds if self.seconds else 0.0
        return (
            f"collected {parse.new_events:,} new events ({parse.lines:,} lines, "
            f"{self.stats.bytes_received / 1e6:,.1f} MB) in {self.seconds:.1f} s ({rate:,.0f} events/s): "
            f"loaded {parse.new_events:,}, duplicates skipped {self.duplicates_skipped:,}, "
            f"rejected {parse.rejected:,}, not requested {parse.ignored:,}; "
            f"{self.stats.requests} export request(s), {self.stats.attempts} attempt(s), "
            f"window {', '.join(self.stats.windows) or 'none'}"
        )

    def newest_processed_at(self, now: datetime) -> datetime | None:
        """Mixpanel's processing time of the newest event this collect fetched (never after
        ``now``: a processing time from the future says nothing of freshness)."""
        newest_ms = self.stats.parse.max_processing_ms
        if newest_ms is None:
            return None
        return min(datetime.fromtimestamp(newest_ms / 1000, UTC), now)

    def notes(self) -> list[str]:
        """What the user should know about the data this run collected (said once each)."""
        return list(dict.fromkeys([*self.stats.notes, *self.history.stats.notes]))

    @property
    def history_complete(self) -> bool:
        """Whether no event waits for history (none was new, or all of it is stored)."""
        return not self.history.days_left and self.history.error is None

    def history_line(self) -> str | None:
        """What this collect did for the history of newly enabled events; None if there was none.

        e.g. ``history: fetched 29 days for 1 new event (checkout_completed): 4,210 events, 29 requests``
        """
        history = self.history
        if not history.days_fetched and self.history_complete:
            return None
        names = sorted(history.names or history.pending)
        what = f"{len(names)} new event{'' if len(names) == 1 else 's'} ({', '.join(names)})"
        line = (
            f"history: fetched {history.days_fetched} day{'' if history.days_fetched == 1 else 's'} for {what}: "
            f"{history.stats.parse.new_events:,} events, {history.stats.requests} request(s)"
        )
        if history.attempts != history.stats.requests:
            line += f", {history.attempts} attempt(s)"
        if history.error is not None:
            line += f"; stopped at {history.error}; the next run resumes it ({history.days_left} day(s) left)"
        elif history.days_left:
            line += (
                f"; {history.days_left} day(s) left for the next runs (history takes at most "
                f"{history.queries_per_hour} of Mixpanel's export queries an hour)"
            )
        return line


def collect(
    settings: Settings,
    events_config: EventsConfig,
    *,
    progress: ProgressCallback | None = None,
    backfill: tuple[date, date] | None = None,
) -> CollectSummary:
    """Export the enabled events and load the new ones into the raw table, then the history that
    events enabled since the last runs still miss. A backfill or history loads one day per run of
    the pipeline: each day is stored (with the state that says so) before the next is asked for."""
    started = datetime.now()
    credentials = mixpanel_credentials(settings)
    stats = CollectStats()
    history = HistoryReport()
    with single_writer(settings), pipeline_for(settings) as pipeline:
        run = functools.partial(_run_source, pipeline, settings, events_config, credentials)
        if backfill:
            windows = backfill_windows(*backfill, days_per_request=1)
            for number, window in enumerate(windows, start=1):
                if progress is not None:  # "day": which day is asked for (its ordinal), of how many
                    progress("day", {"day": window.from_date.toordinal(), "number": number, "days": len(windows)})
                run(LoadOptions(stats=stats, progress=progress), backfill=(window.from_date, window.to_date))
        else:
            run(LoadOptions(stats=stats, progress=progress, history=history))
            _fetch_history(run, history)
    return CollectSummary(stats=stats, seconds=(datetime.now() - started).total_seconds(), history=history)


def _fetch_history(run: Callable[..., None], history: HistoryReport) -> None:
    """One day at a time while history is left, the hour's budget allows and nothing failed."""
    while history.days_left and history.budget_left > 0 and history.error is None:
        fetched = history.days_fetched
        run(LoadOptions(stats=history.stats, history=history), history=True)
        if history.days_fetched == fetched:
            return  # nothing was asked (budget used up meanwhile) or the request failed


def _run_source(
    pipeline: dlt.Pipeline,
    settings: Settings,
    events_config: EventsConfig,
    credentials: MixpanelCredentials,
    options: LoadOptions,
    *,
    backfill: tuple[date, date] | None = None,
    history: bool = False,
) -> None:
    with scratch_dir("spool") as spool_root:
        options.spool_root = spool_root
        options.existing_event_ids = _existing_event_ids(settings, pipeline)
        if settings.warehouse == "duckdb":
            # DuckDB loads the new events straight from the spooled export (see the source)
            options.duckdb_table = pipeline.sql_client().make_qualified_table_name(settings.table)
        else:
            # an empty load file is a risk on BigQuery; detection copes with a missing raw table
            options.create_empty_tables = False
        source = mixpanel_source(
            credentials,
            event_names=events_config.enabled_names,
            region=settings.region,
            export_url=settings.export_url,
            project_timezone=settings.project_timezone,
            late_arrival_days=settings.late_arrival_days,
            start_date=settings.start_date,
            backfill=backfill,
            history=history,
            table_name=settings.table,
            load=options,
        )
        if settings.warehouse == "bigquery":
            bigquery_adapter(source.resources[settings.table], partition=PARTITION_COLUMN, cluster=CLUSTER_COLUMNS)
            # BigQuery cannot load a JSON column from parquet: it gets JSON lines
            pipeline.run(source, loader_file_format="jsonl")
        else:
            # the SQL model's insert names the raw table's columns; no _dlt_load_id column
            dlt.config["normalize.model_normalizer.add_dlt_load_id"] = False
            pipeline.run(source)


def _existing_event_ids(
    settings: Settings, pipeline: dlt.Pipeline
) -> Callable[[datetime, datetime], Iterator[pa.Table]]:
    missing_table: tuple[type[Exception], ...] = (DatabaseUndefinedRelation, DestinationUndefinedEntity)
    if settings.warehouse == "bigquery":
        from google.api_core.exceptions import NotFound

        # raised while the rows are fetched, past dlt's translation of query errors
        missing_table += (NotFound,)

    def existing_event_ids(start: datetime, end: datetime) -> Iterator[pa.Table]:
        """Event ids already stored with an event time in [start, end]; the filter prunes BigQuery
        partitions, so this reads only the days being exported."""
        with pipeline.sql_client() as client:
            if not client.has_dataset():
                return  # first load: nothing stored yet
            table = client.make_qualified_table_name(settings.table)
            query = f"select event_id from {table} where event_timestamp >= %s and event_timestamp <= %s"
            try:
                with client.execute_query(query, start, end) as cursor:
                    yield from cursor.iter_arrow(chunk_size=500_000)
            except missing_table:
                return  # the dataset exists (made by dlt for another table, or by you), the table not yet

    return existing_event_ids
