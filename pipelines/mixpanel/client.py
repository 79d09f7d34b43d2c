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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlt.sources.helpers.requests import Client
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.exceptions import ChunkedEncodingError, ConnectionError, ContentDecodingError, Timeout

from .body import ProgressCallback, body_sample, spool_body
from .settings import (
    EXPORT_HOSTS,
    EXPORT_PATH,
    MAX_QUERIES_PER_HOUR,
    MAX_QUERIES_PER_SECOND,
)

logger = logging.getLogger("mixpanel_alerts.export")


class ExportError(Exception):
    """A failure the user must fix (credentials, project, region, dates); not retried. ``status``:
    the HTTP status Mixpanel answered, when it answered one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


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
            received["bytes"] = spool_body(response, spool_path, self.progress)
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
            raise ExportError(explain_http_error(response, params), response.status_code)
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


def _auth_secrets(auth: Any) -> list[str]:
    """The secret of basic auth ``(username, secret)`` and the header value that carries both."""
    if not isinstance(auth, tuple) or len(auth) != 2:
        return []
    username, secret = auth
    token = base64.b64encode(f"{username}:{secret}".encode()).decode()
    # the legacy project secret travels as the username
    return [value for value in (secret, token, username if not secret else "") if value]


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
