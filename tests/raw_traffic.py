"""Raw tables written with SQL, for the tests that need days of traffic without an export: a
DuckDB file's (minutes with a daily rhythm, bursts, outages, coverage) and a BigQuery dataset's
(one event's minutes, on the emulator)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from tests.alert_runs import ERRORS


def write_raw(database: Path, sql: str) -> None:
    with duckdb.connect(str(database)) as con:
        con.execute("set TimeZone = 'UTC'")
        con.execute(sql)


RAW_TABLE = """
create schema if not exists mixpanel_data;
create table if not exists mixpanel_data.mixpanel_events (
    event_id varchar, event_name varchar, event_timestamp timestamptz, distinct_id varchar,
    insert_id varchar, properties json, mp_processing_time timestamptz, inserted_at timestamptz
);
create table if not exists mixpanel_data.event_coverage (
    event_name varchar, collected_from timestamptz, updated_at timestamptz
);
"""


def traffic(name: str, start: datetime, end: datetime, rate: float, tag: str, seed: float = 0.1) -> str:
    """An insert of about ``rate`` events a minute (a daily rhythm, deterministic noise) in [start, end)."""
    minutes = int((end - start).total_seconds() // 60)
    return f"""
select setseed({seed});
insert into mixpanel_data.mixpanel_events
with minutes as (
    select minute_index, timestamptz '{start:%Y-%m-%d %H:%M:%S}+00' + to_minutes(minute_index) as minute_at
    from range({minutes}) as t(minute_index)
),
counted as (
    select minute_index, minute_at,
        greatest(0, round({rate} * (1 + 0.6 * sin(2 * pi() * date_part('hour', minute_at) / 24.0))
                          + 2 * (random() - 0.5)))::int as n
    from minutes
),
spread as (select minute_index, minute_at, n, unnest(range(n)) as k from counted where n > 0)
select '{name}-{tag}-' || minute_index::varchar || '-' || k::varchar, '{name}',
    minute_at + to_milliseconds(k * 997 % 59000), 'user', null, '{{}}'::json,
    minute_at + to_milliseconds(k * 997 % 59000) + interval 5 second, now()
from spread;
"""


def burst(name: str, at: datetime, count: int, tag: str) -> str:
    return f"""
insert into mixpanel_data.mixpanel_events
select '{name}-{tag}-' || k::varchar, '{name}', timestamptz '{at:%Y-%m-%d %H:%M:%S}+00' + to_milliseconds(k),
    'user', null, '{{}}'::json, timestamptz '{at:%Y-%m-%d %H:%M:%S}+00' + interval 5 second, now()
from range({count}) as t(k);
"""


def outage(name: str, start: datetime, end: datetime) -> str:
    return f"""
delete from mixpanel_data.mixpanel_events
where event_name = '{name}' and event_timestamp >= timestamptz '{start:%Y-%m-%d %H:%M:%S}+00'
    and event_timestamp < timestamptz '{end:%Y-%m-%d %H:%M:%S}+00';
"""


def coverage(name: str, since: datetime) -> str:
    return f"""
delete from mixpanel_data.event_coverage where event_name = '{name}';
insert into mixpanel_data.event_coverage values ('{name}', timestamptz '{since:%Y-%m-%d %H:%M:%S}+00', now());
"""


def stamp(moment: datetime) -> str:
    """A BigQuery timestamp literal (UTC)."""
    return f"timestamp '{moment.strftime('%Y-%m-%d %H:%M:%S')}+00'"


def write_minutes(bigquery: Any, dataset: str, start: datetime, end: datetime, per_minute: str) -> None:
    """ERRORS' raw table: ``per_minute`` events (SQL over ``minute_at``) at each minute from ``start``
    to ``end``, and its coverage from ``start``."""
    bigquery.query(
        f"""create table {dataset}.mixpanel_events as
        select
            concat('e', cast(unix_seconds(minute_at) as string), '-', cast(second as string)) as event_id,
            '{ERRORS}' as event_name,
            timestamp_add(minute_at, interval second second) as event_timestamp,
            'user' as distinct_id, cast(null as string) as insert_id, json '{{}}' as properties,
            minute_at as mp_processing_time, minute_at as inserted_at
        from unnest(generate_timestamp_array({stamp(start)}, {stamp(end)}, interval 1 minute)) as minute_at
        cross join unnest(generate_array(1, {per_minute})) as second"""
    ).result()
    bigquery.query(
        f"create table {dataset}.event_coverage as select '{ERRORS}' as event_name, "
        f"{stamp(start)} as collected_from, current_timestamp() as updated_at"
    ).result()
