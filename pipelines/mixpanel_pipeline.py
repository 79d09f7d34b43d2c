"""The pipeline entry: one collect (or backfill) run of the Mixpanel source into the warehouse.

dlt keeps the cursor in the destination (``_dlt_pipeline_state``), committed with each load, and
every run starts from a fresh local working folder that it restores from there. So a cron job, a
cloud job with a fresh working directory and a laptop behave the same, and local state never
lands in the source tree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import date, datetime

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

from .mixpanel import CollectStats, LoadOptions, mixpanel_source
from .mixpanel.client import ProgressCallback
from .mixpanel.settings import CLUSTER_COLUMNS, PARTITION_COLUMN
from .mixpanel.window import backfill_windows


@dataclasses.dataclass
class CollectSummary:
    stats: CollectStats
    seconds: float

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


def collect(
    settings: Settings,
    events_config: EventsConfig,
    *,
    progress: ProgressCallback | None = None,
    backfill: tuple[date, date] | None = None,
) -> CollectSummary:
    """Export the enabled events and load the new ones into the raw table. A backfill loads one
    day per run: each day is stored before the next is asked for."""
    started = datetime.now()
    credentials = mixpanel_credentials(settings)
    stats = CollectStats()
    days: list[tuple[date, date] | None] = (
        [(window.from_date, window.to_date) for window in backfill_windows(*backfill, days_per_request=1)]
        if backfill
        else [None]
    )
    with single_writer(settings):
        for day in days:
            _collect_once(settings, events_config, credentials, LoadOptions(stats=stats, progress=progress), day)
    return CollectSummary(stats=stats, seconds=(datetime.now() - started).total_seconds())


def _collect_once(
    settings: Settings,
    events_config: EventsConfig,
    credentials: MixpanelCredentials,
    options: LoadOptions,
    backfill: tuple[date, date] | None,
) -> None:
    with scratch_dir("spool") as spool_root, pipeline_for(settings) as pipeline:
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
