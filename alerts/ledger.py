"""The notifications ledger: what was sent for which incident, kept in the warehouse.

A cron job or a cloud function keeps no state between runs, so the ledger lives beside the data.
A notification is marked ``sent`` only after Slack accepted it; until then it is ``pending`` (or
``failed`` after an error Slack will repeat, such as ``channel_not_found``) and a later run sends it
again, however much later. Incidents first seen older than ``ALERT_LOOKBACK_MINUTES`` are recorded
as ``skipped``, never sent. A notification whose incident no longer exists (its rule was removed or
changed) is ``withdrawn``; one taken over by the incident it became is ``superseded``; one of an
event under a silence is ``silenced`` (sent after all if its incident is still open when the
silence ends). Besides incidents' alerts (kind ``firing``/``resolved``), the ledger holds digests
(kind ``digest``: several alerts of one channel in one message) and the pipeline's own alerts
(event ``pipeline``).

``maybe_sent`` is written before every post and cleared when Slack surely did not post it: a run
that finds it set (a timeout, a lost answer, a kill mid-post) first looks for the message in the
channel (bot token) before posting again. ``dedup_key`` is what messages are stamped with for that
search; an incident's continuation keeps its predecessor's key.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from mixpanel_alerts.core.state_table import StateTable
from mixpanel_alerts.core.times import utc

LEDGER_TABLE = "alert_notifications"
STATUSES = ("pending", "sent", "failed", "skipped", "withdrawn", "superseded", "silenced")
# notifications still to deliver
UNDELIVERED = ("pending", "failed")

# column -> (duckdb type, bigquery type)
COLUMNS = {
    "notification_id": ("varchar", "STRING"),
    "incident_id": ("varchar", "STRING"),
    "kind": ("varchar", "STRING"),
    "event_name": ("varchar", "STRING"),
    "channel": ("varchar", "STRING"),
    "status": ("varchar", "STRING"),
    "attempts": ("bigint", "INT64"),
    "last_error": ("varchar", "STRING"),
    "created_at": ("timestamptz", "TIMESTAMP"),
    "updated_at": ("timestamptz", "TIMESTAMP"),
    "sent_at": ("timestamptz", "TIMESTAMP"),
    "slack_channel": ("varchar", "STRING"),
    "slack_ts": ("varchar", "STRING"),
    # the incident's first anomalous minute when it was recorded: an incident that a late event
    # extends to an earlier minute gets a new id, and this shows it is the same incident
    "first_anomalous_minute": ("timestamptz", "TIMESTAMP"),
    # a post may have reached Slack without the answer reaching us: look before posting again
    "maybe_sent": ("boolean", "BOOL"),
    # stamped on the message (Slack message metadata) to find it in the channel's history
    "dedup_key": ("varchar", "STRING"),
    # the digest message this alert was delivered in (flood control): its notification_id
    "digest_id": ("varchar", "STRING"),
    # the rule whose incident it is (its event's name in rows from before rule ids)
    "rule_id": ("varchar", "STRING"),
}


@dataclasses.dataclass
class Notification:
    notification_id: str
    incident_id: str
    kind: str  # "firing" or "resolved"
    event_name: str
    channel: str
    status: str
    attempts: int = 0
    last_error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    sent_at: datetime | None = None
    slack_channel: str | None = None
    slack_ts: str | None = None
    first_anomalous_minute: datetime | None = None
    maybe_sent: bool | None = None
    dedup_key: str | None = None
    digest_id: str | None = None
    rule_id: str | None = None

    def __post_init__(self) -> None:
        if self.rule_id is None:  # a row from before rule ids: the rule was its event
            self.rule_id = self.event_name
        for name in ("created_at", "updated_at", "sent_at", "first_anomalous_minute"):
            setattr(self, name, utc(getattr(self, name)))
        if self.dedup_key is None:
            self.dedup_key = self.notification_id
        if self.maybe_sent is None:  # a row from an earlier version: a failed attempt may have posted
            self.maybe_sent = self.status in UNDELIVERED and self.attempts > 0


class Ledger:
    """Reads and writes ``alert_notifications`` through a dlt SQL client (DuckDB or BigQuery)."""

    def __init__(self, client: Any, warehouse: str) -> None:
        self.store = StateTable(client, warehouse, LEDGER_TABLE, COLUMNS)

    def ensure(self) -> None:
        self.store.ensure()

    def all(self) -> dict[str, Notification]:
        """Every notification; a ledger of an earlier version (fewer columns) reads too, so that a
        dry run, which changes nothing, still sees what was sent."""
        return {row["notification_id"]: Notification(**row) for row in self.store.rows()}

    def insert(self, notification: Notification) -> None:
        self.store.insert(dataclasses.asdict(notification))

    def update(self, notification: Notification) -> None:
        self.store.update("notification_id", dataclasses.asdict(notification))
