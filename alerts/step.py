"""The alert step: new incidents in the marts become Slack messages, each sent once.

``plan`` (alerts/plan.py) decides from the incidents and the ledger what to record and send; this
module carries it out. Each notification is recorded before it is sent, and marked ``sent`` once
Slack accepts it. Before each post the ledger says ``maybe_sent``: if the run dies mid-post, or
Slack's answer is lost, the next attempt first looks for the message in the channel (bot token)
and sends it only if it is not there. A webhook cannot be read back: such a message is sent again
with a note that it may repeat (the one window left, stated in the README).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from mixpanel_alerts.core.config import Settings
from mixpanel_alerts.core.warehouse import pipeline_for

from .ledger import Ledger, Notification
from .plan import Due, delay_of, plan, utc
from .render import Delay, Incident, Investigation, Message, firing_message, resolved_message
from .slack import BotSender, CannotCheckError, Delivered, DeliveryError, Sender, Stamp, WebhookSender

logger = logging.getLogger("mixpanel_alerts")

# in one run, a post whose answer was lost (not a timeout) is checked for and tried again this often
MAX_POSTS_PER_RUN = 3
SECONDS_BEFORE_CHECKING = 2.0
# a message may show up in a channel's history this long before its ledger row was written
CLOCK_SKEW = timedelta(minutes=10)
SPARKLINE_MINUTES = 60
INCIDENT_COLUMNS = (
    "incident_id", "event_name", "started_at", "first_anomalous_minute", "last_anomalous_minute", "ended_at", "status",
    "peak_count", "total_events", "alert_threshold", "time_window_minutes", "alert_channel", "anomalous_minutes",
    "cooldown_minutes",
)  # fmt: skip
# what the alert says was expected; read when the models have them (older builds do not)
EXPECTATION_COLUMNS = ("kind", "expected_count", "lower_bound", "upper_bound", "repeated_bursts")


@dataclasses.dataclass
class AlertSummary:
    sent: int = 0
    pending: int = 0
    skipped: int = 0
    failed: int = 0
    withdrawn: int = 0
    rendered: int = 0
    late: int = 0

    def line(self, target: str) -> str:
        late = f" ({self.late} late)" if self.late else ""
        withdrawn = f", {self.withdrawn} withdrawn (rule removed or changed)" if self.withdrawn else ""
        return (
            f"alerts: {self.sent} sent to {target}{late}, {self.pending} pending, {self.failed} failed, "
            f"{self.skipped} skipped (older than the lookback){withdrawn}"
        )


class TerminalSender:
    """No Slack configured: show the message in the terminal."""

    description = "the terminal"

    def __init__(self, console: Console) -> None:
        self.console = console

    def post(self, message: Message, channel: str, stamp: Stamp) -> Delivered:
        show(self.console, message, channel)
        return Delivered(channel="terminal", ts=None)

    def reply(self, message: Message, thread: Delivered, stamp: Stamp) -> Delivered:
        return self.post(message, thread.channel, stamp)

    def find(self, stamp: Stamp, channel: str, thread: Delivered | None, since: datetime) -> Delivered | None:
        return None  # showing it again does no harm

    def remember(self, channel: str, channel_id: str) -> None:
        pass


def show(console: Console, message: Message, channel: str) -> None:
    """A readable rendering of Block Kit blocks."""
    lines: list[str] = []
    for block in message.blocks:
        if block["type"] == "header":
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


def choose_sender(settings: Settings, console: Console) -> Sender:
    if settings.slack_bot_token:
        return BotSender(settings.slack_bot_token, settings.slack_api_url, timeout=settings.slack_timeout_seconds)
    if settings.slack_webhook_url:
        return WebhookSender(settings.slack_webhook_url, timeout=settings.slack_timeout_seconds)
    return TerminalSender(console)


class Warehouse:
    """The reads the alert step needs, through the pipeline's SQL client."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def _table(self, name: str) -> str:
        return str(self.client.make_qualified_table_name(name))

    def incidents(self) -> list[Incident]:
        table = self._table("incidents")
        with self.client.execute_query(f"select * from {table} where 1 = 0") as cursor:
            present = {str(column[0]) for column in cursor.description or []}
        columns = [*INCIDENT_COLUMNS, *(column for column in EXPECTATION_COLUMNS if column in present)]
        rows = self.client.execute_sql(f"select {', '.join(columns)} from {table}") or []
        incidents = []
        for row in rows:
            values = dict(zip(columns, row, strict=True))
            values["kind"] = values.get("kind") or "spike"
            for name in ("expected_count", "lower_bound", "upper_bound"):
                values[name] = None if values.get(name) is None else float(values[name])
            if values.get("repeated_bursts") is not None:
                values["repeated_bursts"] = int(values["repeated_bursts"])
            incidents.append(Incident(**values))
        return incidents

    def minute_counts(self, incident: Incident) -> list[int]:
        end = incident.last_anomalous_minute
        rows = self.client.execute_sql(
            f"select event_count from {self._table('int_event_counts_per_minute')} "
            "where event_name = %s and minute_at > %s and minute_at <= %s order by minute_at",
            incident.event_name,
            end - timedelta(minutes=SPARKLINE_MINUTES),
            end,
        )
        return [int(row[0]) for row in rows or []]

    def samples(self, incident: Incident) -> list[dict[str, Any]]:
        start, end = utc(incident.started_at), utc(incident.last_anomalous_minute) + timedelta(minutes=1)
        rows = self.client.execute_sql(
            f"select event_timestamp, properties from {self._table(self.settings.table)} "
            "where event_name = %s and event_timestamp >= %s and event_timestamp < %s "
            "order by event_timestamp limit 3",
            incident.event_name,
            start,
            end,
        )
        return [{"event_at": row[0], "properties": row[1]} for row in rows or []]

    def investigation(self, incident: Incident) -> Investigation:
        start = incident.started_at.strftime("%Y-%m-%d %H:%M:%S")
        end = (incident.last_anomalous_minute + timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")
        table = f"{self.settings.dataset}.{self.settings.table}"
        if self.settings.warehouse == "bigquery":
            table = f"`{self.settings.gcp_project_id}.{table}`"
        sql = (
            f"select event_timestamp, distinct_id, properties from {table}\n"
            f"where event_name = {sql_string(incident.event_name)}\n"
            f"  and event_timestamp >= timestamp '{start}' and event_timestamp < timestamp '{end}'\n"
            "order by event_timestamp"
        )
        url = None
        if self.settings.warehouse == "bigquery":
            url = f"https://console.cloud.google.com/bigquery?project={quote(str(self.settings.gcp_project_id))}"
        return Investigation(sql=sql, url=url)


def sql_string(text: str) -> str:
    """``text`` as a SQL string expression that means the same on DuckDB and BigQuery: quotes,
    backslashes (escaped differently by the two), backticks and control characters (line breaks
    cannot sit in a BigQuery string, and a backtick run would close a Slack code block) are spelled
    ``chr(code)``, the rest is a plain quoted string."""
    pieces: list[str] = []
    plain = ""
    for character in text:
        if character in "'\\`" or ord(character) < 32:
            if plain:
                pieces.append(f"'{plain}'")
                plain = ""
            pieces.append(f"chr({ord(character)})")
        else:
            plain += character
    if plain or not pieces:
        pieces.append(f"'{plain}'")
    return " || ".join(pieces)


def run_alerts(
    settings: Settings,
    *,
    console: Console,
    dry_run: bool = False,
    sender: Sender | None = None,
    descriptions: dict[str, str] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> AlertSummary:
    """Record and send what ``plan`` decides; ``dry_run`` renders it and writes nothing."""
    summary = AlertSummary()
    sender = sender or choose_sender(settings, console)
    with pipeline_for(settings) as pipeline, pipeline.sql_client() as client:
        warehouse = Warehouse(client, settings)
        ledger = Ledger(client, settings.warehouse)
        if not dry_run:
            ledger.ensure()
            known = ledger.all()
        else:
            try:
                known = ledger.all()
            except Exception:  # no ledger yet: a dry run creates nothing
                known = {}
        for notification in known.values():
            if notification.slack_channel and notification.slack_channel not in ("webhook", "terminal"):
                sender.remember(notification.channel, notification.slack_channel)
        decided = plan(
            warehouse.incidents(), known, now=now(), lookback=timedelta(minutes=settings.alert_lookback_minutes)
        )
        summary.skipped, summary.withdrawn = decided.skipped, decided.withdrawn
        if not dry_run:
            for notification in decided.inserts:
                ledger.insert(notification)
            for notification in decided.updates:
                ledger.update(notification)
        delivery = Delivery(sender, ledger, summary, console, now, dry_run)
        for due in decided.due:
            if due.after is not None and due.after.status != "sent" and not dry_run:
                continue  # a resolved notice follows its alert
            if due.new and not dry_run:
                ledger.insert(due.notification)
            delivery.deliver(due, functools.partial(_render, warehouse, settings, due, descriptions or {}))
    return summary


def _render(
    warehouse: Warehouse, settings: Settings, due: Due, descriptions: dict[str, str], delay: Delay | None
) -> Message:
    incident = due.incident
    if due.notification.kind == "resolved":
        return resolved_message(incident, delay=delay)
    return firing_message(
        incident,
        minute_counts=warehouse.minute_counts(incident),
        samples=warehouse.samples(incident),
        investigation=warehouse.investigation(incident),
        delivered_to="the webhook's channel" if settings.slack_webhook_url and not settings.slack_bot_token else None,
        description=descriptions.get(incident.event_name, ""),
        delay=delay,
    )


@dataclasses.dataclass
class Delivery:
    """Delivers one notification at a time and keeps its ledger row true at every step."""

    sender: Sender
    ledger: Ledger
    summary: AlertSummary
    console: Console
    now: Callable[[], datetime]
    dry_run: bool

    def deliver(self, due: Due, render: Callable[[Delay | None], Message]) -> None:
        notification = due.notification
        thread = None
        if due.after is not None and due.after.slack_ts:
            thread = Delivered(channel=due.after.slack_channel or due.after.channel, ts=due.after.slack_ts)
        stamp = Stamp(dedup_key=notification.dedup_key or notification.notification_id, kind=notification.kind,
                      incident_id=notification.incident_id)  # fmt: skip
        if self.dry_run:
            show(self.console, render(delay_of(notification, self.now())), notification.channel)
            self.summary.rendered += 1
            return
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
            notification.attempts += 1
            notification.maybe_sent = True
            notification.updated_at = self.now()
            self.ledger.update(notification)  # from here until Slack answers, the message may be posted
            try:
                if thread is not None:
                    delivered = self.sender.reply(message, thread, stamp)
                else:
                    delivered = self.sender.post(message, notification.channel, stamp)
            except DeliveryError as exc:
                # a copy may be out there: this one, or an earlier one nobody could look for
                unconfirmed = exc.maybe_delivered or may_repeat
                notification.maybe_sent = unconfirmed
                if exc.permanent or exc.timed_out or post == MAX_POSTS_PER_RUN - 1:
                    # a timeout: Slack may still be posting it; the next run looks first
                    self._failed(notification, exc)
                    return
                notification.last_error = str(exc)
                self.ledger.update(notification)
                time.sleep(SECONDS_BEFORE_CHECKING * (post + 1))  # and let Slack finish before looking
                continue
            self._sent(notification, delivered, delay)
            return

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
        self.ledger.update(notification)
        self.summary.sent += 1
        self.summary.late += int(delay is not None and delay.late)

    def _failed(self, notification: Notification, exc: DeliveryError) -> None:
        notification.status = "failed" if exc.permanent else "pending"
        notification.last_error = str(exc)
        notification.updated_at = self.now()
        self.ledger.update(notification)
        if exc.permanent:
            self.summary.failed += 1
        else:
            self.summary.pending += 1
        what = "may have arrived (Slack did not confirm it)" if notification.maybe_sent else "not sent"
        event, error = escape(notification.event_name), escape(str(exc))
        self.console.print(f"[yellow]alert for {event} {what}:[/] {error}", markup=True)
