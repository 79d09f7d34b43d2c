"""Constants of Mixpanel's Raw Event Export API."""

from __future__ import annotations

EXPORT_HOSTS = {
    "us": "https://data.mixpanel.com",
    "eu": "https://data-eu.mixpanel.com",
    "in": "https://data-in.mixpanel.com",
}
EXPORT_PATH = "/api/2.0/export"

# Mixpanel's documented limits for the export endpoint, per project; retries count too.
MAX_QUERIES_PER_SECOND = 3
MAX_QUERIES_PER_HOUR = 60

# Offline mobile clients may deliver events up to five days late.
DEFAULT_LATE_ARRIVAL_DAYS = 5
# Events processed shortly before the previous run may become visible in the export only after it;
# each run re-asks for this many minutes of processing time before its cursor (merge keeps it exact).
DEFAULT_PROCESSING_MARGIN_MINUTES = 30

# An event enabled after the first run gets this many days of history before today (and today so
# far), one day per request: the baseline detector learns from up to 28 days.
HISTORY_DAYS = 28
# History loads a week of days at a time (each still one request): what a load holds is then about
# the size of a scheduled collect's (late-arrival days of all events), and a kill loses at most it.
HISTORY_DAYS_PER_LOAD = 7
# History (and backfill) queries may take this many of Mixpanel's 60 an hour, counted across runs
# in the resource state; the rest stays for the scheduled collects and their retries.
HISTORY_QUERIES_PER_HOUR = 40

# Mixpanel retires project-secret authentication for the export API on this day.
LEGACY_SECRET_RETIREMENT = "2027-03-03"

TERMINATED_EARLY_MARKER = b"export terminated early"

EVENTS_TABLE = "mixpanel_events"
REJECTS_TABLE = "mixpanel_rejects"
COVERAGE_TABLE = "event_coverage"

# The raw table's columns. `properties` holds every property, unflattened, as JSON. On BigQuery
# the table is partitioned by day of `event_timestamp` and clustered by `event_name`,
# `event_timestamp`, then `inserted_at`: the pipeline entry applies dlt's bigquery_adapter there (PARTITION_COLUMN,
# CLUSTER_COLUMNS).
EVENT_COLUMNS = {
    "event_id": {"data_type": "text", "nullable": False, "primary_key": True, "unique": True},
    "event_name": {"data_type": "text", "nullable": False},
    "event_timestamp": {"data_type": "timestamp", "nullable": False, "timezone": True},
    "distinct_id": {"data_type": "text"},
    "insert_id": {"data_type": "text"},
    "properties": {"data_type": "json"},
    "mp_processing_time": {"data_type": "timestamp", "timezone": True},
    "inserted_at": {"data_type": "timestamp", "nullable": False, "timezone": True},
}

# BigQuery: queries by event time prune days; by event name, blocks; within an event, blocks are
# in event-time order, so a detection run's count of the minutes since the last one (event time at
# or after a literal) reads the newest blocks of the day, not the day. inserted_at last: a load
# lands in blocks of its own until BigQuery re-clusters, and rises with event time but for late
# events, so the read of the rows loaded since the last run (int_detection_changes) skips most
# blocks too. A table created before keeps its clustering until changed (README, "Cost on BigQuery").
PARTITION_COLUMN = "event_timestamp"
CLUSTER_COLUMNS = ["event_name", "event_timestamp", "inserted_at"]

REJECT_COLUMNS = {
    "reject_id": {"data_type": "text", "nullable": False, "primary_key": True},
    "line": {"data_type": "text"},
    "line_number": {"data_type": "bigint"},
    "reason": {"data_type": "text", "nullable": False},
    "from_date": {"data_type": "date"},
    "to_date": {"data_type": "date"},
    "rejected_at": {"data_type": "timestamp", "nullable": False, "timezone": True},
}
# A rejected line is kept up to this many characters.
MAX_REJECT_LINE_CHARS = 65_536

# Per event, the instant from which its data is complete: minutes before it are unknown, not quiet.
COVERAGE_COLUMNS = {
    "event_name": {"data_type": "text", "nullable": False, "primary_key": True},
    "collected_from": {"data_type": "timestamp", "nullable": False, "timezone": True},
    "updated_at": {"data_type": "timestamp", "nullable": False, "timezone": True},
}
