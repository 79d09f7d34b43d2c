"""Pacing towards Slack: Retry-After honoured on every call (bot and webhook, posts, reads and
uploads), an endpoint that keeps refusing left alone for the rest of the run, and the alert step's
time bounded. The arithmetic with a fake clock; the behaviour against the Slack fake, timed."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mixpanel_alerts.alerts.render import Message
from mixpanel_alerts.alerts.slack import (
    BotSender,
    DeliveryError,
    HeldBackError,
    SlackPace,
    Stamp,
    WebhookSender,
)
from mixpanel_alerts.simulator import ExportSimulator
from tests.alert_runs import LEDGER, spike
from tests.conftest import output_of, query, rule, write_events_config
from tests.slack_fake import BOT_TOKEN, WEBHOOK_PATH, SlackFake

MESSAGE = Message(text="hello", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}])
STAMP = Stamp(dedup_key="k", kind="firing", incident_id="i")


class Clock:
    """A monotonic clock that only moves when something sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def pace(budget: float = 120.0, interval: float = 0.0) -> tuple[SlackPace, Clock]:
    clock = Clock()
    return SlackPace(budget, message_interval=interval, clock=clock, sleep=clock.sleep), clock


# --- the arithmetic -------------------------------------------------------------------------------


def test_the_next_call_to_an_endpoint_waits_out_its_retry_after() -> None:
    paced, clock = pace()
    assert paced.refused("chat.postMessage", 429, 7.0)
    clock.now += 2  # two seconds went by doing other things
    paced.before("chat.postMessage")
    assert clock.slept == [5.0]
    assert [(wait.asked, wait.waited) for wait in paced.waits] == [(7.0, 7.0)]
    paced.before("conversations.history")  # another endpoint is not held
    assert clock.slept == [5.0]


def test_an_endpoint_that_refuses_three_times_in_a_row_is_not_asked_again_this_run() -> None:
    paced, _ = pace()
    assert paced.refused("webhook", 503, None) and paced.refused("webhook", 503, None)
    paced.answered("webhook")  # an answer in between: the count starts again
    assert paced.refused("webhook", 500, None) and paced.refused("webhook", 502, None)
    assert not paced.refused("webhook", 503, None)
    with pytest.raises(HeldBackError, match="refused webhook 3 times in a row"):
        paced.before("webhook")


def test_a_retry_after_past_the_steps_time_gives_up_at_once_without_waiting() -> None:
    paced, clock = pace(budget=30)
    assert not paced.refused("chat.postMessage", 429, 600.0)
    with pytest.raises(HeldBackError, match="past the alert step's time"):
        paced.before("chat.postMessage")
    assert clock.slept == []
    assert [(wait.asked, wait.waited) for wait in paced.waits] == [(600.0, None)], "asked, never asked again"


def test_nothing_starts_after_the_steps_deadline() -> None:
    paced, clock = pace(budget=30)
    paced.before("chat.postMessage")
    clock.now += 31
    with pytest.raises(HeldBackError, match="time is up"):
        paced.before("chat.postMessage")


def test_a_rate_limit_holds_back_its_channel_and_a_server_error_the_whole_method() -> None:
    paced, _ = pace()
    for _ in range(3):
        paced.refused("chat.postMessage", 429, 1.0, scope="#busy")
    with pytest.raises(HeldBackError):
        paced.before("chat.postMessage", scope="#busy")
    paced.before("chat.postMessage", scope="#quiet")  # Slack limits posts per channel
    for _ in range(3):
        paced.refused("chat.postMessage", 503, None, scope="#quiet")
    with pytest.raises(HeldBackError):
        paced.before("chat.postMessage", scope="#other")


def test_messages_are_spaced_by_the_posting_rate() -> None:
    paced, clock = pace(interval=1.0)
    paced.before("chat.postMessage", message=True)
    paced.before("chat.postMessage", message=True)
    clock.now += 0.25
    paced.before("chat.postMessage", message=True)
    assert clock.slept == [1.0, 0.75]


# --- against the Slack fake, timed ----------------------------------------------------------------


def gaps(fake: SlackFake, target: str) -> list[float]:
    """Seconds between consecutive requests to ``target`` (a path)."""
    times = [at for at, path, _ in fake.timeline if path.endswith(target)]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def test_a_bot_post_refused_with_retry_after_is_posted_again_after_that_long(slack_fake: SlackFake) -> None:
    sender = BotSender(BOT_TOKEN, slack_fake.api_url, pacer=SlackPace(60, message_interval=0))
    slack_fake.inject("429:2", method="chat.postMessage")
    delivered = sender.post(MESSAGE, "#alerts-errors", STAMP)
    assert delivered.ts and len(slack_fake.messages) == 1
    [gap] = gaps(slack_fake, "chat.postMessage")
    assert 2.0 <= gap < 3.5, gap
    assert [(wait.asked, round(wait.waited or 0)) for wait in sender.pace.waits] == [(2.0, 2)]


def test_a_webhook_refused_with_retry_after_is_posted_again_after_that_long(slack_fake: SlackFake) -> None:
    sender = WebhookSender(slack_fake.webhook_url, pacer=SlackPace(60, message_interval=0))
    slack_fake.inject("429:2", method="webhook")
    sender.post(MESSAGE, "#alerts-errors", STAMP)
    [gap] = gaps(slack_fake, WEBHOOK_PATH)
    assert 2.0 <= gap < 3.5 and len(slack_fake.messages) == 1


def test_reads_and_uploads_honour_retry_after_too(slack_fake: SlackFake) -> None:
    sender = BotSender(BOT_TOKEN, slack_fake.api_url, pacer=SlackPace(60, message_interval=0))
    slack_fake.inject("429:1", method="conversations.history")
    assert sender.find(STAMP, "C0ERRORS", None, datetime.now(UTC) - timedelta(hours=1)) is None
    assert 1.0 <= gaps(slack_fake, "conversations.history")[0] < 2.5
    slack_fake.inject("429:1", method="files.getUploadURLExternal")
    assert sender.upload_chart(b"\x89PNG...", "chart.png", "a chart", "a chart of counts")
    assert 1.0 <= gaps(slack_fake, "files.getUploadURLExternal")[0] < 2.5


def test_after_three_refusals_the_run_stops_posting_without_asking_slack(slack_fake: SlackFake) -> None:
    sender = BotSender(BOT_TOKEN, slack_fake.api_url, pacer=SlackPace(60, message_interval=0))
    slack_fake.inject("429:1", "429:1", "429:1", method="chat.postMessage")
    started = time.monotonic()
    with pytest.raises(DeliveryError) as refused:
        sender.post(MESSAGE, "#alerts-errors", STAMP)
    assert refused.value.give_up and not refused.value.maybe_delivered
    asked = len(slack_fake.requests)
    with pytest.raises(HeldBackError):
        sender.post(MESSAGE, "#alerts-errors", STAMP)
    assert len(slack_fake.requests) == asked == 3, "the next alert for that channel is not even asked for"
    assert 2.0 <= time.monotonic() - started < 5, "two waits of a second, and no more"
    assert sender.post(MESSAGE, "#alerts-checkout", STAMP).ts, "another channel's posts go on"


def test_a_retry_after_longer_than_the_steps_time_is_not_waited_for(slack_fake: SlackFake) -> None:
    sender = WebhookSender(slack_fake.webhook_url, pacer=SlackPace(20, message_interval=0))
    slack_fake.inject("429:3600", method="webhook")
    started = time.monotonic()
    with pytest.raises(DeliveryError) as refused:
        sender.post(MESSAGE, "#alerts-errors", STAMP)
    assert refused.value.give_up and time.monotonic() - started < 2
    assert slack_fake.messages == []


# --- end to end -----------------------------------------------------------------------------------


def test_a_429_storm_leaves_alerts_pending_within_the_steps_time_and_the_next_run_sends_each_once(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    slack_fake: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    names = [f"storm_{index}" for index in range(3)]
    write_events_config(tmp_path, {"events": [rule(name) for name in names]})
    for index, name in enumerate(names):
        sim.add_events(spike(name, 2, 8 + index))
    env = make_env(sim, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack_fake.api_url, ALERT_DIGEST_THRESHOLD="10")
    slack_fake.inject(*["429:2"] * 50, method="chat.postMessage")
    stormy = run_cli(["run"], env)
    assert stormy.returncode == 1, output_of(stormy)
    posts = [at for at, path, _ in slack_fake.timeline if path.endswith("chat.postMessage")]
    assert len(posts) == 3, "three refusals, then the run stops posting to the channel"
    assert all(gap >= 2.0 for gap in gaps(slack_fake, "chat.postMessage")), "Retry-After: 2 honoured"
    assert "3 alert(s) not delivered" in output_of(stormy)
    assert query(db_path, f"select status, count(*) from {LEDGER} group by status") == [("pending", 3)]
    slack_fake.method_faults.clear()
    calm = run_cli(["run"], env)
    assert calm.returncode == 0, output_of(calm)
    assert len(slack_fake.messages) == 3
    assert all(sum(name in message["text"] for message in slack_fake.messages) == 1 for name in names)
    assert query(db_path, f"select status, count(*) from {LEDGER} group by status") == [("sent", 3)]
