"""Stage 2 of the alert step, its inhibition half: what the pipeline's own health means for alerts.

The run judges the pipeline's health (``mixpanel_alerts/runs.py``) and hands it in. While the
pipeline is unhealthy, drop alerts are held: a drop then is likely the pipeline's own fault (data
not collected reads as quiet). Once it has been unhealthy for ``PIPELINE_STALE_MINUTES`` it raises
one "pipeline" alert (to ``OPS_ALERT_CHANNEL``), with a resolved notice in its thread when it is
healthy again; one blip does not page.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from mixpanel_alerts.core.config import Settings
from mixpanel_alerts.core.events_config import EventsConfig
from mixpanel_alerts.core.times import utc

from .ledger import UNDELIVERED, Notification
from .notices import pipeline_message, pipeline_resolved_message
from .plan import Due, resolved_notice
from .render import Delay, Message
from .state import AlertState

PIPELINE = "pipeline"  # the event name of the pipeline's own alerts in the ledger
HELD = "held: the pipeline is unhealthy"


class PipelineHealth(Protocol):
    """The run's verdict on the pipeline (``runs.Health``)."""

    problems: list[str]
    since: datetime | None  # when the pipeline became unhealthy

    @property
    def healthy(self) -> bool: ...

    @property
    def pages(self) -> bool:
        """Unhealthy for long enough (PIPELINE_STALE_MINUTES) that the pipeline alert goes out."""
        ...

    def summary(self) -> str: ...


def is_pipeline(notification: Notification) -> bool:
    return notification.incident_id.startswith(f"{PIPELINE}:")


def is_held(notification: Notification) -> bool:
    return (notification.last_error or "").startswith("held:")


def hold_drops(due: list[Due], health: PipelineHealth, state: AlertState, moment: datetime) -> tuple[list[Due], int]:
    """The due notifications without the drop alerts held while the pipeline is unhealthy (they stay
    pending, saying so), and how many were held."""
    if health.healthy:
        return due, 0
    kept, held = [], 0
    for item in due:
        if item.incident is not None and item.incident.kind == "drop" and item.notification.kind == "firing":
            held += 1
            if not is_held(item.notification):
                item.notification.last_error = f"{HELD} (see `mixpanel-alerts status`)"
                item.notification.updated_at = moment
                state.update(item.notification)
            continue
        kept.append(item)
    return kept, held


def pipeline_notice(
    known: dict[str, Notification],
    health: PipelineHealth,
    *,
    channel: str,
    state: AlertState,
    moment: datetime,
    deliver: Callable[[Due, Callable[[Delay | None], Message]], None],
) -> None:
    """The pipeline's alert: raised once it pages, retried while it is undelivered and the pipeline
    still unhealthy, withdrawn if it recovers first, resolved in its thread when it recovers."""
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
            if not health.pages:
                return  # unhealthy, not for long enough to page
            since = health.since or moment
            current = _open(known, since, channel, state, moment)
        assert current is not None
        if current.status in UNDELIVERED:
            problems = list(health.problems)
            deliver(Due(current, None), lambda delay: pipeline_message(problems, since, delay=delay))
        return
    if not is_open or current is None:
        return
    if current.status in UNDELIVERED:  # recovered before its alert could be delivered
        current.status, current.last_error, current.updated_at = "withdrawn", "the pipeline recovered", moment
        state.update(current)
        return
    if current.status != "sent":
        return
    notice = resolved_notice(current, moment)
    state.insert(notice)
    recovered = health.summary()
    deliver(Due(notice, None, after=current), lambda delay: pipeline_resolved_message(since, recovered, delay=delay))


def _open(
    known: dict[str, Notification], since: datetime, channel: str, state: AlertState, moment: datetime
) -> Notification:
    incident_id = f"{PIPELINE}:{since:%Y-%m-%dT%H:%M:%S}"
    current = Notification(
        notification_id=f"{incident_id}:firing", incident_id=incident_id, kind="firing", event_name=PIPELINE,
        channel=channel, status="pending", created_at=moment, updated_at=moment, first_anomalous_minute=since,
    )  # fmt: skip
    if current.notification_id in known:  # the same episode, recorded and withdrawn before
        current = known[current.notification_id]
        current.status, current.attempts, current.updated_at = "pending", 0, moment
        state.update(current)
    else:
        state.insert(current)
    known[current.notification_id] = current
    return current


def ops_channel(settings: Settings, events_config: EventsConfig | None) -> str:
    """Where the pipeline's alerts go: OPS_ALERT_CHANNEL, else the first enabled rule's channel
    (with a webhook, its own channel whatever this says)."""
    if settings.ops_alert_channel:
        return settings.ops_alert_channel
    if events_config is not None and events_config.enabled:
        return events_config.enabled[0].alert_channel
    return "#alerts"
