"""Stage 4 of the alert step: delivery, with the ledger true at every step.

Each notification is recorded before it is sent, and marked ``sent`` once Slack accepts it. Before
each post the ledger says ``maybe_sent``: if the run dies mid-post, or Slack's answer is lost, the
next attempt first looks for the message in the channel (bot token) and sends it only if it is not
there. A webhook cannot be read back: such a message is sent again with a note that it may repeat
(the one window left, stated in the README).

Where messages go is the run's choice of output: Slack (a bot token or a webhook), the terminal
(no Slack configured), or a dry run (rendered in the terminal, nothing recorded: ``DryRunOutput``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from mixpanel_alerts.core.config import Settings
from mixpanel_alerts.core.times import utc

from .chart import render_chart
from .ledger import Notification
from .notices import closed_message, digest_message
from .plan import Due, delay_of
from .reads import CHART_HOURS, Warehouse
from .render import (
    ChartAttachment,
    Delay,
    Incident,
    Message,
    chart_alt_text,
    chart_filename,
    chart_title,
    firing_message,
    resolved_message,
)
from .slack import (
    BotSender,
    CannotCheckError,
    ChartUnavailable,
    Delivered,
    DeliveryError,
    HeldBackError,
    Pacer,
    Sender,
    SlackPace,
    Stamp,
    WebhookSender,
)
from .state import AlertState, DryRunState

logger = logging.getLogger("mixpanel_alerts")

# in one run, a post whose answer was lost (not a timeout) is checked for and tried again this often
MAX_POSTS_PER_RUN = 3
SECONDS_BEFORE_CHECKING = 2.0
# a message may show up in a channel's history this long before its ledger row was written
CLOCK_SKEW = timedelta(minutes=10)
TIME_UP = "the alert step's time is up (ALERT_STEP_TIMEOUT_SECONDS)"


@dataclasses.dataclass
class AlertSummary:
    """What the alert step did: the run prints it and records it in ``pipeline_runs``."""

    sent: int = 0
    pending: int = 0
    skipped: int = 0  # first seen in this run older than the lookback: recorded, not sent
    failed: int = 0
    withdrawn: int = 0
    late: int = 0
    held: int = 0
    silenced: int = 0
    digests: int = 0

    def line(self, target: str) -> str:
        late = f" ({self.late} late)" if self.late else ""
        digests = f" ({self.digests} digest{'s' if self.digests != 1 else ''})" if self.digests else ""
        skipped = f", {self.skipped} skipped (older than the lookback)" if self.skipped else ""
        withdrawn = f", {self.withdrawn} withdrawn (rule removed or changed)" if self.withdrawn else ""
        silenced = f", {self.silenced} silenced" if self.silenced else ""
        held = f", {self.held} drop alert(s) held (the pipeline is unhealthy)" if self.held else ""
        return (
            f"alerts: {self.sent} sent to {target}{late}{digests}, {self.pending} pending, {self.failed} failed"
            f"{skipped}{withdrawn}{silenced}{held}"
        )


class TerminalSender:
    """No Slack configured: show the message in the terminal."""

    description = "the terminal"
    per_channel = False

    def __init__(self, console: Console) -> None:
        self.console = console
        self.pace: SlackPace = Pacer(0)

    def post(self, message: Message, channel: str, stamp: Stamp) -> Delivered:
        show(self.console, message, channel)
        return Delivered(channel="terminal", ts=None)

    def reply(self, message: Message, thread: Delivered, stamp: Stamp, broadcast: bool = True) -> Delivered:
        return self.post(message, thread.channel, stamp)

    def find(self, stamp: Stamp, channel: str, thread: Delivered | None, since: datetime) -> Delivered | None:
        return None  # showing it again does no harm

    def remember(self, channel: str, channel_id: str) -> None:
        pass


class ShowSender(TerminalSender):
    """A dry run: each message shown in the terminal as ``like`` (the configured sender) would
    deliver it (to each rule's channel with a bot, to one place with a webhook)."""

    def __init__(self, console: Console, like: Sender) -> None:
        super().__init__(console)
        self.description = like.description
        self.per_channel = like.per_channel


def show(console: Console, message: Message, channel: str) -> None:
    """A readable rendering of Block Kit blocks."""
    lines: list[str] = []
    for block in message.blocks:
        if block["type"] == "header":
            continue
        if block["type"] == "image":
            lines.append(f"[chart: {block['title']['text']} (Slack file {block['slack_file']['id']})]")
            continue
        if "text" in block:
            lines.append(block["text"]["text"])
        for field in block.get("fields", []):
            lines.append(field["text"].replace("\n", ": ", 1))
        for element in block.get("elements", []):
            lines.append(element.get("text", ""))
    title = next((block["text"]["text"] for block in message.blocks if block["type"] == "header"), message.text)
    text = "\n".join(lines).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")  # as Slack shows it
    # Text, not str: a Panel would read a str (an event name like "promo [/sale]") as markup
    panel = Panel(Text(text), title=Text(f"{title} → {channel}"), title_align="left", expand=False)
    console.print(panel, soft_wrap=False, markup=False)


def choose_sender(settings: Settings, console: Console, pace: SlackPace | None = None) -> Sender:
    """The bot token's sender, else the webhook's, else the terminal; ``pace`` bounds the time."""
    timeout = settings.slack_timeout_seconds
    if settings.slack_bot_token:
        return BotSender(settings.slack_bot_token, settings.slack_api_url, pacer=pace, timeout=timeout)
    if settings.slack_webhook_url:
        return WebhookSender(settings.slack_webhook_url, pacer=pace, timeout=timeout)
    return TerminalSender(console)


class SlackOutput:
    """Deliver for real: Slack (or the terminal when Slack is not configured), with the ledger."""

    dry_run = False

    def __init__(self, settings: Settings, console: Console) -> None:
        self.pace = SlackPace(settings.alert_step_timeout_seconds)
        self.sender = choose_sender(settings, console, self.pace)
        self.ops_sender = ops_sender(settings, self.sender, self.pace)
        self.console = console

    def state(self, client: Any, warehouse: str) -> AlertState:
        return AlertState(client, warehouse)


class DryRunOutput:
    """Render what would be sent, in the terminal; send and record nothing."""

    dry_run = True

    def __init__(self, settings: Settings, console: Console) -> None:
        configured = choose_sender(settings, console)
        self.pace: SlackPace = Pacer(0)
        self.sender: Sender = ShowSender(console, configured)
        self.ops_sender: Sender = self.sender
        self.console = console

    def state(self, client: Any, warehouse: str) -> DryRunState:
        return DryRunState(client, warehouse)


Output = SlackOutput | DryRunOutput


def ops_sender(settings: Settings, sender: Sender, pace: SlackPace) -> Sender:
    """Where the pipeline's alerts go: OPS_ALERT_CHANNEL through the bot; without it, the webhook's
    channel when a webhook is set beside a bot token (the bot posts the rules' alerts)."""
    if settings.ops_alert_channel or not settings.slack_webhook_url or not isinstance(sender, BotSender):
        return sender
    return WebhookSender(settings.slack_webhook_url, pacer=pace, timeout=settings.slack_timeout_seconds)


class Renderer:
    """Renders one notification (called again for each attempt, with its delay). A firing alert
    sent with a bot token carries a chart of the last hours, uploaded once; an upload that fails
    (no ``files:write`` scope, Slack down) leaves the sparkline and a note. ``without_chart``:
    Slack refused the image (a file not yet processed), so the alert goes without it."""

    def __init__(
        self, warehouse: Warehouse, settings: Settings, due: Due, descriptions: dict[str, str], sender: Sender
    ) -> None:
        self.warehouse, self.settings, self.due, self.descriptions = warehouse, settings, due, descriptions
        self.sender = sender
        self.chart: ChartAttachment | None = None
        self.refused = False

    def __call__(self, delay: Delay | None) -> Message:
        incident, notification = self.due.incident, self.due.notification
        if self.due.closed is not None or incident is None:
            reason = self.due.closed or "its incident no longer exists"
            return closed_message(notification.event_name, notification.first_anomalous_minute, reason, delay=delay)
        if notification.kind == "resolved":
            return resolved_message(incident, delay=delay)
        webhook = self.settings.slack_webhook_url and not self.settings.slack_bot_token
        return firing_message(
            incident,
            minute_counts=self.warehouse.minute_counts(incident),
            # sample events say something of a spike, nothing of a drop
            samples=[] if incident.kind == "drop" else self.warehouse.samples(incident),
            investigation=self.warehouse.investigation(incident),
            delivered_to="the webhook's channel" if webhook else None,
            description=self.descriptions.get(incident.rule_id, ""),
            delay=delay,
            chart=None if webhook else self._chart(incident),
        )

    def without_chart(self) -> bool:
        """Drop the image after Slack refused it; False if there was none to drop."""
        if self.chart is None or not self.chart.file_id:
            return False
        self.chart = ChartAttachment(None, "Slack did not accept the image", CHART_HOURS)
        return True

    def _chart(self, incident: Incident) -> ChartAttachment:
        if self.chart is not None:
            return self.chart
        if not isinstance(self.sender, BotSender):
            self.chart = ChartAttachment(None, None, CHART_HOURS)  # says where the image would be
            return self.chart
        try:
            png = render_chart(
                self.warehouse.chart_points(incident), incident_start=incident.first_anomalous_minute,
                incident_end=incident.last_anomalous_minute if incident.status == "over" else None,
                title=chart_title(incident, CHART_HOURS),
            )  # fmt: skip
            file_id = self.sender.upload_chart(
                png, chart_filename(incident), chart_title(incident, CHART_HOURS), chart_alt_text(incident, CHART_HOURS)
            )
        except ChartUnavailable as exc:
            logger.warning("the chart of the alert for %s is not attached: %s", incident.event_name, exc.reason)
            self.chart = ChartAttachment(None, exc.reason, CHART_HOURS)
        else:
            self.chart = ChartAttachment(file_id, None, CHART_HOURS)
        return self.chart


@dataclasses.dataclass
class Delivery:
    """Delivers one notification at a time and keeps its ledger row true at every step. ``note``
    says what did not go out (the run's output)."""

    sender: Sender
    state: AlertState
    summary: AlertSummary
    now: Callable[[], datetime]
    note: Callable[[str], None]

    def deliver(self, due: Due, render: Callable[[Delay | None], Message]) -> None:
        notification = due.notification
        thread = None
        if due.after is not None and due.after.slack_ts:
            thread = Delivered(channel=due.after.slack_channel or due.after.channel, ts=due.after.slack_ts)
        stamp = Stamp(dedup_key=notification.dedup_key or notification.notification_id, kind=notification.kind,
                      incident_id=notification.incident_id)  # fmt: skip
        earlier_attempts = notification.attempts  # this run's retries do not make it late
        unconfirmed = bool(notification.maybe_sent)  # an earlier post may have arrived, and nobody has looked
        for post in range(MAX_POSTS_PER_RUN):
            may_repeat = False
            if unconfirmed:
                try:
                    found = self._find(notification, stamp, thread)
                except CannotCheckError as exc:
                    may_repeat = True
                    logger.warning(
                        "cannot tell whether the alert for %s reached Slack (%s): sending it again, marked as a "
                        "possible repeat", notification.event_name, exc,
                    )  # fmt: skip
                except DeliveryError as exc:
                    self._failed(notification, exc)
                    return
                else:
                    if found is not None:
                        self._sent(notification, found, delay_of(notification, self.now(), False, earlier_attempts))
                        return
                    unconfirmed = False  # looked: it is not there
            delay = delay_of(notification, self.now(), may_repeat, earlier_attempts)
            message = render(delay)
            was_unconfirmed = bool(notification.maybe_sent)
            notification.attempts += 1
            notification.maybe_sent = True
            notification.updated_at = self.now()
            self.state.update(notification)  # from here until Slack answers, the message may be posted
            try:
                if thread is not None:
                    # a notice of an alert delivered in a digest stays in the digest's thread
                    broadcast = not (due.after is not None and due.after.digest_id)
                    delivered = self.sender.reply(message, thread, stamp, broadcast)
                else:
                    delivered = self.sender.post(message, notification.channel, stamp)
            except HeldBackError as exc:  # not asked: as it was before this attempt
                notification.attempts -= 1
                notification.maybe_sent = was_unconfirmed or may_repeat
                self._failed(notification, exc)
                return
            except DeliveryError as exc:
                if "invalid_blocks" in str(exc) and isinstance(render, Renderer) and render.without_chart():
                    # Slack refused the image (nothing was posted): the alert goes without it
                    notification.maybe_sent = unconfirmed or may_repeat
                    continue
                # a copy may be out there: this one, or an earlier one nobody could look for
                unconfirmed = exc.maybe_delivered or may_repeat
                notification.maybe_sent = unconfirmed
                if exc.permanent or exc.timed_out or exc.give_up or post == MAX_POSTS_PER_RUN - 1:
                    # a timeout: Slack may still be posting it; the next run looks first
                    self._failed(notification, exc)
                    return
                notification.last_error = str(exc)
                self.state.update(notification)
                # let Slack finish before looking (the pace also holds its Retry-After, if it sent one)
                if not self._pause(SECONDS_BEFORE_CHECKING * (post + 1)):
                    self._failed(
                        notification, HeldBackError("the alert step's time is up (ALERT_STEP_TIMEOUT_SECONDS)")
                    )
                    return
                continue
            self._sent(notification, delivered, delay)
            return

    def deliver_digest(self, digest: Notification, members: list[Due]) -> None:
        """One message for ``members`` (new alerts of one channel); each is marked sent with it."""
        live = [item for item in members if item.incident is not None]
        if not live:
            digest.status, digest.last_error = "withdrawn", "none of its incidents exists any more"
            self.state.update(digest)
            return
        incidents = [item.incident for item in live if item.incident is not None]
        sent_before = self.summary.sent
        self.deliver(Due(digest, None), lambda delay: digest_message(digest.channel, incidents, delay=delay))
        self.summary.digests += 1
        if digest.status == "sent":
            self.summary.sent = sent_before + len(live)
            for item in live:
                mark_sent_in(item.notification, digest, self.now(), self.state)
        else:
            self.summary.pending += len(live) - 1

    def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless that goes past the step's deadline; whether it slept."""
        pace = self.sender.pace
        if pace.time_left() <= seconds:
            return False
        pace.sleep(seconds)
        return True

    def _find(self, notification: Notification, stamp: Stamp, thread: Delivered | None) -> Delivered | None:
        since = (utc(notification.created_at) if notification.created_at else self.now()) - CLOCK_SKEW
        return self.sender.find(stamp, notification.channel, thread, since)

    def _sent(self, notification: Notification, delivered: Delivered, delay: Delay | None) -> None:
        notification.status = "sent"
        notification.maybe_sent = False
        notification.sent_at = self.now()
        notification.updated_at = self.now()
        notification.slack_channel = delivered.channel
        notification.slack_ts = delivered.ts
        notification.last_error = None
        self.state.update(notification)
        self.summary.sent += 1
        self.summary.late += int(delay is not None and delay.late)

    def _failed(self, notification: Notification, exc: DeliveryError) -> None:
        notification.status = "failed" if exc.permanent else "pending"
        notification.last_error = str(exc)
        notification.updated_at = self.now()
        self.state.update(notification)
        if exc.permanent:
            self.summary.failed += 1
        else:
            self.summary.pending += 1
        what = "may have arrived (Slack did not confirm it)" if notification.maybe_sent else "not sent"
        self.note(f"alert for {notification.event_name} {what}: {exc}")


def mark_sent_in(notification: Notification, digest: Notification, moment: datetime, state: AlertState) -> None:
    """``notification`` went out in ``digest`` (sent)."""
    notification.status, notification.maybe_sent, notification.last_error = "sent", False, None
    notification.sent_at = digest.sent_at or moment
    notification.updated_at = moment
    notification.slack_channel, notification.slack_ts = digest.slack_channel, digest.slack_ts
    notification.digest_id = digest.notification_id
    state.update(notification)
