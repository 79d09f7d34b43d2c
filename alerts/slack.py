"""Delivery to Slack with slack-sdk: an incoming webhook or a bot token (``chat.postMessage``).

A post can reach Slack without its answer reaching us: a timeout, a dropped connection, a 5xx, a
kill mid-post. Such an error says ``maybe_delivered``, and posting again blindly could show the
alert twice. So posts are not retried by slack-sdk's connection and server-error handlers (only
429s, which Slack did not act on, honouring ``Retry-After``); the alert step decides:

- bot token: every message carries Slack message metadata (its ``dedup_key``), and before posting
  again the step looks for it in the channel (``conversations.history``, or ``.replies`` in a
  thread). This needs the ``channels:history`` scope (``groups:history`` for private channels) and,
  for a channel given by name, ``channels:read`` to find its id;
- webhook: nothing can be read back, so a message whose earlier post may have arrived is sent
  again with a note that it may repeat (``CannotCheckError``).

Pacing (``SlackPace``, one per run, shared by every Slack client the run makes): messages go out
at about one per second, Slack's posting rate; a refusal's ``Retry-After`` is honoured before that
endpoint is asked again, by slack-sdk's own retries and by the next message alike; an endpoint that
refuses again and again (429 or 5xx) is left alone for the rest of the run, and nothing waits past
the step's deadline (``ALERT_STEP_TIMEOUT_SECONDS``): what is left stays pending for the next run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from http.client import HTTPException
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.webhook import WebhookClient

from .render import Message

MIN_SECONDS_BETWEEN_MESSAGES = 1.0
# an endpoint that refused this many requests in a row (429 or 5xx) is not asked again this run
REFUSALS_BEFORE_GIVING_UP = 3
# a 429 without Retry-After (Slack always sends one) waits this long
DEFAULT_RETRY_AFTER_SECONDS = 1.0
# the longest the alert step spends on Slack in one run (ALERT_STEP_TIMEOUT_SECONDS)
DEFAULT_STEP_SECONDS = 120.0
REQUEST_TIMEOUT_SECONDS = 30
METADATA_EVENT_TYPE = "mixpanel_alert"
HISTORY_PAGE_SIZE = 200
HISTORY_MAX_PAGES = 50
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
# Errors that the same request will get again: the message stays undelivered until they are fixed.
PERMANENT_ERRORS = {
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "invalid_blocks",
    "invalid_token",
    "no_service",
    "no_active_hooks",
    "action_prohibited",
    "missing_scope",
    "invalid_metadata_format",
}


class DeliveryError(Exception):
    """Slack did not confirm a message. ``permanent``: the same request will fail again;
    ``maybe_delivered``: it may have been posted all the same; ``timed_out``: Slack is slow, so a
    check of the channel now could miss a post it is still processing; ``give_up``: asking again
    this run is pointless (the endpoint keeps refusing, or the step's time is up)."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        maybe_delivered: bool = False,
        timed_out: bool = False,
        give_up: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.maybe_delivered = maybe_delivered
        self.timed_out = timed_out
        self.give_up = give_up


class HeldBackError(DeliveryError):
    """Not asked at all: the endpoint gave up earlier in this run, or the step's time is up."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=False, give_up=True)


class CannotCheckError(Exception):
    """Whether a message arrived cannot be read back from Slack (a webhook, a missing scope)."""


class ChartUnavailable(Exception):  # noqa: N818 (the name says it: no chart this time)
    """A chart could not be uploaded; the alert goes without it. ``reason`` says why, for the
    message's note: "the bot token lacks the files:write scope"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Delivered:
    channel: str
    ts: str | None


@dataclasses.dataclass(frozen=True)
class Stamp:
    """What a message is stamped with (Slack message metadata), to find it again."""

    dedup_key: str
    kind: str
    incident_id: str

    def metadata(self) -> dict[str, Any]:
        payload = {"dedup_key": self.dedup_key, "kind": self.kind, "incident_id": self.incident_id}
        return {"event_type": METADATA_EVENT_TYPE, "event_payload": payload}

    def matches(self, message: dict[str, Any]) -> bool:
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        return metadata.get("event_type") == METADATA_EVENT_TYPE and payload.get("dedup_key") == self.dedup_key


class Sender(Protocol):
    description: str
    # whether messages go to each rule's channel (a bot) or to one place (a webhook, the terminal)
    per_channel: bool
    # the run's pacing and time budget towards Slack
    pace: SlackPace

    def post(self, message: Message, channel: str, stamp: Stamp) -> Delivered: ...

    def reply(self, message: Message, thread: Delivered, stamp: Stamp, broadcast: bool = True) -> Delivered: ...

    def find(self, stamp: Stamp, channel: str, thread: Delivered | None, since: datetime) -> Delivered | None:
        """The message stamped ``stamp`` if it was posted (since ``since``); raises CannotCheckError."""
        ...

    def remember(self, channel: str, channel_id: str) -> None:
        """A channel's id, learnt from an earlier post (saves looking it up)."""
        ...


@dataclasses.dataclass(frozen=True)
class Wait:
    """A refusal's ``Retry-After`` (``asked``) and how long the run then waited before asking that
    endpoint again (``waited``; None: it never asked again)."""

    endpoint: str
    asked: float
    waited: float | None


class SlackPace:
    """One run's pacing towards Slack (see the module's docstring). ``clock`` and ``sleep`` are
    ``time.monotonic`` and ``time.sleep`` but for tests of the arithmetic."""

    def __init__(
        self,
        budget_seconds: float = DEFAULT_STEP_SECONDS,
        *,
        message_interval: float = MIN_SECONDS_BETWEEN_MESSAGES,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.clock, self.sleep = clock, sleep
        self.deadline = clock() + budget_seconds
        self.message_interval = message_interval
        self.last_message = -math.inf
        self.refusals: dict[str, int] = {}  # refusals in a row, per endpoint
        self.given_up: dict[str, str] = {}  # endpoint -> why
        self.not_before: dict[str, float] = {}  # endpoint -> when it may be asked again
        self.asked: dict[str, float] = {}  # endpoint -> the Retry-After now being waited out
        self.refused_at: dict[str, float] = {}  # endpoint -> when it asked for it
        self.waits: list[Wait] = []

    def time_left(self) -> float:
        return self.deadline - self.clock()

    def before(self, endpoint: str, *, message: bool = False, scope: str | None = None) -> None:
        """Wait until ``endpoint`` may be asked (its Retry-After, and for a ``message`` the posting
        rate); ``HeldBackError`` when it may not be asked again this run. ``scope``: the channel a
        post goes to (Slack rate-limits posts per channel)."""
        keys = [endpoint] if scope is None else [endpoint, f"{endpoint} {scope}"]
        for key in keys:
            if key in self.given_up:
                raise HeldBackError(self.given_up[key])
        now = self.clock()
        ready = max([now, *(self.not_before.get(key, now) for key in keys)])
        if message:
            ready = max(ready, self.last_message + self.message_interval)
        if ready > self.deadline or now >= self.deadline:
            raise HeldBackError(self._give_up(keys[-1], "the alert step's time is up (ALERT_STEP_TIMEOUT_SECONDS)"))
        if ready > now:
            self.sleep(ready - now)
        for key in keys:
            if key in self.asked:
                self.waits.append(Wait(key, self.asked.pop(key), self.clock() - self.refused_at[key]))
        if message:
            self.last_message = self.clock()

    def refused(self, endpoint: str, status: int, retry_after: float | None, scope: str | None = None) -> bool:
        """A 429 or 5xx from ``endpoint``; whether it may be asked again in this run. A 429 holds
        back only its ``scope`` (a post's channel), a 5xx the whole endpoint."""
        if status == 429 and scope is not None:
            endpoint = f"{endpoint} {scope}"
        now = self.clock()
        count = self.refusals[endpoint] = self.refusals.get(endpoint, 0) + 1
        if status == 429 and retry_after is None:
            retry_after = DEFAULT_RETRY_AFTER_SECONDS
        if retry_after is not None:
            self.not_before[endpoint] = now + retry_after
            self.asked[endpoint] = retry_after
            self.refused_at[endpoint] = now
        if count >= REFUSALS_BEFORE_GIVING_UP:
            self._give_up(endpoint, f"Slack refused {endpoint} {count} times in a row (last: HTTP {status})")
        elif now + (retry_after or 0) > self.deadline:
            self._give_up(endpoint, f"Slack asked to wait {retry_after:g} s for {endpoint}, past the alert step's time")
        return endpoint not in self.given_up

    def answered(self, endpoint: str, scope: str | None = None) -> None:
        self.refusals.pop(endpoint, None)
        if scope is not None:
            self.refusals.pop(f"{endpoint} {scope}", None)

    def _give_up(self, endpoint: str, why: str) -> str:
        if endpoint in self.asked:  # never asked again
            self.waits.append(Wait(endpoint, self.asked.pop(endpoint), None))
        self.given_up.setdefault(endpoint, f"{why}; not asked again this run, the rest stays pending")
        return self.given_up[endpoint]


def retry_after_of(response: HttpResponse | None) -> float | None:
    """The ``Retry-After`` of a response, in seconds (Slack sends whole seconds)."""
    if response is None:
        return None
    for name, value in (response.headers or {}).items():
        if name.lower() == "retry-after":
            text = value[0] if isinstance(value, list) else value
            try:
                return max(float(text), 0.0)
            except (TypeError, ValueError):
                return None
    return None


def endpoint_of(url: str) -> str:
    """A Web API method's name (``chat.postMessage``) from its URL; ``webhook`` for the rest."""
    path = urllib.parse.urlsplit(url).path.rstrip("/")
    name = path.rsplit("/", 1)[-1]
    return name if "/api/" in path and "." in name else "webhook"


def channel_of(request: HttpRequest) -> str | None:
    """The channel a ``chat.postMessage`` request posts to (its JSON body's ``channel``)."""
    if not request.url.endswith("chat.postMessage") or not request.data:
        return None
    try:
        body = json.loads(request.data)
    except (TypeError, ValueError):
        return None
    channel = body.get("channel") if isinstance(body, dict) else None
    return str(channel) if channel else None


class PacedRetryHandler(RetryHandler):
    """slack-sdk's retry hook, paced by the run's ``SlackPace``: 429s always (Slack did not act on
    them), 5xx and lost connections only for ``reads`` (safe to repeat; a post that may have
    arrived is the alert step's to look for)."""

    def __init__(self, pace: SlackPace, *, reads: bool) -> None:
        super().__init__(max_retry_count=REFUSALS_BEFORE_GIVING_UP)
        self.pace = pace
        self.reads = reads

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        endpoint = endpoint_of(request.url)
        if response is not None and (response.status_code == 429 or response.status_code >= 500):
            if response.status_code >= 500 and not self.reads:
                return False  # the caller records the refusal
            status, retry_after = response.status_code, retry_after_of(response)
            return self.pace.refused(endpoint, status, retry_after, channel_of(request))
        if response is None and error is not None and self.reads:
            return self.pace.refused(endpoint, 0, None)
        return False

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        endpoint, channel = endpoint_of(request.url), channel_of(request)
        self.pace.before(endpoint, message=endpoint == "chat.postMessage", scope=channel)
        state.increment_current_attempt()


class Pacer(SlackPace):
    """A pace with an unlimited budget and a fixed posting interval (tests and ``check``)."""

    def __init__(self, seconds: float = MIN_SECONDS_BETWEEN_MESSAGES) -> None:
        super().__init__(budget_seconds=math.inf, message_interval=seconds)


def transport_error(exc: Exception, what: str, timeout: float = REQUEST_TIMEOUT_SECONDS) -> DeliveryError:
    """A request that got no answer: did it reach Slack? A refused connection or a failed name
    lookup never did; a timeout, a reset or a cut answer may have."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError | socket.timeout):
        return DeliveryError(f"{what}: no answer in {timeout:g} s", permanent=False, maybe_delivered=True,
                             timed_out=True)  # fmt: skip
    if isinstance(reason, ConnectionRefusedError | socket.gaierror):
        return DeliveryError(f"{what}: unreachable ({type(reason).__name__})", permanent=False)
    if isinstance(reason, OSError | HTTPException):
        return DeliveryError(f"{what}: connection lost ({type(reason).__name__})", permanent=False,
                             maybe_delivered=True)  # fmt: skip
    return DeliveryError(f"{what}: {type(exc).__name__}", permanent=False, maybe_delivered=True)


def refusal(pace: SlackPace, endpoint: str, status: int, headers: Any, scope: str | None = None) -> bool:
    """Tell ``pace`` of a final 429 or 5xx answer; whether ``endpoint`` may be asked again this run
    (a 429 that reaches us is one slack-sdk's paced retries gave up on: not again)."""
    if status != 429 and status < 500:
        return True
    if status == 429:
        return False  # slack-sdk's handler counted it already
    retry_after = retry_after_of(HttpResponse(status_code=status, headers=dict(headers or {})))
    return pace.refused(endpoint, status, retry_after, scope)


class WebhookSender:
    """Posts to the webhook's own channel; the rule's channel is named in the message."""

    description = "the Slack webhook"
    per_channel = False

    def __init__(self, url: str, pacer: SlackPace | None = None, timeout: int = REQUEST_TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        self.pace = pacer or Pacer()
        self.client = WebhookClient(url, timeout=timeout, retry_handlers=[PacedRetryHandler(self.pace, reads=False)])

    def post(self, message: Message, channel: str, stamp: Stamp) -> Delivered:
        self.pace.before("webhook", message=True)
        try:
            response = self.client.send(
                text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False
            )
        except DeliveryError:
            raise
        except Exception as exc:
            raise transport_error(exc, "webhook", self.timeout) from None
        if response.status_code == 200:
            self.pace.answered("webhook")
            return Delivered(channel="webhook", ts=None)
        body = (response.body or "").strip()
        permanent = body in PERMANENT_ERRORS or response.status_code in (400, 403, 404, 410)
        again = refusal(self.pace, "webhook", response.status_code, response.headers)
        raise DeliveryError(
            f"webhook answered {response.status_code} {body[:100]}",
            permanent=permanent,
            maybe_delivered=response.status_code >= 500,
            give_up=not again,
        )

    def reply(self, message: Message, thread: Delivered, stamp: Stamp, broadcast: bool = True) -> Delivered:
        return self.post(message, thread.channel, stamp)

    def find(self, stamp: Stamp, channel: str, thread: Delivered | None, since: datetime) -> Delivered | None:
        raise CannotCheckError("an incoming webhook cannot read its channel")

    def remember(self, channel: str, channel_id: str) -> None:
        pass


class BotSender:
    """``chat.postMessage`` to each rule's channel; resolved notices reply in the alert's thread."""

    description = "the Slack bot"
    per_channel = True

    def __init__(
        self, token: str, api_url: str, pacer: SlackPace | None = None, timeout: int = REQUEST_TIMEOUT_SECONDS
    ) -> None:
        base_url = api_url if api_url.endswith("/") else api_url + "/"
        self.timeout = timeout
        self.pace = pacer or Pacer()
        common = {"token": token, "base_url": base_url, "timeout": timeout}
        posts, reads = PacedRetryHandler(self.pace, reads=False), PacedRetryHandler(self.pace, reads=True)
        self.client = WebClient(**common, retry_handlers=[posts])  # type: ignore[arg-type]
        self.reader = WebClient(**common, retry_handlers=[reads])  # type: ignore[arg-type]
        self.channel_ids: dict[str, str] = {}

    def _post(self, **kwargs: Any) -> Delivered:
        channel = str(kwargs["channel"])
        self.pace.before("chat.postMessage", message=True, scope=channel)
        try:
            response = self.client.chat_postMessage(unfurl_links=False, unfurl_media=False, **kwargs)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "") if exc.response is not None else "")
            status = exc.response.status_code if exc.response is not None else 0
            headers = exc.response.headers if exc.response is not None else {}
            again = refusal(self.pace, "chat.postMessage", status, headers, channel)
            raise DeliveryError(
                f"Slack chat.postMessage answered {status} {error}",
                permanent=error in PERMANENT_ERRORS,
                maybe_delivered=status >= 500,
                give_up=not again,
            ) from None
        except DeliveryError:
            raise
        except Exception as exc:
            raise transport_error(exc, "Slack chat.postMessage", self.timeout) from None
        self.pace.answered("chat.postMessage", channel)
        channel_id = str(response.get("channel") or kwargs["channel"])
        if not CHANNEL_ID.match(str(kwargs["channel"])):
            self.remember(str(kwargs["channel"]), channel_id)
        return Delivered(channel=channel_id, ts=response.get("ts"))

    def post(self, message: Message, channel: str, stamp: Stamp) -> Delivered:
        return self._post(channel=channel, text=message.text, blocks=message.blocks, metadata=stamp.metadata())

    def reply(self, message: Message, thread: Delivered, stamp: Stamp, broadcast: bool = True) -> Delivered:
        """In the alert's thread; ``broadcast``: shown in the channel too (not for a digest's thread,
        which would bring the flood back)."""
        return self._post(
            channel=thread.channel,
            thread_ts=thread.ts,
            reply_broadcast=broadcast,
            text=message.text,
            blocks=message.blocks,
            metadata=stamp.metadata(),
        )

    def remember(self, channel: str, channel_id: str) -> None:
        self.channel_ids[channel] = channel_id

    def reactions(self, channel_id: str, ts: str) -> dict[str, Any]:
        """The message at ``ts`` with its reactions (``reactions.get``, scope ``reactions:read``);
        CannotCheckError when the token cannot read them."""
        try:
            response = self._read("reactions_get", channel=channel_id, timestamp=ts, full=True)
        except DeliveryError as exc:
            if "message_not_found" in str(exc):
                return {}  # the alert was deleted: no reaction to read
            raise
        return dict(response.get("message") or {})

    def upload_chart(self, png: bytes, filename: str, title: str, alt_text: str) -> str:
        """Uploads an image and returns its file id, for an image block (``slack_file``) of the
        alert. Slack's external upload: ``files.getUploadURLExternal``, the bytes POSTed to the URL
        it gives, ``files.completeUploadExternal`` with no channel (the file is not posted on its
        own; the message that shows it shares it). Needs the ``files:write`` scope. Any failure
        raises ChartUnavailable, quickly: no retry but for 429s, as a chart never holds an alert."""
        ticket = self._files("files_getUploadURLExternal", filename=filename, length=len(png), alt_txt=alt_text)
        file_id, upload_url = str(ticket.get("file_id") or ""), str(ticket.get("upload_url") or "")
        if not file_id or not upload_url.startswith(("https://", "http://")):
            raise ChartUnavailable("Slack files.getUploadURLExternal gave no upload URL")
        request = urllib.request.Request(
            upload_url, data=png, method="POST", headers={"Content-Type": "application/octet-stream"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                answer.read()
        except urllib.error.HTTPError as exc:  # the upload URL's host answered, with an error
            raise ChartUnavailable(f"the file upload answered HTTP {exc.code}") from None
        except Exception as exc:
            raise ChartUnavailable(str(transport_error(exc, "the file upload", self.timeout))) from None
        completed = self._files("files_completeUploadExternal", files=[{"id": file_id, "title": title}])
        if file_id not in {str(listed.get("id")) for listed in completed.get("files") or []}:
            raise ChartUnavailable("Slack files.completeUploadExternal did not confirm the file")
        return file_id

    def _files(self, method: str, **kwargs: Any) -> Any:
        """A files.* call; Slack's refusals as ChartUnavailable, the token never in the reason."""
        name = method.replace("_", ".", 1)
        try:
            self.pace.before(name)
            answer = getattr(self.client, method)(**kwargs)
        except HeldBackError as exc:
            raise ChartUnavailable(str(exc)) from None
        except SlackApiError as exc:
            error = str(exc.response.get("error", "") if exc.response is not None else "")
            status = exc.response.status_code if exc.response is not None else 0
            if error == "missing_scope":
                needed = exc.response.get("needed") or "files:write"
                raise ChartUnavailable(f"the bot token lacks the {needed} scope") from None
            if error in ("not_allowed_token_type", "not_authed", "invalid_auth", "account_inactive", "token_revoked"):
                raise ChartUnavailable(f"the Slack token cannot upload files ({error})") from None
            refusal(self.pace, name, status, exc.response.headers if exc.response is not None else {})
            if status >= 500 or not error:  # slack-sdk's error for a body that is not JSON is its own sentence
                raise ChartUnavailable(f"Slack {name} answered HTTP {status}") from None
            raise ChartUnavailable(f"Slack {name} answered {error[:100]}") from None
        except Exception as exc:
            raise ChartUnavailable(str(transport_error(exc, f"Slack {name}", self.timeout))) from None
        self.pace.answered(name)
        return answer

    def find(self, stamp: Stamp, channel: str, thread: Delivered | None, since: datetime) -> Delivered | None:
        if thread is not None and thread.ts:
            channel_id = thread.channel
            pages = self._pages("conversations_replies", channel=channel_id, ts=thread.ts)
        else:
            channel_id = self._channel_id(channel)
            pages = self._pages("conversations_history", channel=channel_id, oldest=f"{since.timestamp():.6f}")
        for messages in pages:
            for message in messages:
                if stamp.matches(message):
                    return Delivered(channel=channel_id, ts=message.get("ts"))
        return None

    def _pages(self, method: str, **kwargs: Any) -> Iterator[list[dict[str, Any]]]:
        cursor = None
        for _ in range(HISTORY_MAX_PAGES):
            response = self._read(method, **kwargs, include_all_metadata=True, limit=HISTORY_PAGE_SIZE, cursor=cursor)
            yield list(response.get("messages") or [])
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return
        raise CannotCheckError(f"more than {HISTORY_MAX_PAGES * HISTORY_PAGE_SIZE} messages to look through")

    def _channel_id(self, channel: str) -> str:
        if CHANNEL_ID.match(channel):
            return channel
        if channel not in self.channel_ids:
            cursor = None
            while True:
                response = self._read(
                    "conversations_list", types="public_channel,private_channel", limit=1000, cursor=cursor
                )
                for listed in response.get("channels") or []:
                    self.channel_ids.setdefault(f"#{listed.get('name')}", str(listed.get("id")))
                cursor = (response.get("response_metadata") or {}).get("next_cursor")
                if channel in self.channel_ids or not cursor:
                    break
        if channel not in self.channel_ids:
            raise CannotCheckError(f"no channel named {channel} is visible to the bot")
        return self.channel_ids[channel]

    def _read(self, method: str, **kwargs: Any) -> Any:
        arguments = {key: value for key, value in kwargs.items() if value is not None}
        name = method.replace("_", ".")
        try:
            self.pace.before(name)
            answer = getattr(self.reader, method)(**arguments)
        except DeliveryError:
            raise
        except SlackApiError as exc:
            error = str(exc.response.get("error", "") if exc.response is not None else "")
            needed = exc.response.get("needed", "") if exc.response is not None else ""
            if error == "missing_scope":
                raise CannotCheckError(f"the bot token lacks the {needed} scope") from None
            if error in PERMANENT_ERRORS or error in ("thread_not_found", "invalid_cursor"):
                raise CannotCheckError(f"Slack {method.replace('_', '.')} answered {error}") from None
            status = exc.response.status_code if exc.response is not None else 0
            again = refusal(self.pace, name, status, exc.response.headers if exc.response is not None else {})
            raise DeliveryError(f"Slack {name} answered {status} {error}", permanent=False, maybe_delivered=True,
                                give_up=not again) from None  # fmt: skip
        except Exception as exc:
            unanswered = transport_error(exc, f"Slack {name}", self.timeout)
            unanswered.maybe_delivered = True  # nothing was posted now, but the earlier post stays unknown
            raise unanswered from None
        self.pace.answered(name)
        return answer
