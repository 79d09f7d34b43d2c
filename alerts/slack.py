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

Messages are paced to about one per second, Slack's posting rate.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from http.client import HTTPException
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.webhook import WebhookClient

from .render import Message

MIN_SECONDS_BETWEEN_MESSAGES = 1.0
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
    check of the channel now could miss a post it is still processing."""

    def __init__(
        self, message: str, *, permanent: bool, maybe_delivered: bool = False, timed_out: bool = False
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.maybe_delivered = maybe_delivered
        self.timed_out = timed_out


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

    def post(self, message: Message, channel: str, stamp: Stamp) -> Delivered: ...

    def reply(self, message: Message, thread: Delivered, stamp: Stamp, broadcast: bool = True) -> Delivered: ...

    def find(self, stamp: Stamp, channel: str, thread: Delivered | None, since: datetime) -> Delivered | None:
        """The message stamped ``stamp`` if it was posted (since ``since``); raises CannotCheckError."""
        ...

    def remember(self, channel: str, channel_id: str) -> None:
        """A channel's id, learnt from an earlier post (saves looking it up)."""
        ...


def post_retry_handlers(max_retries: int = 3) -> list[RetryHandler]:
    """For posts: only 429s, which Slack did not act on."""
    return [RateLimitErrorRetryHandler(max_retry_count=max_retries)]


def read_retry_handlers(max_retries: int = 3) -> list[RetryHandler]:
    """For reads, which are safe to repeat: 429s, 5xx and connection errors."""
    return [
        RateLimitErrorRetryHandler(max_retry_count=max_retries),
        ServerErrorRetryHandler(max_retry_count=max_retries),
        ConnectionErrorRetryHandler(max_retry_count=max_retries),
    ]


class Pacer:
    def __init__(self, seconds: float = MIN_SECONDS_BETWEEN_MESSAGES) -> None:
        self.seconds = seconds
        self.last = 0.0

    def wait(self) -> None:
        delay = self.last + self.seconds - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self.last = time.monotonic()


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


class WebhookSender:
    """Posts to the webhook's own channel; the rule's channel is named in the message."""

    description = "the Slack webhook"

    def __init__(
        self, url: str, pacer: Pacer | None = None, max_retries: int = 3, timeout: int = REQUEST_TIMEOUT_SECONDS
    ) -> None:
        self.timeout = timeout
        self.client = WebhookClient(url, timeout=timeout, retry_handlers=post_retry_handlers(max_retries))
        self.pacer = pacer or Pacer()

    def post(self, message: Message, channel: str, stamp: Stamp) -> Delivered:
        self.pacer.wait()
        try:
            response = self.client.send(
                text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False
            )
        except Exception as exc:
            raise transport_error(exc, "webhook", self.timeout) from None
        if response.status_code == 200:
            return Delivered(channel="webhook", ts=None)
        body = (response.body or "").strip()
        permanent = body in PERMANENT_ERRORS or response.status_code in (400, 403, 404, 410)
        maybe_delivered = response.status_code >= 500
        raise DeliveryError(
            f"webhook answered {response.status_code} {body[:100]}",
            permanent=permanent,
            maybe_delivered=maybe_delivered,
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

    def __init__(
        self,
        token: str,
        api_url: str,
        pacer: Pacer | None = None,
        max_retries: int = 3,
        timeout: int = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        base_url = api_url if api_url.endswith("/") else api_url + "/"
        self.timeout = timeout
        common = {"token": token, "base_url": base_url, "timeout": timeout}
        self.client = WebClient(**common, retry_handlers=post_retry_handlers(max_retries))  # type: ignore[arg-type]
        self.reader = WebClient(**common, retry_handlers=read_retry_handlers(max_retries))  # type: ignore[arg-type]
        self.pacer = pacer or Pacer()
        self.channel_ids: dict[str, str] = {}

    def _post(self, **kwargs: Any) -> Delivered:
        self.pacer.wait()
        try:
            response = self.client.chat_postMessage(unfurl_links=False, unfurl_media=False, **kwargs)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "") if exc.response is not None else "")
            status = exc.response.status_code if exc.response is not None else 0
            raise DeliveryError(
                f"Slack chat.postMessage answered {status} {error}",
                permanent=error in PERMANENT_ERRORS,
                maybe_delivered=status >= 500,
            ) from None
        except Exception as exc:
            raise transport_error(exc, "Slack chat.postMessage", self.timeout) from None
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
            return getattr(self.client, method)(**kwargs)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "") if exc.response is not None else "")
            status = exc.response.status_code if exc.response is not None else 0
            if error == "missing_scope":
                needed = exc.response.get("needed") or "files:write"
                raise ChartUnavailable(f"the bot token lacks the {needed} scope") from None
            if error in ("not_allowed_token_type", "not_authed", "invalid_auth", "account_inactive", "token_revoked"):
                raise ChartUnavailable(f"the Slack token cannot upload files ({error})") from None
            if status >= 500 or not error:  # slack-sdk's error for a body that is not JSON is its own sentence
                raise ChartUnavailable(f"Slack {name} answered HTTP {status}") from None
            raise ChartUnavailable(f"Slack {name} answered {error[:100]}") from None
        except Exception as exc:
            raise ChartUnavailable(str(transport_error(exc, f"Slack {name}", self.timeout))) from None

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
        try:
            return getattr(self.reader, method)(**arguments)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "") if exc.response is not None else "")
            needed = exc.response.get("needed", "") if exc.response is not None else ""
            if error == "missing_scope":
                raise CannotCheckError(f"the bot token lacks the {needed} scope") from None
            if error in PERMANENT_ERRORS or error in ("thread_not_found", "invalid_cursor"):
                raise CannotCheckError(f"Slack {method.replace('_', '.')} answered {error}") from None
            raise DeliveryError(f"Slack {method.replace('_', '.')} answered {error}", permanent=False,
                                maybe_delivered=True) from None  # fmt: skip
        except Exception as exc:
            unanswered = transport_error(exc, f"Slack {method.replace('_', '.')}", self.timeout)
            unanswered.maybe_delivered = True  # nothing was posted now, but the earlier post stays unknown
            raise unanswered from None
