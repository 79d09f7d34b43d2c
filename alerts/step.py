"""The alert step: new incidents in the marts become Slack messages, each sent once.

For every incident the ledger has not seen: record it (``pending``, or ``skipped`` when it is
older than ``ALERT_LOOKBACK_MINUTES``), then send it and mark it ``sent`` right after Slack
accepts. A notification that fails stays ``pending`` (``failed`` for errors Slack will repeat)
and the next run sends it. When an incident whose alert was sent is over, a resolved notice
follows the same way.

The one unavoidable window: if the process dies after Slack accepted a message and before the
ledger row says ``sent`` (one SQL statement later), the next run sends that message again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.panel import Panel

from mixpanel_alerts.settings import Settings

from .ledger import Ledger, Notification
from .render import Incident, Investigation, Message, firing_message, resolved_message
from .slack import BotSender, Delivered, DeliveryError, Sender, WebhookSender

SPARKLINE_MINUTES = 60
INCIDENT_COLUMNS = (
    "incident_id, event_name, started_at, first_anomalous_minute, last_anomalous_minute, ended_at, status, "
    "peak_count, total_events, alert_threshold, time_window_minutes, alert_channel, anomalous_minutes"
)


@dataclasses.dataclass
class AlertSummary:
    sent: int = 0
    pending: int = 0
    skipped: int = 0
    failed: int = 0
    rendered: int = 0

    def line(self, target: str) -> str:
        return (
            f"alerts: {self.sent} sent to {target}, {self.pending} pending, {self.failed} failed, "
            f"{self.skipped} skipped (older than the lookback)"
        )


class TerminalSender:
    """No Slack configured: show the message in the terminal."""

    description = "the terminal"

    def __init__(self, console: Console) -> None:
        self.console = console

    def post(self, message: Message, channel: str) -> Delivered:
        show(self.console, message, channel)
        return Delivered(channel="terminal", ts=None)

    def reply(self, message: Message, delivered: Delivered) -> Delivered:
        return self.post(message, delivered.channel)


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
    panel = Panel("\n".join(lines), title=f"{title} → {channel}", title_align="left", expand=False)
    console.print(panel, soft_wrap=False)


def choose_sender(settings: Settings, console: Console) -> Sender:
    if settings.slack_bot_token:
        return BotSender(settings.slack_bot_token, settings.slack_api_url)
    if settings.slack_webhook_url:
        return WebhookSender(settings.slack_webhook_url)
    return TerminalSender(console)


class Warehouse:
    """The reads the alert step needs, through the pipeline's SQL client."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def _table(self, name: str) -> str:
        return str(self.client.make_qualified_table_name(name))

    def incidents(self) -> list[Incident]:
        rows = self.client.execute_sql(f"select {INCIDENT_COLUMNS} from {self._table('incidents')}") or []
        return [Incident(*row) for row in rows]

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
        start, end = _utc(incident.started_at), _utc(incident.last_anomalous_minute) + timedelta(minutes=1)
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
        name = incident.event_name.replace("'", "''")
        table = f"{self.settings.dataset}.{self.settings.table}"
        if self.settings.warehouse == "bigquery":
            table = f"`{self.settings.gcp_project_id}.{table}`"
        sql = (
            f"select event_timestamp, distinct_id, properties from {table}\n"
            f"where event_name = '{name}'\n"
            f"  and event_timestamp >= timestamp '{start}' and event_timestamp < timestamp '{end}'\n"
            "order by event_timestamp"
        )
        url = None
        if self.settings.warehouse == "bigquery":
            url = f"https://console.cloud.google.com/bigquery?project={self.settings.gcp_project_id}"
        return Investigation(sql=sql, url=url)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def run_alerts(
    settings: Settings,
    *,
    console: Console,
    dry_run: bool = False,
    sender: Sender | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> AlertSummary:
    from pipelines.mixpanel_pipeline import pipeline_for

    summary = AlertSummary()
    sender = sender or choose_sender(settings, console)
    webhook_note = "the webhook's channel" if isinstance(sender, WebhookSender) else None
    lookback_start = now() - timedelta(minutes=settings.alert_lookback_minutes)
    with pipeline_for(settings) as pipeline, pipeline.sql_client() as client:
        warehouse = Warehouse(client, settings)
        ledger = Ledger(client, settings.warehouse)
        if not dry_run:
            ledger.ensure()
            known = ledger.all()
        else:
            try:
                known = ledger.all()
            except Exception:
                known = {}
        for incident in sorted(warehouse.incidents(), key=lambda item: item.first_anomalous_minute):
            firing_id = f"{incident.incident_id}:firing"
            firing = known.get(firing_id)
            recent = _utc(incident.last_anomalous_minute) >= lookback_start
            if firing is None:
                continued = _continued_notification(known.values(), incident)
                if continued is not None:
                    # a late event moved the incident's first minute, and so its id: it is the
                    # incident already recorded, whose message (and thread, and resolved notice) it keeps
                    firing = _continuation(continued, incident, now())
                    resolved = known.get(f"{continued.incident_id}:resolved")
                    if resolved is not None:
                        known[f"{incident.incident_id}:resolved"] = _continuation(resolved, incident, now())
                        if not dry_run:
                            ledger.insert(known[f"{incident.incident_id}:resolved"])
                else:
                    firing = Notification(
                        notification_id=firing_id,
                        incident_id=incident.incident_id,
                        kind="firing",
                        event_name=incident.event_name,
                        channel=incident.alert_channel,
                        status="pending" if recent else "skipped",
                        created_at=now(),
                        updated_at=now(),
                        first_anomalous_minute=incident.first_anomalous_minute,
                    )
                if not dry_run:
                    ledger.insert(firing)
            elif firing.first_anomalous_minute is None and not dry_run:  # recorded by an earlier version
                firing.first_anomalous_minute = incident.first_anomalous_minute
                ledger.update(firing)
            if firing.status == "skipped":
                summary.skipped += 1
                continue
            if firing.status in ("pending", "failed") and recent:
                message = firing_message(
                    incident,
                    minute_counts=warehouse.minute_counts(incident),
                    samples=warehouse.samples(incident),
                    investigation=warehouse.investigation(incident),
                    delivered_to=webhook_note,
                )
                _deliver(sender, ledger, firing, message, None, summary, dry_run, console, now)
            if firing.status == "sent" and incident.status == "over":
                resolved_id = f"{incident.incident_id}:resolved"
                resolved = known.get(resolved_id)
                if resolved is None:
                    resolved = dataclasses.replace(
                        firing, notification_id=resolved_id, kind="resolved", status="pending", attempts=0,
                        last_error=None, sent_at=None, slack_ts=None, created_at=now(), updated_at=now(),
                    )  # fmt: skip
                    if not dry_run:
                        ledger.insert(resolved)
                if resolved.status in ("pending", "failed"):
                    thread = Delivered(channel=firing.slack_channel or firing.channel, ts=firing.slack_ts)
                    message = resolved_message(incident)
                    _deliver(sender, ledger, resolved, message, thread, summary, dry_run, console, now)
    return summary


def _continuation(notification: Notification, incident: Incident, at: datetime) -> Notification:
    """``notification`` (of the incident that ``incident`` continues) under ``incident``'s id."""
    kind = notification.kind
    return dataclasses.replace(
        notification, notification_id=f"{incident.incident_id}:{kind}", incident_id=incident.incident_id,
        first_anomalous_minute=incident.first_anomalous_minute, created_at=at, updated_at=at,
    )  # fmt: skip


def _continued_notification(known: Iterable[Notification], incident: Incident) -> Notification | None:
    """The alert of an incident this one continues: same event, and its first anomalous minute
    lies within this incident (a minute stays anomalous: late events only add to its count)."""
    first, last = _utc(incident.first_anomalous_minute), _utc(incident.last_anomalous_minute)
    candidates = [
        (_utc(notification.first_anomalous_minute), notification.notification_id, notification)
        for notification in known
        if notification.kind == "firing"
        and notification.event_name == incident.event_name
        and notification.first_anomalous_minute is not None
        and first <= _utc(notification.first_anomalous_minute) <= last
    ]
    return min(candidates)[2] if candidates else None


def _deliver(
    sender: Sender,
    ledger: Ledger,
    notification: Notification,
    message: Message,
    thread: Delivered | None,
    summary: AlertSummary,
    dry_run: bool,
    console: Console,
    now: Callable[[], datetime],
) -> None:
    if dry_run:
        show(console, message, notification.channel)
        summary.rendered += 1
        return
    notification.attempts += 1
    notification.updated_at = now()
    try:
        delivered = (
            sender.reply(message, thread) if thread and thread.ts else sender.post(message, notification.channel)
        )
    except DeliveryError as exc:
        notification.status = "failed" if exc.permanent else "pending"
        notification.last_error = str(exc)
        ledger.update(notification)
        if exc.permanent:
            summary.failed += 1
        else:
            summary.pending += 1
        console.print(f"[yellow]alert for {notification.event_name} not delivered:[/] {exc}", markup=True)
        return
    notification.status = "sent"
    notification.sent_at = now()
    notification.slack_channel = delivered.channel
    notification.slack_ts = delivered.ts
    notification.last_error = None
    ledger.update(notification)
    summary.sent += 1
