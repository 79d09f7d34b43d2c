"""The export client: the request window, rate limits, streaming download and parsing.

The export endpoint answers with JSON lines, not JSON, so dlt's RESTClient does not fit; its
retrying ``requests`` client does. Every attempt (retries included) goes through a rate limiter
mounted as the session's transport adapter, and the body is streamed to a spool file inside a
response hook, so a body cut mid-line or ending in ``export terminated early`` raises inside
``Session.send`` and is retried by the same retry policy as a 429 or a 5xx. Nothing of a failed
response is kept: parsing starts only once a response has arrived whole.

Parsing is DuckDB's ``read_json`` over the spool file: it splits on ``\\n`` bytes only (so U+2028,
U+2029, U+0085 and ``\\x1c`` inside strings stay data) and keeps ``properties`` as raw JSON text.
The new events reach dlt either as one SQL ``select`` that a DuckDB destination runs straight
from the spool, or as streamed Arrow record batches. Memory stays bounded: the body lives on disk,
DuckDB runs with a memory limit and spills, and batches are streamed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import duckdb
import orjson
import pyarrow as pa
from dlt.sources.helpers.requests import Client
from isal import isal_zlib
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.exceptions import ChunkedEncodingError, ConnectionError, ContentDecodingError, Timeout
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError

from .settings import (
    EXPORT_HOSTS,
    EXPORT_PATH,
    MAX_QUERIES_PER_HOUR,
    MAX_QUERIES_PER_SECOND,
    MAX_REJECT_LINE_CHARS,
    TERMINATED_EARLY_MARKER,
)

logger = logging.getLogger("mixpanel_alerts.export")

ProgressCallback = Callable[[str, dict[str, float]], None]
ReadMode = Literal["narrow", "full", "objects"]

SPOOL_CHUNK_BYTES = 1 << 20
ARROW_BATCH_ROWS = 100_000
# DuckDB's JSON readers refuse a longer line; such a line is a reject (Mixpanel's events are < 1 MB)
MAX_LINE_BYTES = 32 << 20


class ExportError(Exception):
    """A failure the user must fix (credentials, project, region, dates); not retried."""


class IncompleteExportError(ConnectionError):
    """The body ended early (cut mid-line or ``export terminated early``); retried."""


@dataclasses.dataclass(frozen=True)
class ExportWindow:
    """What one export request asks for."""

    from_date: date
    to_date: date
    processed_after_ms: int | None = None

    def params(self, event_names: Sequence[str]) -> dict[str, str]:
        params = {
            "from_date": self.from_date.isoformat(),
            "to_date": self.to_date.isoformat(),
            "event": json.dumps(list(event_names)),
            "time_in_ms": "true",
        }
        if self.processed_after_ms is not None:
            params["where"] = f'properties["mp_processing_time_ms"] > {self.processed_after_ms}'
        return params


def export_base_url(region: str, export_url: str | None) -> str:
    if export_url:
        return export_url.rstrip("/")
    try:
        return EXPORT_HOSTS[region]
    except KeyError:
        raise ExportError(
            f"MIXPANEL_REGION={region!r} is not a Mixpanel region; use one of {', '.join(EXPORT_HOSTS)}"
        ) from None


def incremental_window(
    *,
    now: datetime,
    project_timezone: str,
    start_date: date | None,
    late_arrival_days: int,
    cursor_ms: int | None,
    margin_minutes: int,
) -> ExportWindow:
    """The days that can still receive new events, filtered on processing time.

    A cursor on event time loses late events (offline clients deliver up to five days late), so
    the cursor is Mixpanel's processing time: every event processed after ``cursor - margin`` has
    an event time no earlier than ``cursor - margin - late_arrival_days``, which bounds
    ``from_date``. ``to_date`` is today in the project's timezone, never later.
    """
    tz = ZoneInfo(project_timezone)
    today = now.astimezone(tz).date()
    if cursor_ms is None:
        first_day = start_date or today - timedelta(days=1)
        return ExportWindow(min(first_day, today), today, None)
    processed_after_ms = cursor_ms - margin_minutes * 60_000
    earliest = datetime.fromtimestamp(processed_after_ms / 1000, UTC) - timedelta(days=late_arrival_days)
    from_date = earliest.astimezone(tz).date()
    if start_date is not None:
        from_date = max(start_date, from_date)
    return ExportWindow(min(from_date, today), today, processed_after_ms)


def backfill_windows(start: date, end: date, days_per_request: int) -> list[ExportWindow]:
    windows = []
    day = start
    while day <= end:
        last = min(end, day + timedelta(days=days_per_request - 1))
        windows.append(ExportWindow(day, last, None))
        day = last + timedelta(days=1)
    return windows


class RateLimiter:
    """At most ``per_second`` and ``per_hour`` acquisitions in any sliding second and hour.

    The windows are measured here, but Mixpanel counts arrivals, and a request on a new
    connection arrives a few milliseconds after it leaves: each window gets a 10% margin.
    """

    second = 1.1
    hour = 3600 * 1.1

    def __init__(self, per_second: int = MAX_QUERIES_PER_SECOND, per_hour: int = MAX_QUERIES_PER_HOUR) -> None:
        self.per_second = per_second
        self.per_hour = per_hour
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until a query is allowed; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = time.monotonic()
                while self._times and now - self._times[0] >= self.hour:
                    self._times.popleft()
                recent = [at for at in self._times if now - at < self.second]
                delay = 0.0
                if len(self._times) >= self.per_hour:
                    delay = self.hour - (now - self._times[0])
                elif len(recent) >= self.per_second:
                    delay = self.second - (now - recent[0])
                if delay <= 0:
                    self._times.append(now)
                    return waited
            if delay > 5:
                logger.warning("Mixpanel allows %s export queries per hour: waiting %.0f s", self.per_hour, delay)
            time.sleep(delay)
            waited += delay


_limiters: dict[tuple[str, str], RateLimiter] = {}
_limiters_lock = threading.Lock()


def rate_limiter_for(base_url: str, project_id: str, per_second: int, per_hour: int) -> RateLimiter:
    """One limiter per export host and project in this process, shared by every client."""
    with _limiters_lock:
        key = (base_url, project_id)
        limiter = _limiters.get(key)
        if limiter is None or (limiter.per_second, limiter.per_hour) != (per_second, per_hour):
            limiter = _limiters[key] = RateLimiter(per_second, per_hour)
        return limiter


class RateLimitedAdapter(HTTPAdapter):
    """Transport adapter that takes a rate-limit slot before every attempt, retries included."""

    def __init__(self, limiter: RateLimiter) -> None:
        super().__init__()
        self.limiter = limiter
        self.attempts = 0

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        self.limiter.acquire()
        self.attempts += 1
        return super().send(request, *args, **kwargs)


@dataclasses.dataclass
class Download:
    path: Path
    bytes_received: int
    attempts: int


class ExportClient:
    """Downloads one export request whole to a spool file, with dlt's retry policy."""

    def __init__(
        self,
        *,
        base_url: str,
        project_id: str | None,
        auth: tuple[str, str],
        limiter: RateLimiter,
        max_attempts: int = 5,
        backoff_factor: float = 1.0,
        max_retry_delay: float = 300.0,
        request_timeout: float = 300.0,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.url = base_url + EXPORT_PATH
        self.project_id = project_id
        self.progress = progress
        client = Client(
            request_timeout=request_timeout,
            raise_for_status=False,
            exceptions=(ConnectionError, Timeout, ChunkedEncodingError, ContentDecodingError),
            request_max_attempts=max_attempts,
            request_backoff_factor=backoff_factor,
            request_max_retry_delay=max_retry_delay,
        )
        self.session = client.session
        self.adapter = RateLimitedAdapter(limiter)
        self.session.mount("http://", self.adapter)
        self.session.mount("https://", self.adapter)
        self.session.auth = auth
        self.session.headers["Accept-Encoding"] = "gzip"
        self.session.headers["Accept"] = "text/plain"

    def download(self, params: dict[str, str], spool_dir: Path) -> Download:
        if self.project_id:
            params = {**params, "project_id": self.project_id}
        spool_path = spool_dir / "export.jsonl"
        received = {"bytes": 0}

        def spool(response: Response, *args: Any, **kwargs: Any) -> Response:
            if response.status_code != 200:
                response.content  # noqa: B018 - error bodies are small; read them to free the connection
                return response
            received["bytes"] = _spool_body(response, spool_path, self.progress)
            return response

        response = self.session.get(self.url, params=params, stream=True, hooks={"response": spool})
        if response.status_code != 200:
            raise ExportError(explain_http_error(response, params))
        return Download(spool_path, received["bytes"], self.adapter.attempts)


def _spool_body(response: Response, spool_path: Path, progress: ProgressCallback | None) -> int:
    """Write the decompressed body to ``spool_path``; raise IncompleteExportError if it ended early.

    The body is read raw and inflated with ISA-L (about twice as fast as zlib on large exports).
    """
    started = time.monotonic()
    last_report = started
    total = 0
    gzipped = "gzip" in response.headers.get("Content-Encoding", "").lower()
    inflater = isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS) if gzipped else None
    try:
        with open(spool_path, "wb") as spool:
            try:
                for chunk in response.raw.stream(SPOOL_CHUNK_BYTES, decode_content=False):
                    data = inflater.decompress(chunk) if inflater else chunk
                    spool.write(data)
                    total += len(data)
                    now = time.monotonic()
                    if progress and now - last_report >= 1.0:
                        progress("download", {"bytes": total, "seconds": now - started})
                        last_report = now
            except (ProtocolError, ReadTimeoutError, DecodeError) as exc:
                raise IncompleteExportError(f"the export body was cut off: {exc}") from None
            except isal_zlib.error as exc:  # type: ignore[misc]
                raise IncompleteExportError(f"the export body is not valid gzip: {exc}") from None
            if inflater is not None:
                spool.write(inflater.flush())
                if not inflater.eof:
                    raise IncompleteExportError("the gzipped export body ended before its end")
        final_line, ends_with_newline = _final_line(spool_path)
        if final_line.strip() == TERMINATED_EARLY_MARKER:
            raise IncompleteExportError("Mixpanel ended the export with 'export terminated early'")
        # a last line without its newline is cut unless it is whole JSON; a whole but unusable
        # last line is the parser's to reject
        if final_line and not ends_with_newline and not _is_complete_json(final_line):
            raise IncompleteExportError("the export body ended in the middle of a line")
    except BaseException:
        spool_path.unlink(missing_ok=True)
        raise
    finally:
        response.close()
    if progress:
        progress("download", {"bytes": total, "seconds": time.monotonic() - started, "done": 1})
    return total


def _final_line(path: Path) -> tuple[bytes, bool]:
    """The last non-empty line of a file, read from its end, and whether the file ends in ``\\n``."""
    size = path.stat().st_size
    if size == 0:
        return b"", True
    block = 1 << 16
    with open(path, "rb") as handle:
        tail = b""
        position = size
        while position > 0:
            step = min(block, position)
            position -= step
            handle.seek(position)
            tail = handle.read(step) + tail
            stripped = tail.rstrip(b"\n")
            if b"\n" in stripped or position == 0:
                return stripped.rsplit(b"\n", 1)[-1], tail.endswith(b"\n")
            block *= 2
    return b"", True


def _is_complete_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def explain_http_error(response: Response, params: dict[str, str]) -> str:
    """A message that says what is likely wrong; never includes credentials."""
    try:
        detail = str(response.json().get("error", ""))
    except ValueError:
        detail = response.text[:300]
    status = response.status_code
    window = f"from_date={params.get('from_date')} to_date={params.get('to_date')}"
    if status == 401:
        hint = (
            "the credentials were refused: check MIXPANEL_SERVICE_ACCOUNT_USERNAME and "
            "MIXPANEL_SERVICE_ACCOUNT_SECRET (or MIXPANEL_API_SECRET), and MIXPANEL_REGION: "
            "a project with EU or India data residency answers only on its own host"
        )
    elif status == 403:
        hint = (
            f"no access to MIXPANEL_PROJECT_ID={params.get('project_id', '(unset)')}: check the project id "
            "and that the service account is a member of that project"
        )
    elif status == 402:
        hint = "Mixpanel says the project's plan does not allow raw event export"
    elif status == 400 and "to_date" in detail:
        hint = (
            f"{window}: to_date is later than today in the project's timezone; "
            "set MIXPANEL_PROJECT_TIMEZONE to the project's timezone"
        )
    elif status == 400 and "project_id" in detail:
        hint = "set MIXPANEL_PROJECT_ID: service-account requests must name the project"
    elif status == 400:
        hint = f"Mixpanel refused the request ({window})"
    else:
        hint = "the export request failed after retries"
    return f"Mixpanel export answered {status}: {hint}. Mixpanel said: {detail or '(no message)'}"


# -- parsing --------------------------------------------------------------------------------


@dataclasses.dataclass
class ParseStats:
    lines: int = 0
    valid: int = 0
    rejected: int = 0
    ignored: int = 0  # events of names that were not requested
    duplicates_in_export: int = 0
    already_stored: int = 0
    new_events: int = 0
    max_processing_ms: int | None = None


# The properties an event's key and checks need, in the order ``picked`` lists them.
_KEY_PROPERTIES = ("time", "distinct_id", "$insert_id", "mp_processing_time_ms")


# A usable `time` is a positive number of seconds or milliseconds before 9999-12-30 (NaN, infinity
# and 1e30 are not: they cannot become a timestamp; the margin leaves room for a legacy project's
# timezone shift and the padding of the stored-ids lookup).
_LAST_MS = 253402128000000  # 9999-12-30 00:00:00 UTC
_USABLE_TIME = f"coalesce(event_time > 0 and event_time <= {_LAST_MS}, false)"
_REJECT_REASON = f"""case
            when event_name is null or event_name = '' then 'no event name'
            when not event_is_text then 'event name is not a string'
            when properties is null then 'no properties'
            when not {_USABLE_TIME} then 'no usable properties.time'
        end"""


def _sql_literal(value: str) -> str:
    """A DuckDB string expression for ``value``. Control characters are spelled ``chr(n)``: the
    query travels in a text file (dlt's model file), read back with newline translation, which
    would turn a ``\\r`` in an event name into ``\\n`` and silently drop that event's rows."""
    pieces: list[str] = []
    plain = ""
    for character in value:
        if ord(character) < 32:
            pieces += [f"'{plain}'"] if plain else []
            pieces.append(f"chr({ord(character)})")
            plain = ""
        else:
            plain += "''" if character == "'" else character
    if plain or not pieces:
        pieces.append(f"'{plain}'")
    return "(" + " || ".join(pieces) + ")" if len(pieces) > 1 else pieces[0]


def _timestamptz_literal(moment: datetime) -> str:
    return f"'{moment.astimezone(UTC).isoformat()}'::timestamptz"


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
    quoted = str(path).replace("'", "''")
    names = ", ".join(_sql_literal(name) for name in event_names) or "null"
    reject_reason = _REJECT_REASON if checks else "null::varchar"
    paths = ", ".join(_sql_literal(f'$."{field}"') for field in _KEY_PROPERTIES)
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
            from read_ndjson_objects('{quoted}', maximum_object_size = {MAX_LINE_BYTES}) as lines (line)
        )
    )"""
    else:
        if mode == "narrow":
            fields = ", ".join(f'"{field}" JSON' for field in _KEY_PROPERTIES)
            properties_type = _sql_literal(f"STRUCT({fields})")
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
        '{quoted}', format = 'newline_delimited', maximum_object_size = {MAX_LINE_BYTES},
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

    def add(self, other: ParseStats) -> None:
        for field in dataclasses.fields(ParseStats):
            if field.name == "max_processing_ms":
                continue
            setattr(self.parse, field.name, getattr(self.parse, field.name) + getattr(other, field.name))


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
        row = self.con.execute(
            """
            select
                count(*),
                count(*) filter (where reject_reason is null and requested),
                count(*) filter (where reject_reason is null and not requested),
                max(processing_ms) filter (where reject_reason is null),
                min(time_ms) filter (where reject_reason is null and requested),
                max(time_ms) filter (where reject_reason is null and requested)
            from export_keys
            """
        ).fetchall()[0]
        lines, self.stats.valid, self.stats.ignored, self.stats.max_processing_ms, *self._time_ms = row
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
                if len(line) > MAX_LINE_BYTES:
                    value, reason = None, f"longer than {MAX_LINE_BYTES >> 20} MiB"
                else:
                    try:
                        value = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        value, reason = None, "not valid JSON"
                    else:
                        reason = "not a JSON object"
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
            event_timestamp = f"timezone({_sql_literal(self.project_timezone)}, make_timestamp(time_ms * 1000))"
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
