"""The export client: HTTP with dlt's retrying session, the rate limiter, the streamed download.

The export endpoint answers with JSON lines, not JSON, so dlt's RESTClient does not fit; its
retrying ``requests`` client does. Every attempt (retries included) goes through a rate limiter
mounted as the session's transport adapter, and the body is streamed to a spool file inside a
response hook, so a body cut mid-line or ending in ``export terminated early`` raises inside
``Session.send`` and is retried by the same retry policy as a 429 or a 5xx. Nothing of a failed
response is kept: parsing starts only once a response has arrived whole.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
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
    TERMINATED_EARLY_MARKER,
)

logger = logging.getLogger("mixpanel_alerts.export")

ProgressCallback = Callable[[str, dict[str, float]], None]
SPOOL_CHUNK_BYTES = 1 << 20


class ExportError(Exception):
    """A failure the user must fix (credentials, project, region, dates); not retried."""


class IncompleteExportError(ConnectionError):
    """The body ended early (cut mid-line or ``export terminated early``); retried."""


def export_base_url(region: str, export_url: str | None) -> str:
    if export_url:
        return export_url.rstrip("/")
    try:
        return EXPORT_HOSTS[region]
    except KeyError:
        raise ExportError(
            f"MIXPANEL_REGION={region!r} is not a Mixpanel region; use one of {', '.join(EXPORT_HOSTS)}"
        ) from None


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
