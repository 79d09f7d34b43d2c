"""The export client: HTTP with dlt's retrying session, the rate limiter, the streamed download.

The export endpoint answers with JSON lines, not JSON, so dlt's RESTClient does not fit; its
retrying ``requests`` client does. Every attempt (retries included) goes through a rate limiter
mounted as the session's transport adapter, and the body is streamed to a spool file inside a
response hook, so a body cut mid-line or ending in ``export terminated early`` raises inside
``Session.send`` and is retried by the same retry policy as a 429 or a 5xx. So does a 200 whose body
is not an export (a proxy's HTML page, a JSON error object): the caller's ``accept`` check runs on
the spooled body inside the same hook. Nothing of a failed response is kept.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
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
# an export line starts with "{"; a body that starts with these bytes is gzip, whatever its headers say
GZIP_MAGIC = b"\x1f\x8b"
# how much of an answer that is not an export its error quotes
SAMPLE_CHARS = 80


class ExportError(Exception):
    """A failure the user must fix (credentials, project, region, dates); not retried."""


class IncompleteExportError(ConnectionError):
    """The body ended early (cut mid-line or ``export terminated early``); retried."""


class NotAnExportError(ConnectionError):
    """A 200 whose body is not JSON lines of events; retried like a 5xx (a proxy's error page or a
    maintenance page usually goes away)."""


class NotAnExportAnswerError(ExportError):
    """Still not an export after the retries: the request fails, quoting what came back."""


@dataclasses.dataclass(frozen=True)
class NotAnExport:
    """Why a spooled body is not an export (``reason``), and the line from which it shows (1: the
    body's first line)."""

    reason: str
    line_number: int = 1


# Checks a spooled body inside the response hook: None accepts it, a NotAnExport fails the attempt.
AcceptCheck = Callable[[Path], NotAnExport | None]


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

    def download(self, params: dict[str, str], spool_dir: Path, accept: AcceptCheck | None = None) -> Download:
        """The body of one export request, inflated into ``spool_dir``. ``accept`` checks each
        attempt's body once it is whole; one it refuses is retried like a 5xx, and after the
        retries the request fails with an ``ExportError`` that quotes what came back."""
        if self.project_id:
            params = {**params, "project_id": self.project_id}
        spool_path = spool_dir / "export.jsonl"
        received = {"bytes": 0}

        def spool(response: Response, *args: Any, **kwargs: Any) -> Response:
            if response.status_code != 200:
                response.content  # noqa: B018 - error bodies are small; read them to free the connection
                return response
            started = time.monotonic()
            received["bytes"] = _spool_body(response, spool_path, self.progress)
            seconds = time.monotonic() - started
            if accept is not None:
                self._check_answer(response, spool_path, accept)
            if self.progress:  # said of the answer kept, not of each attempt
                self.progress("download", {"bytes": received["bytes"], "seconds": seconds, "done": 1})
            return response

        attempts_before = self.adapter.attempts
        try:
            response = self.session.get(self.url, params=params, stream=True, hooks={"response": spool})
        except NotAnExportError as exc:
            attempts = self.adapter.attempts - attempts_before
            raise NotAnExportAnswerError(
                f"{exc} ({attempts} attempt{'' if attempts == 1 else 's'}). Nothing of it was stored and the cursor "
                "did not move: the next run asks again; if this persists, check what answers at the export host "
                "(MIXPANEL_EXPORT_URL or MIXPANEL_REGION, a proxy in between)"
            ) from None
        if response.status_code != 200:
            raise ExportError(explain_http_error(response, params))
        return Download(spool_path, received["bytes"], self.adapter.attempts)

    def _check_answer(self, response: Response, spool_path: Path, accept: AcceptCheck) -> None:
        """Raise ``NotAnExportError`` (inside the hook, so dlt's retry policy retries it) if
        ``accept`` refuses the spooled body; it names the content type and quotes the body."""
        refused = accept(spool_path)
        if refused is None:
            return
        sample = body_sample(spool_path, refused.line_number, secrets=_auth_secrets(self.session.auth))
        spool_path.unlink(missing_ok=True)
        where = "" if refused.line_number == 1 else f"line {refused.line_number:,}: "
        content_type = response.headers.get("Content-Type") or "no Content-Type"
        raise NotAnExportError(
            f"Mixpanel export answered 200 with {content_type}, not JSON lines of events "
            f"({refused.reason}): {where}{sample}"
        )


class GzipMembers:
    """Inflates a gzip stream of one or more members with ISA-L (about twice as fast as zlib on
    large exports). RFC 1952 allows members back to back, and some servers and proxies send them:
    a decompressor stops at the end of the first member (the rest waits in its ``unused_data``), so
    each following member gets a decompressor of its own."""

    def __init__(self) -> None:
        self._inflater = _new_inflater()
        self._in_member = False  # bytes of a member that has not ended yet were read
        self._members = 0  # members that ended

    def inflate(self, data: bytes) -> bytes:
        pieces = []
        while data:
            if not self._in_member:
                data = data.lstrip(b"\x00")  # zero padding between or after members, as gzip(1) allows
                if not data:
                    break
                self._in_member = True
            pieces.append(self._inflater.decompress(data))
            if not self._inflater.eof:
                break
            self._in_member = False
            self._members += 1
            data = self._inflater.unused_data
            self._inflater = _new_inflater()
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def finish(self) -> bytes:
        """What the last member still holds; IncompleteExportError if it did not end."""
        rest = self._inflater.flush()
        if (self._in_member or not self._members) and not self._inflater.eof:
            raise IncompleteExportError("the gzipped export body ended before its end")
        return rest


def _new_inflater() -> Any:
    return isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)


class BodyDecoder:
    """The export body as sent: gzip when ``Content-Encoding`` says so, or when its first bytes are
    gzip's magic number without it (an export line starts with ``{``, never with 0x1f); else as is."""

    def __init__(self, gzipped: bool) -> None:
        self._gzip: GzipMembers | None = GzipMembers() if gzipped else None
        self._undecided = not gzipped
        self._head = b""

    def decode(self, chunk: bytes) -> bytes:
        if self._undecided:
            self._head += chunk
            if len(self._head) < len(GZIP_MAGIC):
                return b""
            self._undecided = False
            chunk, self._head = self._head, b""
            if chunk.startswith(GZIP_MAGIC):
                self._gzip = GzipMembers()
        return self._gzip.inflate(chunk) if self._gzip is not None else chunk

    def finish(self) -> bytes:
        if self._gzip is not None:
            return self._gzip.finish()
        return self._head


def _spool_body(response: Response, spool_path: Path, progress: ProgressCallback | None) -> int:
    """Write the decompressed body to ``spool_path``; raise IncompleteExportError if it ended early."""
    started = time.monotonic()
    last_report = started
    total = 0
    decoder = BodyDecoder(gzipped="gzip" in response.headers.get("Content-Encoding", "").lower())
    try:
        with open(spool_path, "wb") as spool:
            try:
                for chunk in response.raw.stream(SPOOL_CHUNK_BYTES, decode_content=False):
                    data = decoder.decode(chunk)
                    spool.write(data)
                    total += len(data)
                    now = time.monotonic()
                    if progress and now - last_report >= 1.0:
                        progress("download", {"bytes": total, "seconds": now - started})
                        last_report = now
                data = decoder.finish()
            except (ProtocolError, ReadTimeoutError, DecodeError) as exc:
                raise IncompleteExportError(f"the export body was cut off: {exc}") from None
            except isal_zlib.error as exc:  # type: ignore[misc]
                raise IncompleteExportError(f"the export body is not valid gzip: {exc}") from None
            spool.write(data)
            total += len(data)
        final_line, ends_with_newline = _final_line(spool_path)
        if final_line.strip() == TERMINATED_EARLY_MARKER:
            raise IncompleteExportError("Mixpanel ended the export with 'export terminated early'")
        # a last line without its newline is cut unless it is whole JSON or no export line at all
        # (every export line starts with "{"; an HTML page often ends without a newline): a whole
        # but unusable last line is the parser's to reject, and a body of such lines its to refuse
        cut_line = final_line.lstrip().startswith(b"{") and not _is_complete_json(final_line)
        if final_line and not ends_with_newline and cut_line:
            raise IncompleteExportError("the export body ended in the middle of a line")
    except BaseException:
        spool_path.unlink(missing_ok=True)
        raise
    finally:
        response.close()
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


def body_sample(path: Path, line_number: int = 1, *, secrets: Sequence[str] = ()) -> str:
    """The body from line ``line_number`` on, quoted for an error message: printable (whitespace
    runs shown as one space, other control characters as ``?``), at most ``SAMPLE_CHARS``
    characters, and without ``secrets`` (a page may echo the request's credentials)."""
    with open(path, "rb") as body:
        for _ in range(line_number - 1):
            if not body.readline():
                break
        head = body.read(SAMPLE_CHARS * 8)
    text = " ".join(head.decode("utf-8", "replace").split())
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = "".join(char if char.isprintable() else "?" for char in text)
    if not text:
        return "an empty body"
    return repr(text[:SAMPLE_CHARS] + ("…" if len(text) > SAMPLE_CHARS or len(head) == SAMPLE_CHARS * 8 else ""))


def _auth_secrets(auth: Any) -> list[str]:
    """The secret of basic auth ``(username, secret)`` and the header value that carries both."""
    if not isinstance(auth, tuple) or len(auth) != 2:
        return []
    username, secret = auth
    token = base64.b64encode(f"{username}:{secret}".encode()).decode()
    # the legacy project secret travels as the username
    return [value for value in (secret, token, username if not secret else "") if value]


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
