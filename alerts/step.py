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
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from mixpanel_alerts.core.config import Settings
from mixpanel_alerts.core.events_config import EventsConfig
from mixpanel_alerts.core.sql import sql_string
from mixpanel_alerts.core.times import utc
from mixpanel_alerts.core.warehouse import pipeline_for
from mixpanel_alerts.runs import Health, RunHistory, RunRecord, assess, observe

from .chart import ChartPoint, render_chart
from .ledger import UNDELIVERED, Ledger, Notification
from .notices import closed_message, digest_message, pipeline_message, pipeline_resolved_message
from .plan import Due, delay_of, plan, resolved_notice
from .render import (
    ChartAttachment,
    Delay,
    Incident,
    Investigation,
    Message,
    chart_alt_text,
    chart_filename,
    chart_title,
    firing_message,
    resolved_message,
)
from .silences import REACTION_LOOKBACK, Silence, Silences, active_silences, reaction_silence
from .slack import (
    BotSender,
    CannotCheckError,
    ChartUnavailable,
    Delivered,
    DeliveryError,
    Sender,
    Stamp,
    WebhookSender,
)

logger = logging.getLogger("mixpanel_alerts")

# in one run, a post whose answer was lost (not a timeout) is checked for and tried again this often
MAX_POSTS_PER_RUN = 3
SECONDS_BEFORE_CHECKING = 2.0
# a message may show up in a channel's history this long before its ledger row was written
CLOCK_SKEW = timedelta(minutes=10)
SPARKLINE_MINUTES = 60
# the chart of a firing alert (bot token): these hours before the incident's last minute, and a few after
CHART_HOURS = 3
CHART_AFTER_MINUTES = 10
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
    held: int = 0
    silenced: int = 0
    digests: int = 0
    health: Health | None = None

    def line(self, target: str) -> str:
        late = f" ({self.late} late)" if self.late else ""
        digests = f" ({self.digests} digest{'s' if self.digests != 1 else ''})" if self.digests else ""
        withdrawn = f", {self.withdrawn} withdrawn (rule removed or changed)" if self.withdrawn else ""
        silenced = f", {self.silenced} silenced" if self.silenced else ""
        held = f", {self.held} drop alert(s) held (the pipeline is unhealthy)" if self.held else ""
        return (
            f"alerts: {self.sent} sent to {target}{late}{digests}, {self.pending} pending, {self.failed} failed, "
            f"{self.skipped} skipped (older than the lookback){withdrawn}{silenced}{held}"
        )


class TerminalSender:
    """No Slack configured: show the message in the terminal."""

    description = "the terminal"

    def __init__(self, console: Console) -> None:
        self.console = console

    def post(self, message: Message, channel: str, stamp: Stamp) -> Delivered:
        show(self.console, message, channel)
        return Delivered(channel="terminal", ts=None)

    def reply(self, message: Message, thread: Delivered, stamp: Stamp, broadcast: bool = True) -> Delivered:
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

    def chart_points(self, incident: Incident) -> list[ChartPoint]:
        """Each minute's window count and band over the CHART_HOURS before the incident's last minute."""
        end = incident.last_anomalous_minute
        rows = self.client.execute_sql(
            "select minute_at, window_count, expected_count, lower_bound, upper_bound "
            f"from {self._table('int_event_window_bands')} "
            "where event_name = %s and minute_at > %s and minute_at <= %s order by minute_at",
            incident.event_name,
            end - timedelta(hours=CHART_HOURS),
            end + timedelta(minutes=CHART_AFTER_MINUTES),
        )
        return [
            ChartPoint(
                minute_at=row[0],
                count=int(row[1] or 0),
                expected=_number(row[2]),
                lower=_number(row[3]),
                upper=_number(row[4]),
            )
            for row in rows or []
        ]

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


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


PIPELINE = "pipeline"  # the event name of the pipeline's own alerts in the ledger


def is_pipeline(notification: Notification) -> bool:
    return notification.incident_id.startswith(f"{PIPELINE}:")


@dataclasses.dataclass
class RunContext:
    """What the command knows that the alert step needs: the configured rules (event -> enabled),
    the run's record (None: nothing is recorded, no health is judged), this run's collect error,
    and where to say things."""

    rules: dict[str, bool] | None = None
    record: RunRecord | None = None
    collect_error: str | None = None
    events_config: EventsConfig | None = None
    say: Callable[[str], None] = lambda text: None


def run_alerts(
    settings: Settings,
    *,
    console: Console,
    dry_run: bool = False,
    sender: Sender | None = None,
    descriptions: dict[str, str] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    context: RunContext | None = None,
    pipeline_only: bool = False,
) -> AlertSummary:
    """Record and send what ``plan`` decides; ``dry_run`` renders it and writes nothing.
    ``pipeline_only``: collect failed, so the incidents are not current: only the pipeline's health."""
    summary = AlertSummary()
    context = context or RunContext()
    sender = sender or choose_sender(settings, console)
    with pipeline_for(settings) as pipeline, pipeline.sql_client() as client:
        warehouse = Warehouse(client, settings)
        ledger = Ledger(client, settings.warehouse)
        silence_store = Silences(client, settings.warehouse)
        if not dry_run:
            ledger.ensure()
            silence_store.ensure()
        known = ledger.all()
        silences = silence_store.all()
        for notification in known.values():
            if notification.slack_channel and notification.slack_channel not in ("webhook", "terminal"):
                sender.remember(notification.channel, notification.slack_channel)
        moment = now()
        if isinstance(sender, BotSender) and not dry_run:
            for silence in reaction_silences(sender, known, silences, moment, context.say):
                silence_store.add(silence)
                silences.append(silence)
        active = active_silences(silences, moment)
        health = None
        if context.record is not None and context.events_config is not None:
            health = judge_health(client, settings, context, moment)
            summary.health = health
        delivery = Delivery(sender, ledger, summary, console, now, dry_run)
        if not pipeline_only:
            alerts = {
                key: item
                for key, item in known.items()
                if item.kind in ("firing", "resolved") and not is_pipeline(item)
            }
            decided = plan(
                warehouse.incidents(), alerts, now=moment, lookback=timedelta(minutes=settings.alert_lookback_minutes),
                silences=active, rules=context.rules,
            )  # fmt: skip
            summary.skipped, summary.withdrawn, summary.silenced = decided.skipped, decided.withdrawn, decided.silenced
            if not dry_run:
                for notification in decided.inserts:
                    ledger.insert(notification)
                for notification in decided.updates:
                    ledger.update(notification)
            due = decided.due
            if health is not None and not health.healthy:
                due = hold_drops(due, ledger, summary, moment, dry_run)
            singles, digests = group_digests(
                due, known, sender, settings.alert_digest_threshold, ledger, moment, dry_run
            )
            for digest, members in digests:
                delivery.deliver_digest(digest, members, known)
            for item in singles:
                if item.after is not None and item.after.status != "sent" and not dry_run:
                    continue  # a resolved notice follows its alert
                if item.new and not dry_run:
                    ledger.insert(item.notification)
                delivery.deliver(item, Renderer(warehouse, settings, item, descriptions or {}, sender, dry_run))
        if health is not None:
            pipeline_alert(ops_delivery(delivery, settings), known, health, settings, context, moment)
        if context.record is not None and not dry_run:
            finish_record(client, settings, context, summary, pipeline_only, now())
    return summary


def finish_record(
    client: Any, settings: Settings, context: RunContext, summary: AlertSummary, pipeline_only: bool, moment: datetime
) -> None:
    """The run's ``pipeline_runs`` row, written with the alert step's connection as the run ends."""
    record = context.record
    assert record is not None
    undelivered = summary.pending + summary.failed
    record.alerts_sent, record.alerts_pending = summary.sent, undelivered
    record.alerts_held, record.alerts_silenced = summary.held, summary.silenced
    if pipeline_only:
        record.error = context.collect_error
    else:
        record.alert_result = "failed" if undelivered else "ok"
        if undelivered:
            record.error = f"{undelivered} alert(s) not delivered; they stay pending for the next run"
    record.ended_at = moment
    RunHistory(client, settings.warehouse).append(record)


def judge_health(client: Any, settings: Settings, context: RunContext, moment: datetime) -> Health:
    """This run's health (runs.assess), from the run history and the warehouse."""
    assert context.record is not None and context.events_config is not None
    history = RunHistory(client, settings.warehouse).recent()
    newest, expected_since = observe(client, settings, context.events_config, moment)
    health = assess(
        now=moment, stale=timedelta(minutes=settings.pipeline_stale_minutes),
        collect_result=context.record.collect_result, collect_error=context.collect_error, history=history,
        newest_processed_at=newest, traffic_expected_since=expected_since,
    )  # fmt: skip
    context.record.newest_processed_at = newest
    context.record.collection_lag_seconds = int(health.lag.total_seconds()) if health.lag is not None else None
    context.record.healthy = health.healthy
    context.record.health = health.summary()
    return health


def hold_drops(due: list[Due], ledger: Ledger, summary: AlertSummary, moment: datetime, dry_run: bool) -> list[Due]:
    """While the pipeline is unhealthy, drop alerts stay pending: a drop then is likely its fault."""
    kept = []
    for item in due:
        if item.incident is not None and item.incident.kind == "drop" and item.notification.kind == "firing":
            summary.held += 1
            if not dry_run and not (item.notification.last_error or "").startswith("held:"):
                item.notification.last_error = "held: the pipeline is unhealthy (see the pipeline alert)"
                item.notification.updated_at = moment
                ledger.update(item.notification)
            continue
        kept.append(item)
    return kept


def group_digests(
    due: list[Due],
    known: dict[str, Notification],
    sender: Sender,
    threshold: int,
    ledger: Ledger,
    moment: datetime,
    dry_run: bool,
) -> tuple[list[Due], list[tuple[Notification, list[Due]]]]:
    """Flood control: more than ``threshold`` new alerts for one channel in one run go out as one
    digest. An alert already bound to an undelivered digest goes out with it again; one whose digest
    was sent (the run died before marking it) is marked sent now."""
    bound: dict[str, list[Due]] = {}
    fresh: dict[str, list[Due]] = {}
    for item in due:
        notification = item.notification
        if notification.kind != "firing" or item.incident is None:
            continue
        if notification.digest_id and notification.digest_id in known:
            bound.setdefault(notification.digest_id, []).append(item)
        elif notification.attempts == 0 and not notification.maybe_sent:
            destination = notification.channel if isinstance(sender, BotSender) else sender.description
            fresh.setdefault(destination, []).append(item)
    digests: list[tuple[Notification, list[Due]]] = []
    grouped: set[int] = set()
    for digest_id, members in bound.items():
        digest = known[digest_id]
        grouped.update(id(item) for item in members)
        if digest.status == "sent":
            for item in members:
                if not dry_run:
                    mark_sent_in(item.notification, digest, moment, ledger)
            continue
        digests.append((digest, members))
    for members in fresh.values():
        if len(members) <= threshold:
            continue
        grouped.update(id(item) for item in members)
        channel = members[0].notification.channel
        digest_id = f"digest:{moment:%Y%m%dT%H%M%S}:{uuid.uuid4().hex[:8]}"
        digest = Notification(
            notification_id=digest_id, incident_id=digest_id, kind="digest", event_name=f"{len(members)} events",
            channel=channel, status="pending", created_at=moment, updated_at=moment,
        )  # fmt: skip
        known[digest_id] = digest
        if not dry_run:
            ledger.insert(digest)
            for item in members:
                item.notification.digest_id = digest_id
                item.notification.updated_at = moment
                ledger.update(item.notification)
        digests.append((digest, members))
    singles = [item for item in due if id(item) not in grouped]  # in the plan's order: alerts before notices
    return singles, digests


def mark_sent_in(notification: Notification, digest: Notification, moment: datetime, ledger: Ledger) -> None:
    notification.status, notification.maybe_sent, notification.last_error = "sent", False, None
    notification.sent_at = digest.sent_at or moment
    notification.updated_at = moment
    notification.slack_channel, notification.slack_ts = digest.slack_channel, digest.slack_ts
    notification.digest_id = digest.notification_id
    ledger.update(notification)


def ops_channel(settings: Settings, events_config: EventsConfig | None) -> str:
    """Where the pipeline's alerts go: OPS_ALERT_CHANNEL, else the first enabled rule's channel
    (with a webhook, its own channel whatever this says)."""
    if settings.ops_alert_channel:
        return settings.ops_alert_channel
    if events_config is not None and events_config.enabled:
        return events_config.enabled[0].alert_channel
    return "#alerts"


def ops_delivery(delivery: Delivery, settings: Settings) -> Delivery:
    """The pipeline's alerts go to OPS_ALERT_CHANNEL; without it, to the webhook's channel when a
    webhook is set beside a bot token (the bot posts the rules' alerts)."""
    if settings.ops_alert_channel or not settings.slack_webhook_url or isinstance(delivery.sender, WebhookSender):
        return delivery
    if delivery.dry_run or isinstance(delivery.sender, TerminalSender):
        return delivery
    webhook = WebhookSender(settings.slack_webhook_url, timeout=settings.slack_timeout_seconds)
    return dataclasses.replace(delivery, sender=webhook)


def pipeline_alert(
    delivery: Delivery,
    known: dict[str, Notification],
    health: Health,
    settings: Settings,
    context: RunContext,
    moment: datetime,
) -> None:
    """One alert while the pipeline is unhealthy, a resolved notice when it recovers."""
    ledger, dry_run = delivery.ledger, delivery.dry_run
    firings = sorted(
        (item for item in known.values() if is_pipeline(item) and item.kind == "firing"),
        key=lambda item: utc(item.created_at or moment),
    )
    current = firings[-1] if firings else None
    resolved = known.get(f"{current.incident_id}:resolved") if current is not None else None
    is_open = current is not None and current.status != "withdrawn" and resolved is None
    since = utc(current.first_anomalous_minute or current.created_at or moment) if current is not None else moment
    if not health.healthy:
        if not is_open:
            since = health.since or moment
            incident_id = f"{PIPELINE}:{since:%Y-%m-%dT%H:%M:%S}"
            current = Notification(
                notification_id=f"{incident_id}:firing", incident_id=incident_id, kind="firing", event_name=PIPELINE,
                channel=ops_channel(settings, context.events_config), status="pending", created_at=moment,
                updated_at=moment, first_anomalous_minute=since,
            )  # fmt: skip
            if current.notification_id in known:  # the same episode, recorded and withdrawn before
                current = known[current.notification_id]
                current.status, current.attempts, current.updated_at = "pending", 0, moment
                if not dry_run:
                    ledger.update(current)
            elif not dry_run:
                ledger.insert(current)
            known[current.notification_id] = current
        assert current is not None
        if current.status in UNDELIVERED:
            problems = health.problems
            delivery.deliver(Due(current, None), lambda delay: pipeline_message(problems, since, delay=delay))
        return
    if not is_open or current is None:
        return
    if current.status in UNDELIVERED:  # recovered before its alert could be delivered
        current.status, current.last_error, current.updated_at = "withdrawn", "the pipeline recovered", moment
        if not dry_run:
            ledger.update(current)
        return
    if current.status != "sent":
        return
    notice = resolved_notice(current, moment)
    if not dry_run:
        ledger.insert(notice)
    recovered = health.summary()
    delivery.deliver(
        Due(notice, None, after=current), lambda delay: pipeline_resolved_message(since, recovered, delay=delay)
    )


def reaction_silences(
    sender: BotSender,
    known: dict[str, Notification],
    silences: list[Silence],
    moment: datetime,
    say: Callable[[str], None],
) -> list[Silence]:
    """Silences asked for by a mute reaction (:no_bell:) on an alert or a digest sent within
    REACTION_LOOKBACK: read with ``reactions.get`` (scope ``reactions:read``)."""
    made = {silence.silence_id for silence in silences}
    members: dict[str, list[str]] = {}
    for item in known.values():
        if item.digest_id:
            members.setdefault(item.digest_id, []).append(item.event_name)
    added: list[Silence] = []
    for item in known.values():
        if item.kind not in ("firing", "digest") or item.status != "sent" or not item.slack_ts or is_pipeline(item):
            continue
        if item.digest_id or not item.sent_at or utc(item.sent_at) < moment - REACTION_LOOKBACK:
            continue
        if f"reaction:{item.slack_ts}" in made or not item.slack_channel:
            continue
        try:
            message = sender.reactions(item.slack_channel, item.slack_ts)
        except CannotCheckError as exc:
            say(f"alerts: cannot read the reactions on alerts ({exc}); muting with :no_bell: needs reactions:read")
            return added
        except DeliveryError as exc:
            logger.warning("could not read the reactions on an alert: %s", exc)
            continue
        names = members.get(item.notification_id, []) if item.kind == "digest" else [item.event_name]
        for index, event_name in enumerate(sorted(set(names))):
            silence = reaction_silence(message, event_name=event_name, channel_name=item.channel, ts=item.slack_ts,
                                       now=moment)  # fmt: skip
            if silence is None:
                break
            if index:
                silence.silence_id += f":{event_name}"
            added.append(silence)
            made.add(silence.silence_id)
            say(f"alerts: {event_name} silenced until {silence.end:%Y-%m-%d %H:%M} UTC ({silence.reason}, "
                f"by {silence.created_by})")  # fmt: skip
    return added


class Renderer:
    """Renders one notification (called again for each attempt, with its delay). A firing alert
    sent with a bot token carries a chart of the last hours, uploaded once; an upload that fails
    (no ``files:write`` scope, Slack down) leaves the sparkline and a note. ``without_chart``:
    Slack refused the image (a file not yet processed), so the alert goes without it."""

    def __init__(
        self, warehouse: Warehouse, settings: Settings, due: Due, descriptions: dict[str, str], sender: Sender,
        dry_run: bool,
    ) -> None:  # fmt: skip
        self.warehouse, self.settings, self.due, self.descriptions = warehouse, settings, due, descriptions
        self.sender, self.dry_run = sender, dry_run
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
            samples=self.warehouse.samples(incident),
            investigation=self.warehouse.investigation(incident),
            delivered_to="the webhook's channel" if webhook else None,
            description=self.descriptions.get(incident.event_name, ""),
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
        if self.dry_run or not isinstance(self.sender, BotSender):
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
                    # a notice of an alert delivered in a digest stays in the digest's thread
                    broadcast = not (due.after is not None and due.after.digest_id)
                    delivered = self.sender.reply(message, thread, stamp, broadcast)
                else:
                    delivered = self.sender.post(message, notification.channel, stamp)
            except DeliveryError as exc:
                if "invalid_blocks" in str(exc) and isinstance(render, Renderer) and render.without_chart():
                    # Slack refused the image (nothing was posted): the alert goes without it
                    notification.maybe_sent = unconfirmed or may_repeat
                    continue
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

    def deliver_digest(self, digest: Notification, members: list[Due], known: dict[str, Notification]) -> None:
        """One message for ``members`` (new alerts of one channel); each is marked sent with it."""
        live = [item for item in members if item.incident is not None]
        if not live:
            digest.status, digest.last_error = "withdrawn", "none of its incidents exists any more"
            if not self.dry_run:
                self.ledger.update(digest)
            return
        incidents = [item.incident for item in live if item.incident is not None]
        sent_before = self.summary.sent
        self.deliver(Due(digest, None), lambda delay: digest_message(digest.channel, incidents, delay=delay))
        self.summary.digests += 1
        if digest.status == "sent" and not self.dry_run:
            self.summary.sent = sent_before + len(live)
            for item in live:
                mark_sent_in(item.notification, digest, self.now(), self.ledger)
        elif self.dry_run:
            self.summary.rendered += len(live) - 1
        else:
            self.summary.pending += len(live) - 1

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
