"""Parsing a spooled export: DuckDB reads it, checks every line, keys every event.

DuckDB's ``read_json`` splits on ``\\n`` bytes only (so U+2028, U+2029, U+0085 and ``\\x1c`` inside
strings stay data) and keeps ``properties`` as raw JSON text. The new events reach dlt either as
one SQL ``select`` that a DuckDB destination runs straight from the spool, or as streamed Arrow
record batches. Memory stays bounded: the body lives on disk, DuckDB runs with a memory limit and
spills, and batches are streamed. No line, whatever its shape, fails a load: each is an event or a
reject. A body mostly of lines that are no export line at all (an HTML page, a JSON error object)
is not an export, though (``ParseStats.not_an_export``): the download refuses it and asks again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import orjson
import pyarrow as pa

from mixpanel_alerts.core.sql import sql_string
from mixpanel_alerts.core.times import utc

from .client import NotAnExport
from .settings import (
    MAX_REJECT_LINE_CHARS,
)

ReadMode = Literal["narrow", "full", "objects"]
ARROW_BATCH_ROWS = 100_000
# DuckDB's JSON readers refuse a longer line; such a line is a reject (Mixpanel's events are < 1 MB)
MAX_LINE_BYTES = 32 << 20
# A processing time later than the answer's arrival by more than this (clocks differ) is in the future.
FUTURE_TOLERANCE = timedelta(minutes=1)

# The reasons of lines that are no export line at all (the odd bad event is rejected for its
# values instead): a body mostly of these is not an export (ParseStats.not_an_export).
NOT_JSON = "not valid JSON"
NOT_AN_OBJECT = "not a JSON object"
NO_EVENT_OR_PROPERTIES = 'an object without "event" or "properties"'
FOREIGN_REASONS = frozenset({NOT_JSON, NOT_AN_OBJECT, NO_EVENT_OR_PROPERTIES})


@dataclasses.dataclass
class ParseStats:
    lines: int = 0
    valid: int = 0
    rejected: int = 0
    ignored: int = 0  # events of names that were not requested
    duplicates_in_export: int = 0
    already_stored: int = 0
    new_events: int = 0
    # lines that are no export line (FOREIGN_REASONS), and the first one whose number is known
    foreign: int = 0
    first_foreign_line: int | None = None
    # requested events processed later than the answer arrived (plus FUTURE_TOLERANCE)
    future: int = 0
    max_processing_ms: int | None = None  # of the requested events
    # requested events with a processing time, and the 25th, 50th and 75th percentiles of their
    # processing time minus `time` as exported (window.exported_time_offset reads them)
    gap_events: int = 0
    gap_quartiles_ms: tuple[int, int, int] | None = None

    def not_an_export(self) -> NotAnExport | None:
        """Why these lines are not an export, or None. Rejects are for the odd bad line: a body is
        not an export when the lines that are no export line at all (not JSON, not an object, an
        object without "event" or "properties": an HTML page, a JSON error object, plain text) are
        at least as many as the rest. A body with no line (empty or blank) is an export of no event."""
        if self.foreign and self.foreign >= self.lines - self.foreign:
            return NotAnExport(f"{self.foreign:,} of {self.lines:,} lines are not events", self.first_foreign_line or 1)
        return None


# ParseStats fields that CollectStats.add sums over a run's exports
_SUMMED = (
    *("lines", "valid", "rejected", "ignored", "duplicates_in_export", "already_stored", "new_events"),
    *("foreign", "future"),
)


# The properties an event's key and checks need, in the order ``picked`` lists them.
_KEY_PROPERTIES = ("time", "distinct_id", "$insert_id", "mp_processing_time_ms")


# A usable `time` is a positive number of seconds or milliseconds before 9999-12-30 (NaN, infinity
# and 1e30 are not: they cannot become a timestamp; the margin leaves room for a legacy project's
# timezone shift and the padding of the stored-ids lookup).
_LAST_MS = 253402128000000  # 9999-12-30 00:00:00 UTC
_USABLE_TIME = f"coalesce(event_time > 0 and event_time <= {_LAST_MS}, false)"
_REJECT_REASON = f"""case
            when event_name is null and properties is null then '{NO_EVENT_OR_PROPERTIES}'
            when event_name is null or event_name = '' then 'no event name'
            when not event_is_text then 'event name is not a string'
            when properties is null then 'no properties'
            when not {_USABLE_TIME} then 'no usable properties.time'
        end"""


def _timestamptz_literal(moment: datetime) -> str:
    return f"'{utc(moment).isoformat()}'::timestamptz"


def _export_rows_query(path: Path, event_names: Sequence[str], *, mode: ReadMode = "full", checks: bool = True) -> str:
    """Every line of the spool, typed, checked and keyed: one ``select``. The scratch database
    reads it as a view (each query re-reads the file, which is cheaper than materializing the wide
    ``properties`` column), and the DuckDB destination runs it inside the load's ``insert``.

    ``mode``:

    - ``narrow`` reads only the four properties the key needs, as JSON values, instead of the whole
      ``properties`` text: about half the work. Its keys equal the full read's for lines that are
      usable events with an ``$insert_id``; the rest (an event keyed by its whole properties, a
      rejected line kept as text) needs the full read, and so does a line DuckDB cannot type this
      way (``properties`` not an object, a repeated key), which fails the narrow read.
    - ``full`` reads ``event`` and the whole ``properties`` text with ``read_json``.
    - ``objects`` reads each line as one JSON value and extracts the same two fields, for a file
      that ``read_json`` cannot type (a repeated top-level key): slower, the same keys.

    ``checks=False`` leaves out the reject checks, for a second read of a file whose first read
    found every line usable. DuckDB pushes a filter below the projection that computes ``picked``
    by copying its expressions, so a filter on ``reject_reason`` parses every ``properties`` twice
    more: without it the insert takes about two thirds of the time."""
    quoted = sql_string(str(path))
    names = ", ".join(sql_string(name) for name in event_names) or "null"
    reject_reason = _REJECT_REASON if checks else "null::varchar"
    paths = ", ".join(sql_string(f'$."{field}"') for field in _KEY_PROPERTIES)
    if mode == "objects":
        # dlt hands the insert to sqlglot, which writes json_extract as the -> operator; DuckDB
        # reads `a -> b` inside a function's arguments as a lambda, so each extraction stands alone
        # in its select list
        source = f"""
    select event_name, event_is_text, properties, json_extract_string(properties, [{paths}]) as picked
    from (
        select
            json_extract_string(extracted_event, '$') as event_name,
            coalesce(json_type(extracted_event) = 'VARCHAR', false) as event_is_text,
            nullif(extracted_properties, 'null') as properties
        from (
            select
                json_extract(line, '$.event') as extracted_event,
                json_extract(line, '$.properties') as extracted_properties
            from read_ndjson_objects({quoted}, maximum_object_size = {MAX_LINE_BYTES}) as lines (line)
        )
    )"""
    else:
        if mode == "narrow":
            fields = ", ".join(f'"{field}" JSON' for field in _KEY_PROPERTIES)
            properties_type = sql_string(f"STRUCT({fields})")
            picked = "[" + ", ".join(f"properties.\"{field}\" ->> '$'" for field in _KEY_PROPERTIES) + "]"
        else:
            properties_type = "'JSON'"
            picked = f"json_extract_string(properties, [{paths}])"
        # `event` read as JSON, not VARCHAR, which would turn `"event": true` into the name "true"
        source = f"""
    select
        json_extract_string(event, '$') as event_name,
        coalesce(json_type(event) = 'VARCHAR', false) as event_is_text,
        properties,
        {picked} as picked
    from read_json(
        {quoted}, format = 'newline_delimited', maximum_object_size = {MAX_LINE_BYTES},
        columns = {{event: 'JSON', properties: {properties_type}}}
    )"""
    return f"""
with source as ({source}
),
typed as (
    select
        event_name,
        event_is_text,
        properties,
        try_cast(picked[1] as double) as event_time,
        picked[2] as distinct_id,
        picked[3] as insert_id,
        try_cast(picked[4] as bigint) as processing_ms
    from source
),
checked as (
    select
        -- a processing time that cannot be a timestamp is dropped, not trusted with the cursor
        * replace (case when processing_ms between 0 and {_LAST_MS} then processing_ms end as processing_ms),
        {reject_reason} as reject_reason,
        coalesce(event_name in ({names}), false) as requested,
        -- `time` is in ms when asked with time_in_ms (any value past 1e11 cannot be seconds)
        case
            when {_USABLE_TIME} then round(event_time * case when event_time >= 1e11 then 1 else 1000 end)::bigint
        end as time_ms
    from typed
)
select
    *,
    case
        when reject_reason is not null then null
        when insert_id is not null
            then md5(concat_ws(chr(31), event_name, coalesce(distinct_id, ''), time_ms::varchar, insert_id))
        else md5(concat_ws(chr(31), event_name, properties::varchar))
    end as event_id
from checked
"""


_EXPORT_KEYS_SQL = """
create or replace table export_keys as
select
    event_id,
    reject_reason,
    requested,
    time_ms,
    processing_ms,
    insert_id is not null as keyed_by_insert_id,
    case
        when reject_reason is not null then json_object('event', event_name, 'properties', properties)::varchar
    end as rejected_line
from export_rows
"""

_NEW_EVENTS_SQL = """
select
    event_id,
    event_name,
    {event_timestamp} as event_timestamp,
    distinct_id,
    insert_id,
    {properties} as properties,
    make_timestamptz(processing_ms * 1000) as mp_processing_time,
    {inserted_at} as inserted_at
from export_rows
where reject_reason is null and requested and event_id not in ({existing_ids})
"""
# Only when the export repeats an event: keep one copy (a window needs all rows at once, so the
# common case, an export without repeats, streams without it).
_FIRST_COPY = "qualify row_number() over (partition by event_id) = 1"


@dataclasses.dataclass
class CollectStats:
    """What one run did, for its summary line."""

    requests: int = 0
    attempts: int = 0
    bytes_received: int = 0
    windows: list[str] = dataclasses.field(default_factory=list)
    parse: ParseStats = dataclasses.field(default_factory=ParseStats)
    # what the user should know about this run's data, each said once (the run prints them as notes)
    notes: list[str] = dataclasses.field(default_factory=list)
    noted: set[str] = dataclasses.field(default_factory=set)  # the kinds of notes taken (``note``)

    def add(self, other: ParseStats) -> None:
        for name in _SUMMED:
            setattr(self.parse, name, getattr(self.parse, name) + getattr(other, name))
        newest = [value for value in (self.parse.max_processing_ms, other.max_processing_ms) if value is not None]
        self.parse.max_processing_ms = max(newest) if newest else None

    def note(self, kind: str, text: str) -> None:
        """Add a note unless one of this ``kind`` was added in this run (said once, though each
        export request of a backfill or history finds it again)."""
        if kind not in self.noted:
            self.noted.add(kind)
            self.notes.append(text)


class ExportParser:
    """Turns one spooled export into event batches and rejects, in a scratch DuckDB.

    Two passes over the spool: a narrow one (keys, reject reasons, times) that is materialized,
    and a wide one that streams the new events out as Arrow batches.
    """

    def __init__(
        self,
        spool_path: Path,
        *,
        event_names: Sequence[str],
        project_timezone: str,
        inserted_at: datetime,
        memory_limit: str = "512MB",
    ) -> None:
        self.spool_path = spool_path
        self.event_names = list(event_names)
        self.project_timezone = project_timezone
        self.inserted_at = inserted_at
        self.stats = ParseStats()
        self.rejects: list[dict[str, Any]] = []
        self._time_ms: list[int | None] = [None, None]
        self.readable_path = spool_path  # the file the events are read from (without unreadable lines)
        self.readable_lines_usable = False  # whether the first read found no reject in that file
        self.read_mode: ReadMode = "full"  # how the events are read from it
        self.con = duckdb.connect(":memory:")
        self.con.execute(
            f"set memory_limit = '{memory_limit}'; set threads = {min(os.cpu_count() or 1, 4)}; "
            f"set temp_directory = '{spool_path.parent / 'spill'}'; set preserve_insertion_order = false; "
            "set TimeZone = 'UTC'"
        )
        self.con.execute("create table existing (event_id varchar)")
        self._existing_rows = 0

    def close(self) -> None:
        self.con.close()

    def parse(self) -> None:
        """First pass: keys and checks of every line; lines DuckDB cannot read become rejects."""
        try:
            self._read(self.spool_path, mode="narrow")
            needs_full_read = self.con.execute(
                "select count(*) from export_keys "
                "where reject_reason is not null or (requested and not keyed_by_insert_id)"
            ).fetchall()[0][0]
        except duckdb.Error:
            needs_full_read = True
        if needs_full_read:
            try:
                self._read(self.spool_path)
            except duckdb.Error:
                readable = self._separate_unreadable_lines()
                try:
                    self._read(readable)
                except duckdb.Error:  # JSON objects read_json cannot type: a repeated top-level key
                    try:
                        self._read(readable, mode="objects")
                    except duckdb.Error:  # no line may stop the load: find the ones DuckDB cannot read
                        self._read(self._separate_lines_duckdb_cannot_read(readable), mode="objects")
        future_ms = int((self.inserted_at + FUTURE_TOLERANCE).timestamp() * 1000)
        row = self.con.execute(
            f"""
            select
                count(*),
                count(*) filter (where reject_reason is null and requested),
                count(*) filter (where reject_reason is null and not requested),
                max(processing_ms) filter (where reject_reason is null and requested),
                count(*) filter (where reject_reason is null and requested and processing_ms > {future_ms}),
                count(processing_ms) filter (where reject_reason is null and requested),
                quantile_disc(processing_ms - time_ms, [0.25, 0.5, 0.75])
                    filter (where reject_reason is null and requested and processing_ms is not null),
                min(time_ms) filter (where reject_reason is null and requested),
                max(time_ms) filter (where reject_reason is null and requested)
            from export_keys
            """
        ).fetchall()[0]
        lines, self.stats.valid, self.stats.ignored, self.stats.max_processing_ms, *rest = row
        self.stats.future, self.stats.gap_events, quartiles, *self._time_ms = rest
        self.stats.gap_quartiles_ms = tuple(quartiles) if quartiles else None
        self.stats.lines += lines
        rejected = self.con.execute(
            "select rejected_line, reject_reason from export_keys where reject_reason is not null"
        ).fetchall()
        for line, reason in rejected:
            self._reject(line, reason, None)
        self.stats.rejected = len(self.rejects)
        self.readable_lines_usable = not rejected

    def _read(self, path: Path, *, mode: ReadMode = "full") -> None:
        rows = _export_rows_query(path, self.event_names, mode=mode)
        self.con.execute(f"create or replace view export_rows as {rows}")
        self.con.execute(_EXPORT_KEYS_SQL)
        self.readable_path = path
        self.read_mode = "objects" if mode == "objects" else "full"

    def _separate_unreadable_lines(self) -> Path:
        """Split on ``\\n`` bytes only; keep JSON objects, reject the rest with their line number."""
        readable = self.spool_path.with_name("export.readable.jsonl")
        with open(self.spool_path, "rb") as source, open(readable, "wb") as target:
            for number, raw in enumerate(source, start=1):
                line = raw.rstrip(b"\n")
                if not line.strip():
                    continue
                if len(line) > MAX_LINE_BYTES:  # too long to read; an object only if it starts like one
                    too_long = f"longer than {MAX_LINE_BYTES >> 20} MiB"
                    value, reason = None, too_long if line.lstrip().startswith(b"{") else NOT_AN_OBJECT
                else:
                    try:
                        value = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        value, reason = None, NOT_JSON
                    else:
                        reason = NOT_AN_OBJECT
                if not isinstance(value, dict):
                    self._reject(line.decode("utf-8", "replace"), reason, number)
                    self.stats.lines += 1
                    continue
                target.write(line + b"\n")
        return readable

    def _separate_lines_duckdb_cannot_read(self, path: Path) -> Path:
        """The lines of ``path`` that DuckDB reads one JSON value at a time, in a new file; the
        others become rejects. A failing line is found by halving the set of lines until it is alone,
        so a few bad lines cost a few reads, not one per line."""
        offsets = [0]
        with open(path, "rb") as source:
            for raw in source:
                offsets.append(offsets[-1] + len(raw))
        probe = path.with_name("export.probe.jsonl")
        unreadable: list[tuple[int, str]] = []

        def copy_lines(first: int, last: int, target: Path) -> None:
            with open(path, "rb") as source, open(target, "wb") as out:
                source.seek(offsets[first])
                out.write(source.read(offsets[last] - offsets[first]))

        def readable(first: int, last: int) -> str | None:
            copy_lines(first, last, probe)
            try:
                self.con.execute(
                    f"select count(*) from ({_export_rows_query(probe, self.event_names, mode='objects')})"
                ).fetchall()
            except duckdb.Error as exc:
                return str(exc).splitlines()[0]
            return None

        pending = [(0, len(offsets) - 1)]
        while pending:
            first, last = pending.pop()
            error = readable(first, last)
            if error is None:
                continue
            if last - first == 1:
                unreadable.append((first, error))
            else:
                middle = (first + last) // 2
                pending += [(middle, last), (first, middle)]
        probe.unlink(missing_ok=True)
        bad = {index for index, _ in unreadable}
        kept = path.with_name("export.kept.jsonl")
        with open(path, "rb") as source, open(kept, "wb") as out:
            for index, raw in enumerate(source):
                if index not in bad:
                    out.write(raw)
        for index, error in unreadable:
            copy_lines(index, index + 1, probe)
            line = probe.read_bytes().rstrip(b"\n").decode("utf-8", "replace")
            self._reject(line, f"DuckDB cannot read it: {error}"[:500], None)
            self.stats.lines += 1
        probe.unlink(missing_ok=True)
        return kept

    def _reject(self, line: str, reason: str, line_number: int | None) -> None:
        if reason in FOREIGN_REASONS:
            self.stats.foreign += 1
            if line_number is not None and (self.stats.first_foreign_line or line_number) >= line_number:
                self.stats.first_foreign_line = line_number
        self.rejects.append(
            {
                "reject_id": hashlib.md5(line.encode("utf-8", "replace")).hexdigest(),
                "line": line[:MAX_REJECT_LINE_CHARS],
                "line_number": line_number,
                "reason": reason,
                "rejected_at": self.inserted_at,
            }
        )

    def time_range(self) -> tuple[datetime, datetime] | None:
        """Earliest and latest event time among valid events (bounds the existing-key lookup)."""
        low_ms, high_ms = self._time_ms
        if low_ms is None or high_ms is None:
            return None
        # legacy local-epoch times are at most 14 hours away from UTC
        pad = timedelta(hours=15) if self.project_timezone != "UTC" else timedelta(seconds=1)
        return (
            datetime.fromtimestamp(low_ms / 1000, UTC) - pad,
            datetime.fromtimestamp(high_ms / 1000, UTC) + pad,
        )

    def add_existing_keys(self, batch: pa.Table) -> None:
        self.con.register("existing_batch", batch.select(["event_id"]))
        self.con.execute("insert into existing select event_id from existing_batch").fetchall()
        self._existing_rows += batch.num_rows
        self.con.unregister("existing_batch")

    def count_new_events(self) -> int:
        """How many valid, requested events are new: duplicates inside the export and events
        already in the warehouse (``add_existing_keys``) are counted as such."""
        # the second count only when something is stored in the export's time range
        new_keys_sql = (
            "count(distinct event_id) filter (where event_id not in (select event_id from existing))"
            if self._existing_rows
            else "count(distinct event_id)"
        )
        distinct_keys, new_keys = self.con.execute(
            f"select count(distinct event_id), {new_keys_sql} from export_keys "
            "where reject_reason is null and requested"
        ).fetchall()[0]
        self.stats.new_events = new_keys
        self.stats.duplicates_in_export = self.stats.valid - distinct_keys
        self.stats.already_stored = distinct_keys - new_keys
        return int(new_keys)

    def new_events(self) -> Iterator[pa.RecordBatch]:
        """Second pass: the new events (see ``count_new_events``) as Arrow batches."""
        query = self._new_events_query(
            properties="properties::varchar",
            inserted_at="$inserted_at::timestamptz",
            existing_ids="select event_id from existing",
        )
        relation = self.con.sql(query, params={"inserted_at": self.inserted_at})
        yield from relation.to_arrow_reader(ARROW_BATCH_ROWS)

    def new_events_model(self, table: str) -> str:
        """The new events as one ``select`` for a DuckDB destination to run straight from the
        spool: the same rows ``new_events`` streams, without an Arrow or parquet round trip.
        Events already in ``table`` (the qualified raw table) are skipped where it runs, at load
        time. Call after ``count_new_events``."""
        low, high = self.time_range() or (self.inserted_at, self.inserted_at)
        existing_ids = (
            f"select event_id from {table} "
            f"where event_timestamp >= {_timestamptz_literal(low)} and event_timestamp <= {_timestamptz_literal(high)}"
        )
        return self._new_events_query(
            properties="properties", inserted_at=_timestamptz_literal(self.inserted_at), existing_ids=existing_ids
        )

    def _new_events_query(self, *, properties: str, inserted_at: str, existing_ids: str) -> str:
        """The new events, read again from the first read's file and mode (without the checks if it
        found no reject)."""
        if self.project_timezone == "UTC":
            event_timestamp = "make_timestamptz(time_ms * 1000)"
        else:  # legacy "local epoch": the wall-clock time in the project's timezone, written as if UTC
            event_timestamp = f"timezone({sql_string(self.project_timezone)}, make_timestamp(time_ms * 1000))"
        query = _NEW_EVENTS_SQL.format(
            event_timestamp=event_timestamp,
            properties=properties,
            inserted_at=inserted_at,
            existing_ids=existing_ids,
        )
        if self.stats.duplicates_in_export:
            query += _FIRST_COPY
        rows = _export_rows_query(
            self.readable_path, self.event_names, mode=self.read_mode, checks=not self.readable_lines_usable
        )
        return f"with export_rows as ({rows})\n{query}"


def new_spool_dir(parent: Path | None = None) -> Path:
    return Path(tempfile.mkdtemp(prefix="mixpanel-export-", dir=parent))


def answer_check(event_names: Sequence[str], project_timezone: str) -> Callable[[Path], NotAnExport | None]:
    """An ``accept`` check for a download that keeps nothing (``check``): each spooled body is
    parsed, judged an export or not, and let go."""

    def accept(path: Path) -> NotAnExport | None:
        parser = ExportParser(
            path, event_names=event_names, project_timezone=project_timezone, inserted_at=datetime.now(UTC)
        )
        try:
            parser.parse()
            return parser.stats.not_an_export()
        finally:
            parser.close()

    return accept
