"""The Slack fake speaks the protocol the product relies on: driven here through slack-sdk's own
WebClient and WebhookClient, as the product drives it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from tests.slack_fake import BOT_TOKEN, SlackFake

METADATA = {"event_type": "mixpanel_alert", "event_payload": {"incident": "errors-2024-01-01T00:00", "state": "firing"}}


@pytest.fixture
def fake() -> Iterator[SlackFake]:
    slack = SlackFake()
    yield slack
    slack.stop()


def client(fake: SlackFake, **kwargs: Any) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=fake.api_url, **kwargs)


def wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def history(fake: SlackFake, **kwargs: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for page in client(fake).conversations_history(channel="C0ERRORS", **kwargs):
        messages.extend(page["messages"])
    return messages


def test_post_with_metadata_is_found_in_history(fake: SlackFake) -> None:
    web = client(fake)
    posted = web.chat_postMessage(channel="#alerts-errors", text="errors spiked", metadata=METADATA)
    assert posted["ok"] and posted["channel"] == "C0ERRORS"
    web.chat_postMessage(channel="#alerts-checkout", text="elsewhere")
    # a form-encoded post: metadata and blocks are JSON strings there
    form = web.api_call(
        "chat.postMessage",
        data={"channel": "C0ERRORS", "text": "form", "metadata": '{"event_type": "x", "event_payload": {"a": 1}}'},
    )
    assert fake.messages[0]["metadata"] == METADATA and fake.messages[0]["channel"] == "C0ERRORS"
    assert fake.messages[2]["metadata"] == {"event_type": "x", "event_payload": {"a": 1}}
    timestamps = [Decimal(message["ts"]) for message in fake.messages]
    assert timestamps == sorted(set(timestamps)), "unique and increasing"

    found = web.conversations_history(channel="C0ERRORS", include_all_metadata=True)
    assert found["ok"] and found["has_more"] is False and found["response_metadata"]["next_cursor"] == ""
    assert [m["ts"] for m in found["messages"]] == [form["ts"], posted["ts"]], "newest first, one channel"
    first = found["messages"][1]
    assert first["metadata"] == METADATA and first["text"] == "errors spiked" and first["type"] == "message"
    assert first["bot_id"] == "B0BOT" and first["user"] == "U0BOT"
    plain = web.conversations_history(channel="C0ERRORS")
    assert [m["ts"] for m in plain["messages"]] == [form["ts"], posted["ts"]]
    assert all("metadata" not in m for m in plain["messages"]), "metadata only with include_all_metadata"
    with pytest.raises(SlackApiError) as by_name:
        web.conversations_history(channel="#alerts-errors")
    assert by_name.value.response["error"] == "channel_not_found", "history takes a channel id, as Slack's does"
    listed = web.conversations_list(limit=1)
    assert listed["channels"][0]["id"] in ("C0CHECKOUT", "C0ERRORS") and listed["response_metadata"]["next_cursor"]

    with pytest.raises(SlackApiError) as bad:
        web.chat_postMessage(channel="C0ERRORS", text="x", metadata={"event_payload": {}})
    assert bad.value.response["error"] == "invalid_metadata_format"
    with pytest.raises(SlackApiError) as unknown:
        web.conversations_history(channel="#nowhere")
    assert unknown.value.response["error"] == "channel_not_found"


def test_history_pages_with_limit_and_filters_by_ts(fake: SlackFake) -> None:
    web = client(fake)
    ts = [web.chat_postMessage(channel="C0ERRORS", text=f"m{i}")["ts"] for i in range(5)]
    # iterating a SlackResponse follows next_cursor (it reuses one object: read each page as it comes)
    pages = [
        ([m["text"] for m in page["messages"]], page["has_more"])
        for page in web.conversations_history(channel="C0ERRORS", limit=2, include_all_metadata=True)
    ]
    assert pages == [(["m4", "m3"], True), (["m2", "m1"], True), (["m0"], False)]
    # the same through a POST form body, paging by hand
    texts, cursor = [], None
    while True:
        args = {"channel": "C0ERRORS", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = web.api_call("conversations.history", params=args)
        texts += [m["text"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert texts == ["m4", "m3", "m2", "m1", "m0"]
    # oldest/latest are exclusive unless inclusive
    assert [m["ts"] for m in history(fake, oldest=ts[1], latest=ts[3])] == [ts[2]]
    assert [m["ts"] for m in history(fake, oldest=ts[1], latest=ts[3], inclusive=True)] == [ts[3], ts[2], ts[1]]
    assert len(history(fake, limit=5000)) == 5, "a limit above the maximum is capped, not refused"


def test_replies_and_broadcast_replies(fake: SlackFake) -> None:
    web = client(fake)
    parent = web.chat_postMessage(channel="C0ERRORS", text="firing")["ts"]
    quiet = web.chat_postMessage(channel="C0ERRORS", text="still firing", thread_ts=parent)["ts"]
    loud = web.chat_postMessage(
        channel="C0ERRORS", text="resolved", thread_ts=parent, reply_broadcast=True, metadata=METADATA
    )["ts"]
    assert fake.messages[1]["thread_ts"] == parent and fake.messages[1]["reply_broadcast"] is False
    assert fake.messages[2]["thread_ts"] == parent and fake.messages[2]["reply_broadcast"] is True

    listed = history(fake, include_all_metadata=True)
    assert [m["ts"] for m in listed] == [loud, parent], "a plain reply is not in the channel's history"
    assert listed[0]["subtype"] == "thread_broadcast" and listed[0]["thread_ts"] == parent
    assert listed[0]["metadata"] == METADATA
    assert listed[1]["thread_ts"] == parent and listed[1]["reply_count"] == 2 and "subtype" not in listed[1]

    thread = web.conversations_replies(channel="C0ERRORS", ts=parent)
    assert [m["ts"] for m in thread["messages"]] == [parent, quiet, loud], "the parent first, then oldest first"
    pages = [
        [m["text"] for m in page["messages"]]
        for page in web.conversations_replies(channel="C0ERRORS", ts=parent, limit=1)
    ]
    assert pages == [["firing"], ["still firing"], ["resolved"]]
    with pytest.raises(SlackApiError) as missing:
        web.conversations_replies(channel="C0ERRORS", ts="1.000001")
    assert missing.value.response["error"] == "thread_not_found"


def test_missing_scope_and_auth_test(fake: SlackFake) -> None:
    web = client(fake)
    identity = web.auth_test()
    assert identity["user"] == "mixpanel-alerts" and identity["team"] == "Acme" and identity["bot_id"] == "B0BOT"
    assert set(identity.headers["x-oauth-scopes"].split(",")) == fake.scopes
    fake.scopes.discard("channels:history")
    with pytest.raises(SlackApiError) as refused:
        web.conversations_history(channel="C0ERRORS")
    assert refused.value.response["error"] == "missing_scope"
    assert refused.value.response["needed"] == "channels:history"
    assert "channels:history" not in refused.value.response["provided"].split(",")
    assert "channels:history" not in web.auth_test().headers["x-oauth-scopes"]
    fake.scopes.discard("chat:write")
    with pytest.raises(SlackApiError) as cannot_post:
        web.chat_postMessage(channel="C0ERRORS", text="x")
    assert cannot_post.value.response["needed"] == "chat:write" and fake.messages == []
    with pytest.raises(SlackApiError) as unknown:
        web.api_call("chat.update", json={"channel": "C0ERRORS", "ts": "1.1", "text": "x"})
    assert unknown.value.response["error"] == "unknown_method"


def test_stall_times_the_client_out_but_the_message_is_posted(fake: SlackFake) -> None:
    fake.inject("stall:2")
    fake.scopes.add("groups:history")
    history(fake)  # a read does not take a fault meant for a post
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        client(fake, timeout=1, retry_handlers=[]).chat_postMessage(channel="C0ERRORS", text="late")
    assert time.monotonic() - started < 1.9 and fake.messages == []
    wait_for(lambda: len(fake.messages) == 1)
    assert [m["text"] for m in history(fake)] == ["late"]
    assert ("chat.postMessage", "stall:2") in fake.requests


def test_process_then_drop(fake: SlackFake) -> None:
    fake.inject("process-then-drop")
    with pytest.raises(OSError):  # URLError / ConnectionResetError / RemoteDisconnected
        client(fake, retry_handlers=[]).chat_postMessage(channel="C0ERRORS", text="once")
    assert [m["text"] for m in fake.messages] == ["once"]
    assert fake.requests == [("chat.postMessage", "process-then-drop")]
    # slack-sdk's default handlers retry a dropped connection: a blind retry posts twice
    fake.inject("process-then-drop")
    client(fake).chat_postMessage(channel="C0ERRORS", text="twice")
    assert [m["text"] for m in fake.messages] == ["once", "twice", "twice"]

    fake.inject("process-then-drop")
    with pytest.raises(OSError):
        WebhookClient(fake.webhook_url, retry_handlers=[]).send(text="hook")
    assert fake.messages[-1]["text"] == "hook" and fake.requests[-1] == (
        "/services/T000/B000/XXXX",
        "process-then-drop",
    )


def test_process_then_500(fake: SlackFake) -> None:
    fake.inject("process-then-500", "process-then-500")
    with pytest.raises(SlackApiError) as failed:
        client(fake, retry_handlers=[]).chat_postMessage(channel="C0ERRORS", text="posted anyway")
    assert failed.value.response.status_code == 500
    response = WebhookClient(fake.webhook_url, retry_handlers=[]).send(text="hook")
    assert response.status_code == 500
    assert [m["text"] for m in fake.messages] == ["posted anyway", "hook"]
    assert [outcome for _, outcome in fake.requests] == ["process-then-500"] * 2


def test_hold_until_release(fake: SlackFake) -> None:
    fake.inject("hold")
    answers: list[Any] = []
    thread = threading.Thread(
        target=lambda: answers.append(client(fake).chat_postMessage(channel="C0ERRORS", text="in flight"))
    )
    thread.start()
    assert fake.held.wait(10)
    assert [m["text"] for m in fake.messages] == ["in flight"] and fake.held_requests == ["chat.postMessage"]
    time.sleep(0.2)
    assert thread.is_alive() and answers == []
    fake.release()
    thread.join(10)
    assert answers and answers[0]["ts"] == fake.messages[0]["ts"] and not fake.held.is_set()
    assert fake.requests == [("chat.postMessage", "hold")]


def test_stop_releases_a_held_request() -> None:
    fake = SlackFake()
    fake.inject("hold")
    thread = threading.Thread(target=lambda: WebhookClient(fake.webhook_url, timeout=10).send(text="x"), daemon=True)
    thread.start()
    assert fake.held.wait(10)
    started = time.monotonic()
    fake.stop()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 5


def test_faults_for_one_method(fake: SlackFake) -> None:
    web = client(fake)
    web.chat_postMessage(channel="C0ERRORS", text="a")
    fake.inject("500", method="conversations.history")
    web.chat_postMessage(channel="C0ERRORS", text="b")  # not taken by a post
    with pytest.raises(SlackApiError):
        web.conversations_history(channel="C0ERRORS")
    assert len(history(fake)) == 2
    assert WebhookClient(fake.webhook_url).send(text="hook").body == "ok"
    assert fake.messages[-1]["via"] == "webhook" and fake.messages[-1]["ts"] > fake.messages[-2]["ts"]
