"""A Mixpanel Raw Event Export simulator: a real HTTP server on 127.0.0.1.

It speaks the protocol of ``GET /api/2.0/export`` closely enough to exercise every trap a
collector meets in production, and the demo, the tests and the benchmark all use it:

* basic auth with a service account (``username:secret`` plus ``project_id``) or the legacy
  project secret (secret as username, empty password); 401/403/400 like Mixpanel;
* ``from_date``/``to_date`` inclusive, in the project's timezone; ``to_date`` after today is a 400;
* ``event`` as a JSON array, ``where`` with comparisons on properties (``and`` only), ``limit``,
  ``time_in_ms``;
* JSON lines, gzip only when the client accepts it and the body is above 1400 bytes;
* events become visible at their processing time (``mp_processing_time_ms``): late events;
* rate limits (3 queries per second, 60 per hour) answered with 429;
* injectable faults: 429 with and without ``Retry-After``, 5xx, connection reset, a body cut
  mid-line (with and without ``Content-Length``), a trailing ``export terminated early`` line,
  forced 400/401/402/403;
* answers a proxy or a broken host may give with status 200: an HTML error page (``html-200``),
  a JSON error object (``json-error-200``), a body mostly of lines that are not events
  (``garbage-200``), the body as several gzip members (``multi-gzip``), gzip without
  ``Content-Encoding`` (``gzip-no-header``), and one line whose ``mp_processing_time_ms`` claims a
  day in the future (``future-processing``; ``SimEvent.claimed_processing_ms`` does it for good).

Run it on its own with ``python -m mixpanel_alerts.simulator --help``.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from .traffic import GZIP_MIN_BYTES, SimEvent

EXPORT_PATH = "/api/2.0/export"

TERMINATED_EARLY_LINE = b"export terminated early"

FAULTS = (
    "429",  # rate limited, with Retry-After
    "429-no-retry-after",
    "500",
    "502",
    "503",
    "reset",  # the connection is closed before any response
    "cut",  # 200 with Content-Length, the body stops mid-line
    "cut-close",  # 200 without Content-Length, the connection closes mid-line
    "terminated-early",  # half the events, then a non-JSON line "export terminated early"
    "400",
    "401",
    "402",
    "403",
    "html-200",  # a proxy's HTML error page, status 200
    "json-error-200",  # {"error": ...} with status 200
    "garbage-200",  # a quarter of the events, then three times as many lines of plain text
    "multi-gzip",  # the body gzipped as three members back to back, split at line ends (RFC 1952 allows it)
    "gzip-no-header",  # the body gzipped, without Content-Encoding
    "future-processing",  # the last line's mp_processing_time_ms claims a day after now
)

# what a proxy answers when the host behind it fails (nginx's page, with status 200 here)
HTML_ERROR_PAGE = b"""<!DOCTYPE html>
<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""
JSON_ERROR_BODY = b'{"error": "Service temporarily unavailable, please retry later", "status": 0}\n'


@dataclasses.dataclass
class RequestRecord:
    at: float
    params: dict[str, str]
    status: int
    auth: str  # "service_account", "secret", "none" or "invalid"
    fault: str | None
    bytes_served: int = 0  # body bytes written in answer (gzipped when sent so; a cut body counts what was sent)


class ExportSimulator:
    """The simulated export host. Use as a context manager or call ``start``/``stop``.

    ``project_timezone`` other than UTC makes it a legacy project: dates and ``time`` are in that
    timezone ("local epoch"), as Mixpanel does for projects created before 2023.
    """

    def __init__(
        self,
        *,
        project_id: str = "12345",
        service_account: tuple[str, str] | None = ("sim-user.mp-service-account", "sim-secret"),
        api_secret: str | None = "sim-api-secret",
        project_timezone: str = "UTC",
        per_second_limit: int = 3,
        per_hour_limit: int = 60,
        retry_after_seconds: int = 1,
        now: Callable[[], datetime] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.project_id = project_id
        self.service_account = service_account
        self.api_secret = api_secret
        self.project_timezone = project_timezone
        self._tz = ZoneInfo(project_timezone)
        self.per_second_limit = per_second_limit
        self.per_hour_limit = per_hour_limit
        self.retry_after_seconds = retry_after_seconds
        self.now = now or (lambda: datetime.now(UTC))
        self.events: list[SimEvent] = []
        self._latest_processing_ms = 0  # kept by add_events: a request needs it, a scan is slow
        self.faults: deque[str] = deque()
        self.requests: list[RequestRecord] = []
        self._query_times: deque[float] = deque()
        self._lock = threading.Lock()
        self._body_cache: dict[tuple[Any, ...], bytes] = {}
        self._server = _Server((host, port), _Handler)
        self._server.simulator = self
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ExportSimulator:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ExportSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- data --------------------------------------------------------------------------------

    def add_events(self, events: Iterable[SimEvent]) -> None:
        with self._lock:
            added = list(events)
            self.events.extend(added)
            self.events.sort(key=lambda event: event.time_ms)
            self._latest_processing_ms = max([self._latest_processing_ms, *(event.processing_ms for event in added)])
            self._body_cache.clear()

    def inject(self, *faults: str) -> None:
        """Queue faults; each of the next requests consumes one."""
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {FAULTS}")
        self.faults.extend(faults)

    @property
    def export_requests(self) -> list[RequestRecord]:
        return [record for record in self.requests if record.fault != "not-found"]

    # -- protocol ----------------------------------------------------------------------------

    def today(self) -> date:
        return self.now().astimezone(self._tz).date()

    def authenticate(self, header: str | None, params: dict[str, str]) -> tuple[str, int, str]:
        """Return (auth kind, status, error); status 200 means allowed."""
        if not header or not header.startswith("Basic "):
            return "none", 401, "Unable to authenticate request: no basic auth credentials"
        try:
            username, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return "invalid", 401, "Unable to authenticate request: malformed credentials"
        if self.service_account and (username, password) == self.service_account:
            if "project_id" not in params:
                return "service_account", 400, "project_id is required for service accounts"
            if params["project_id"] != self.project_id:
                return (
                    "service_account",
                    403,
                    f"service account does not have access to project {params['project_id']}",
                )
            return "service_account", 200, ""
        if self.api_secret and username == self.api_secret and password == "":
            if params.get("project_id", self.project_id) != self.project_id:
                return "secret", 403, "project secret does not match project_id"
            return "secret", 200, ""
        return "invalid", 401, "Unable to authenticate request: invalid credentials"

    def rate_limited(self) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._query_times and now - self._query_times[0] > 3600:
                self._query_times.popleft()
            self._query_times.append(now)
            last_second = sum(1 for at in self._query_times if now - at < 1.0)
            return last_second > self.per_second_limit or len(self._query_times) > self.per_hour_limit

    def body_for(self, params: dict[str, str]) -> bytes:
        """The JSON-lines body for a validated request (cached per query)."""
        from_date = date.fromisoformat(params["from_date"])
        to_date = date.fromisoformat(params["to_date"])
        names = frozenset(json.loads(params["event"])) if "event" in params else None
        where = _parse_where(params.get("where", ""))
        time_in_ms = params.get("time_in_ms", "").lower() == "true"
        limit = int(params["limit"]) if "limit" in params else None
        now_ms = int(self.now().timestamp() * 1000)
        # while some events are not processed yet, what is visible changes with the clock
        pending = self._latest_processing_ms > now_ms
        key = (from_date, to_date, names, tuple(where), time_in_ms, limit, now_ms if pending else None)
        with self._lock:
            cached = self._body_cache.get(key)
            if cached is not None:
                return cached
            legacy_tz = None if self.project_timezone == "UTC" else self._tz
            lines = []
            for event in self.events:
                if event.processing_ms > now_ms:
                    continue
                if names is not None and event.name not in names:
                    continue
                day = datetime.fromtimestamp(event.time_ms / 1000, self._tz).date()
                if not from_date <= day <= to_date:
                    continue
                if not all(_compare(event, clause) for clause in where):
                    continue
                lines.append(event.render(time_in_ms, legacy_tz))
                if limit is not None and len(lines) >= limit:
                    break
            body = b"".join(line + b"\n" for line in lines)
            self._body_cache = {key: body}
            return body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    simulator: ExportSimulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    record: RequestRecord | None = None  # the request being answered (one at a time per connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        sim = self.server.simulator
        split = urlsplit(self.path)
        params = {key: values[-1] for key, values in parse_qs(split.query).items()}
        if split.path != EXPORT_PATH:
            self.record = RequestRecord(time.time(), params, 404, "none", "not-found")
            sim.requests.append(self.record)
            self._send_json(404, {"error": f"unknown path {split.path}"})
            return

        auth, status, error = sim.authenticate(self.headers.get("Authorization"), params)
        fault = sim.faults.popleft() if sim.faults else None
        record = self.record = RequestRecord(time.time(), params, status, auth, fault)
        sim.requests.append(record)

        if sim.rate_limited():
            record.status = 429
            self._send_json(
                429,
                {"error": "rate limit exceeded: 60 queries per hour, 3 per second"},
                headers={"Retry-After": str(sim.retry_after_seconds)},
            )
            return
        if fault is not None and self._apply_status_fault(fault, record):
            return
        if status != 200:
            self._send_json(status, {"error": error, "request": self.path})
            return
        problem = _validate_dates(params, sim.today())
        if problem is None:
            try:
                _parse_where(params.get("where", ""))
                if "event" in params and not isinstance(json.loads(params["event"]), list):
                    raise ValueError("event must be a JSON array of event names")
            except ValueError as exc:
                problem = str(exc)
        if problem is not None:
            record.status = 400
            self._send_json(400, {"error": problem, "request": self.path})
            return

        body = sim.body_for(params)
        if fault == "terminated-early":
            lines = body.splitlines(keepends=True)
            body = b"".join(lines[: len(lines) // 2]) + TERMINATED_EARLY_LINE + b"\n"
        elif fault == "html-200":
            self._send_raw(HTML_ERROR_PAGE, "text/html; charset=utf-8")
            return
        elif fault == "json-error-200":
            self._send_raw(JSON_ERROR_BODY, "application/json")
            return
        elif fault == "garbage-200":
            self._send_raw(_mostly_garbage(body), "text/plain; charset=utf-8")
            return
        elif fault in ("multi-gzip", "gzip-no-header"):
            members = 3 if fault == "multi-gzip" else 1
            gzipped = "gzip" in self.headers.get("Accept-Encoding", "") or fault == "gzip-no-header"
            payload = _gzip_members(body, members) if gzipped else body
            encoding = "gzip" if gzipped and fault == "multi-gzip" else None
            self._send_raw(payload, "text/plain; charset=utf-8", encoding)
            return
        elif fault == "future-processing":
            body = _claim_future_processing(body, int(sim.now().timestamp() * 1000) + 86_400_000)
        self._send_body(body, fault)

    def _apply_status_fault(self, fault: str, record: RequestRecord) -> bool:
        if fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.close_connection = True
            record.status = 0
            return True
        if fault == "429":
            record.status = 429
            headers = {"Retry-After": str(self.server.simulator.retry_after_seconds)}
            self._send_json(429, {"error": "too many requests"}, headers=headers)
            return True
        if fault.isdigit():
            record.status = int(fault)
            messages = {
                "400": "bad request",
                "401": "Unable to authenticate request",
                "402": "payment required: export is not available on this plan",
                "403": "forbidden",
            }
            self._send_json(int(fault), {"error": messages.get(fault, "server error")})
            return True
        if fault == "429-no-retry-after":
            record.status = 429
            self._send_json(429, {"error": "too many requests"})
            return True
        return False

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self._count_served(len(body))

    def _count_served(self, size: int) -> None:
        """Add ``size`` body bytes written to the record of the request being answered."""
        if self.record is not None:
            self.record.bytes_served += size

    def _send_raw(self, payload: bytes, content_type: str, encoding: str | None = None) -> None:
        """A 200 with exactly ``payload`` (an odd answer's body)."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            self.wfile.write(payload)
            self._count_served(len(payload))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_body(self, body: bytes, fault: str | None) -> None:
        use_gzip = "gzip" in self.headers.get("Accept-Encoding", "") and len(body) > GZIP_MIN_BYTES
        payload = _gzip_cached(body) if use_gzip else body
        if fault in ("cut", "cut-close"):
            cut_at = _mid_line_offset(body)
            payload = _gzip_cached(body)[: len(_gzip_cached(body)) // 2] if use_gzip else body[:cut_at]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        if use_gzip:
            self.send_header("Content-Encoding", "gzip")
        if fault == "cut-close":
            self.send_header("Connection", "close")
            self.close_connection = True
        elif fault == "cut":
            self.send_header("Content-Length", str(len(_gzip_cached(body)) if use_gzip else len(body)))
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        view = memoryview(payload)
        try:
            for offset in range(0, len(view), 1 << 20):
                chunk = view[offset : offset + (1 << 20)]
                self.wfile.write(chunk)
                self._count_served(len(chunk))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


_gzip_memo: dict[int, tuple[bytes, bytes]] = {}


def _gzip_cached(body: bytes) -> bytes:
    memo = _gzip_memo.get(id(body))
    if memo is None or memo[0] is not body:
        memo = (body, gzip.compress(body, compresslevel=1))
        _gzip_memo.clear()
        _gzip_memo[id(body)] = memo
    return memo[1]


def _gzip_members(body: bytes, members: int) -> bytes:
    """``body`` gzipped as ``members`` members back to back, each ending at a line's end: read up
    to its first member only, the body looks complete."""
    lines = body.splitlines(keepends=True)
    size = -(-len(lines) // members) or 1
    parts = [b"".join(lines[start : start + size]) for start in range(0, len(lines), size)] or [b""]
    return b"".join(gzip.compress(part, compresslevel=1) for part in parts)


def _mostly_garbage(body: bytes) -> bytes:
    """A quarter of the body's lines, then three times as many lines that are not JSON (at least
    a few, so a body without events is garbage too)."""
    lines = body.splitlines(keepends=True)
    kept = lines[: len(lines) // 4]
    garbage = [b"upstream error: export backend connection lost, retrying (%d)\n" % n for n in range(3 * len(kept) + 3)]
    return b"".join(kept + garbage)


def _claim_future_processing(body: bytes, claimed_ms: int) -> bytes:
    """The body with its last line's ``mp_processing_time_ms`` set to ``claimed_ms``."""
    lines = body.splitlines(keepends=True)
    if not lines:
        return body
    event = json.loads(lines[-1])
    event["properties"]["mp_processing_time_ms"] = claimed_ms
    lines[-1] = json.dumps(event, separators=(",", ":")).encode() + b"\n"
    return b"".join(lines)


def _mid_line_offset(body: bytes) -> int:
    """An offset inside a line in the second half of the body (never right after a newline)."""
    if not body:
        return 0
    offset = len(body) // 2
    while offset < len(body) - 1 and body[offset - 1 : offset] == b"\n":
        offset += 1
    return max(1, min(offset, len(body) - 1))


def _validate_dates(params: dict[str, str], today: date) -> str | None:
    try:
        from_date = date.fromisoformat(params["from_date"])
        to_date = date.fromisoformat(params["to_date"])
    except KeyError as exc:
        return f"{exc.args[0]} is a required parameter"
    except ValueError:
        return "from_date and to_date must be dates in yyyy-mm-dd format"
    if to_date > today:
        return f"to_date cannot be later than today ({today.isoformat()} in the project timezone)"
    if from_date > to_date:
        return "from_date cannot be later than to_date"
    return None


_CLAUSE = re.compile(r'^\s*properties\["([^"]+)"\]\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$')


def _parse_where(where: str) -> list[tuple[str, str, float]]:
    if not where.strip():
        return []
    clauses = []
    for part in re.split(r"\s+and\s+", where.strip()):
        match = _CLAUSE.match(part.strip("() "))
        if not match:
            raise ValueError(f"invalid where expression: {where!r}")
        clauses.append((match.group(1), match.group(2), float(match.group(3))))
    return clauses


def _compare(event: SimEvent, clause: tuple[str, str, float]) -> bool:
    key, operator, number = clause
    value = event.shown_processing_ms if key == "mp_processing_time_ms" else event.properties.get(key)
    if key == "time":
        value = event.time_ms // 1000
    if not isinstance(value, (int, float)):
        return False
    return {
        ">": value > number,
        ">=": value >= number,
        "<": value < number,
        "<=": value <= number,
        "==": value == number,
        "!=": value != number,
    }[operator]
