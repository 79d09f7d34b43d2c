"""The alert step's stages on their own, as plain function calls: inhibition (drops held while the
pipeline is unhealthy), the pipeline's own alert (raised only once it pages, resolved in its thread),
grouping into digests by destination, and delivery's bookkeeping when Slack holds it back. Their
state is an in-memory record of what each stage asked to write; the senders are the terminal's."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from rich.console import Console

from mixpanel_alerts.alerts.deliver import AlertSummary, Delivery, ShowSender, TerminalSender
from mixpanel_alerts.alerts.group import group_digests
from mixpanel_alerts.alerts.health import PIPELINE, hold_drops, is_held, pipeline_notice
from mixpanel_alerts.alerts.ledger import Notification
from mixpanel_alerts.alerts.plan import Due
from mixpanel_alerts.alerts.render import Delay, Message
from mixpanel_alerts.alerts.slack import Delivered, HeldBackError, SlackPace, Stamp
from mixpanel_alerts.runs import Health
from tests.alert_plan_builders import NOW, ledger_of, notification, recent, sent

HEALTHY = Health(problems=[])
BLIP = Health(problems=["collect has failed in every run since 14:58 UTC (1 run): 503"], since=NOW)
DOWN = Health(problems=["collect has failed in every run since 13:00 UTC (9 runs): 503"],
              since=NOW - timedelta(hours=2), pages=True)  # fmt: skip


class Recorded:
    """What the stages asked the ledger to write, in order."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, Notification]] = []

    def insert(self, notification: Notification) -> None:
        self.writes.append(("insert", notification))

    def update(self, notification: Notification) -> None:
        self.writes.append(("update", notification))

    def add_silence(self, silence: Any) -> None:
        self.writes.append(("silence", silence))


def drop_due(incident_id: str) -> Due:
    return Due(notification(incident_id), recent(incident_id=incident_id, kind="drop"))


def spike_due(incident_id: str) -> Due:
    return Due(notification(incident_id), recent(incident_id=incident_id))


# --- inhibit --------------------------------------------------------------------------------------


def test_drops_are_held_while_the_pipeline_is_unhealthy_and_nothing_else() -> None:
    state = Recorded()
    due = [drop_due("d1"), spike_due("s1"), drop_due("d2")]
    assert hold_drops(due, HEALTHY, state, NOW) == (due, 0)  # type: ignore[arg-type]
    kept, held = hold_drops(due, BLIP, state, NOW)  # type: ignore[arg-type]
    assert [item.notification.incident_id for item in kept] == ["s1"] and held == 2
    assert all(is_held(item.notification) for item in due if item.incident and item.incident.kind == "drop")
    assert [kind for kind, _ in state.writes] == ["update", "update"]
    hold_drops(due, BLIP, state, NOW)  # type: ignore[arg-type]
    assert len(state.writes) == 2, "a drop already held is not written again"


# --- the pipeline's own alert ---------------------------------------------------------------------


def deliveries() -> tuple[list[tuple[Due, Message]], Callable[[Due, Callable[[Delay | None], Message]], None]]:
    delivered: list[tuple[Due, Message]] = []

    def deliver(due: Due, render: Callable[[Delay | None], Message]) -> None:
        due.notification.status = "sent"
        due.notification.slack_ts = "1.0"
        delivered.append((due, render(None)))

    return delivered, deliver


def test_the_pipeline_alert_waits_until_it_pages_then_goes_out_once() -> None:
    known: dict[str, Notification] = {}
    state = Recorded()
    delivered, deliver = deliveries()
    pipeline_notice(known, BLIP, channel="#ops", state=state, moment=NOW, deliver=deliver)  # type: ignore[arg-type]
    assert delivered == [] and known == {}, "a blip does not page"
    pipeline_notice(known, DOWN, channel="#ops", state=state, moment=NOW, deliver=deliver)  # type: ignore[arg-type]
    [(due, message)] = delivered
    assert due.notification.event_name == PIPELINE and due.notification.channel == "#ops"
    assert message.text.startswith(":warning: pipeline:") and "9 runs" in message.text
    pipeline_notice(known, DOWN, channel="#ops", state=state, moment=NOW, deliver=deliver)  # type: ignore[arg-type]
    assert len(delivered) == 1, "sent: not again while it lasts"
    pipeline_notice(known, HEALTHY, channel="#ops", state=state, moment=NOW, deliver=deliver)  # type: ignore[arg-type]
    notice, after = delivered[1]
    assert notice.notification.kind == "resolved" and notice.after is due.notification
    assert "resolved" in after.text


def test_an_undelivered_pipeline_alert_is_retried_while_unhealthy_and_withdrawn_on_recovery() -> None:
    since = NOW - timedelta(hours=2)
    pending = notification(f"{PIPELINE}:{since:%Y-%m-%dT%H:%M:%S}", event_name=PIPELINE, first_anomalous_minute=since)
    known = ledger_of(pending)
    state = Recorded()
    delivered, deliver = deliveries()
    pipeline_notice(known, BLIP, channel="#ops", state=state, moment=NOW, deliver=deliver)  # type: ignore[arg-type]
    assert [due.notification for due, _ in delivered] == [pending], "still unhealthy: retried"
    pending.status = "pending"
    pipeline_notice(known, HEALTHY, channel="#ops", state=state, moment=NOW, deliver=deliver)  # type: ignore[arg-type]
    assert pending.status == "withdrawn" and len(delivered) == 1


# --- group ----------------------------------------------------------------------------------------


def test_digests_group_by_channel_for_a_bot_and_by_destination_for_a_webhook() -> None:
    console = Console(file=io.StringIO())
    bot, webhook = ShowSender(console, TerminalSender(console)), ShowSender(console, TerminalSender(console))
    bot.per_channel, bot.description = True, "the Slack bot"
    items = [Due(notification(f"e{index}", channel=f"#c{index % 2}"), recent(incident_id=f"e{index}"))
             for index in range(6)]  # fmt: skip
    singles, digests = group_digests(items, {}, bot, 3, Recorded(), NOW)  # type: ignore[arg-type]
    assert digests == [] and len(singles) == 6, "three a channel is not above the threshold"
    singles, digests = group_digests(items, {}, webhook, 3, Recorded(), NOW)  # type: ignore[arg-type]
    assert singles == [] and len(digests) == 1 and len(digests[0][1]) == 6, "one webhook: one destination"


def test_an_alert_bound_to_a_digest_already_sent_is_marked_sent_with_it() -> None:
    digest = sent("digest:1", kind="digest", notification_id="digest:1")
    bound = notification("e1", digest_id="digest:1", attempts=1)
    state = Recorded()
    singles, digests = group_digests(
        [Due(bound, recent(incident_id="e1"))], ledger_of(digest), TerminalSender(Console(file=io.StringIO())), 5,
        state, NOW,  # type: ignore[arg-type]
    )  # fmt: skip
    assert singles == [] and digests == []
    assert bound.status == "sent" and bound.slack_ts == digest.slack_ts and state.writes == [("update", bound)]


# --- deliver --------------------------------------------------------------------------------------


class Refusing(TerminalSender):
    """A sender whose endpoint the run already gave up on."""

    def post(self, message: Message, channel: str, stamp: Stamp) -> Delivered:
        raise HeldBackError("Slack refused chat.postMessage 3 times in a row (last: HTTP 429)")


def test_an_alert_slack_held_back_stays_pending_as_it_was_not_attempted() -> None:
    notes: list[str] = []
    sender = Refusing(Console(file=io.StringIO()))
    sender.pace = SlackPace(60)
    summary = AlertSummary()
    delivery = Delivery(sender, Recorded(), summary, lambda: NOW, notes.append)  # type: ignore[arg-type]
    item = notification("e1")
    delivery.deliver(Due(item, recent(incident_id="e1")), lambda delay: Message(text="x", blocks=[]))
    assert item.status == "pending" and item.attempts == 0 and not item.maybe_sent
    assert summary.pending == 1 and "not sent" in notes[0] and "3 times in a row" in notes[0]
