"""Delivery to Slack with slack-sdk: an incoming webhook or a bot token (``chat.postMessage``).

slack-sdk's retry handlers retry rate limits (honouring ``Retry-After``), server errors and
connection errors; messages are paced to about one per second, Slack's posting rate.
"""

from __future__ import annotations

import dataclasses
import time
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
}


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclasses.dataclass(frozen=True)
class Delivered:
    channel: str
    ts: str | None


class Sender(Protocol):
    description: str

    def post(self, message: Message, channel: str) -> Delivered: ...

    def reply(self, message: Message, delivered: Delivered) -> Delivered: ...


def retry_handlers(max_retries: int = 3) -> list[RetryHandler]:
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


class WebhookSender:
    """Posts to the webhook's own channel; the rule's channel is named in the message."""

    description = "the Slack webhook"

    def __init__(self, url: str, pacer: Pacer | None = None, max_retries: int = 3) -> None:
        self.client = WebhookClient(url, timeout=30, retry_handlers=retry_handlers(max_retries))
        self.pacer = pacer or Pacer()

    def post(self, message: Message, channel: str) -> Delivered:
        self.pacer.wait()
        try:
            response = self.client.send(text=message.text, blocks=message.blocks)
        except Exception as exc:
            raise DeliveryError(f"webhook unreachable: {type(exc).__name__}", permanent=False) from None
        if response.status_code == 200:
            return Delivered(channel="webhook", ts=None)
        body = (response.body or "").strip()
        permanent = body in PERMANENT_ERRORS or response.status_code in (400, 403, 404, 410)
        raise DeliveryError(f"webhook answered {response.status_code} {body[:100]}", permanent=permanent)

    def reply(self, message: Message, delivered: Delivered) -> Delivered:
        return self.post(message, delivered.channel)


class BotSender:
    """``chat.postMessage`` to each rule's channel; resolved notices reply in the alert's thread."""

    description = "the Slack bot"

    def __init__(self, token: str, api_url: str, pacer: Pacer | None = None, max_retries: int = 3) -> None:
        base_url = api_url if api_url.endswith("/") else api_url + "/"
        self.client = WebClient(token=token, base_url=base_url, timeout=30, retry_handlers=retry_handlers(max_retries))
        self.pacer = pacer or Pacer()

    def _call(self, method: str, **kwargs: Any) -> Any:
        self.pacer.wait()
        try:
            return getattr(self.client, method)(**kwargs)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "") if exc.response is not None else "")
            status = exc.response.status_code if exc.response is not None else 0
            permanent = error in PERMANENT_ERRORS
            raise DeliveryError(f"Slack {method} answered {status} {error}", permanent=permanent) from None
        except Exception as exc:
            raise DeliveryError(f"Slack unreachable: {type(exc).__name__}", permanent=False) from None

    def post(self, message: Message, channel: str) -> Delivered:
        response = self._call("chat_postMessage", channel=channel, text=message.text, blocks=message.blocks)
        return Delivered(channel=str(response.get("channel") or channel), ts=response.get("ts"))

    def reply(self, message: Message, delivered: Delivered) -> Delivered:
        response = self._call(
            "chat_postMessage",
            channel=delivered.channel,
            thread_ts=delivered.ts,
            reply_broadcast=True,
            text=message.text,
            blocks=message.blocks,
        )
        return Delivered(channel=str(response.get("channel") or delivered.channel), ts=response.get("ts"))
