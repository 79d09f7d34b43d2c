"""Incident and Notification objects for ``plan()`` and the alert step's rules, at fixed times,
valid unless overridden; no warehouse and no Slack.

Times are naive, as DuckDB returns them (``plan`` reads them as UTC); ``NOW`` is aware, as the alert
step passes it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mixpanel_alerts.alerts.ledger import Notification
from mixpanel_alerts.alerts.render import Incident

EVENT = "impression_error_null_pointer_detected"
OTHER_EVENT = "checkout_completed"
CHANNEL = "#alerts-errors"
NOW = datetime(2024, 1, 1, 15, 0, tzinfo=UTC)
LOOKBACK = timedelta(minutes=60)
# the recorded incident's first anomalous minute; a late event may make the minutes before it anomalous
FIRST = datetime(2024, 1, 1, 14, 30)


def naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def incident(incident_id: str = "inc", **overrides: Any) -> Incident:
    first = overrides.pop("first", FIRST)
    last = overrides.pop("last", first + timedelta(minutes=5))
    status = overrides.pop("status", "open")
    values: dict[str, Any] = {
        "incident_id": incident_id,
        "event_name": EVENT,
        "started_at": first,
        "first_anomalous_minute": first,
        "last_anomalous_minute": last,
        "ended_at": last + timedelta(minutes=1) if status == "over" else None,
        "status": status,
        "peak_count": 12,
        "total_events": 30,
        "alert_threshold": 5,
        "time_window_minutes": 1,
        "alert_channel": CHANNEL,
        **overrides,
    }
    return Incident(**values)


def recent(**overrides: Any) -> Incident:
    """An incident that began 8 minutes before ``NOW``: well inside the lookback."""
    return incident(first=NOW.replace(tzinfo=None) - timedelta(minutes=8), **overrides)


def notification(
    incident_id: str = "inc", kind: str = "firing", status: str = "pending", **overrides: Any
) -> Notification:
    values: dict[str, Any] = {
        "notification_id": f"{incident_id}:{kind}",
        "incident_id": incident_id,
        "kind": kind,
        "event_name": EVENT,
        "channel": CHANNEL,
        "status": status,
        "created_at": naive(NOW - timedelta(minutes=5)),
        "updated_at": naive(NOW - timedelta(minutes=5)),
        "first_anomalous_minute": FIRST,
        **overrides,
    }
    return Notification(**values)


def sent(incident_id: str = "inc", kind: str = "firing", **overrides: Any) -> Notification:
    values = {
        "attempts": 1,
        "sent_at": naive(NOW - timedelta(minutes=4)),
        "slack_channel": "C0123",
        "slack_ts": "1704117600.000100",
        "maybe_sent": False,
        **overrides,
    }
    return notification(incident_id, kind, "sent", **values)


def ledger_of(*notifications: Notification) -> dict[str, Notification]:
    return {item.notification_id: item for item in notifications}
