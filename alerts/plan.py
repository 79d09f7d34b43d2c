"""What the alert step must do this run, decided from the incidents and the ledger alone.

``plan`` does no I/O: the ledger's cases (a new incident, one first seen long ago, a pending alert
after an outage, an incident a late event moved, one whose rule is gone) are tested as plain
function calls, and ``step`` carries the plan out against the warehouse and Slack.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from mixpanel_alerts.core.times import utc

from .ledger import UNDELIVERED, Notification
from .notices import VANISHED
from .render import Delay, Incident
from .silences import Silence, covering

# a notification delivered this long after it was recorded says that it is late
LATE_AFTER = timedelta(minutes=10)


@dataclasses.dataclass
class Due:
    """A notification to deliver now. ``after``: deliver only once that one (the incident's alert)
    is sent; ``new``: record it first. ``closed``: a resolved notice that says why an incident was
    closed without being over (its rule was disabled or removed); it then has no ``incident``."""

    notification: Notification
    incident: Incident | None
    new: bool = False
    after: Notification | None = None
    closed: str | None = None


@dataclasses.dataclass
class Plan:
    inserts: list[Notification] = dataclasses.field(default_factory=list)
    updates: list[Notification] = dataclasses.field(default_factory=list)
    due: list[Due] = dataclasses.field(default_factory=list)
    skipped: int = 0  # incidents seen for the first time this run, older than the lookback
    withdrawn: int = 0
    silenced: int = 0


def plan(
    incidents: Sequence[Incident],
    ledger: dict[str, Notification],
    *,
    now: datetime,
    lookback: timedelta,
    silences: Mapping[tuple[str, str | None], Silence] | None = None,
    rules: Mapping[str, bool] | None = None,
) -> Plan:
    """Decide, for every incident and every undelivered notification, what to record and send.

    - An incident the ledger has not seen is recorded ``pending`` (sent this run), or ``skipped``
      when its last anomalous minute is older than ``lookback`` (a backfill, a first run); a
      skipped one that goes on into the lookback becomes ``pending``.
    - A ``pending``/``failed`` notification is due whenever its incident still exists, however long
      ago it was recorded: the lookback applies to first sightings only.
    - A late event that makes the minutes before an incident anomalous changes its first minute and
      so its id: the incident is the recorded one continued, and takes over its notifications
      (never those of an incident still there, such as a drop beside a spike of the same event).
    - A notification whose incident no longer exists (its rule was removed or changed) is
      ``withdrawn``; it is not sent.
    - ``silences`` (the active silences, per event and rule; ``silences.covering``): an incident of
      a silenced rule (the rule's own silence, or its event's) is recorded (or an undelivered alert
      of it turned) ``silenced``, and not sent; one still open once its rule is no longer silenced
      becomes ``pending``. Resolved notices of alerts sent before the
      silence still follow them.
    - ``rules`` (event -> enabled, from the configuration): an incident whose alert was sent and
      which disappeared because its rule was disabled or removed gets a resolved notice that says
      so (``Due.closed``), instead of staying open in Slack for ever. One that disappeared while its
      rule is still monitored (late events filled a drop in, or its rule changed) gets one too,
      saying the data no longer shows it (``VANISHED``).
    """
    result = Plan()
    silences = silences or {}
    known = dict(ledger)
    live: set[str] = set()
    # an incident still in the marts is nobody's continuation: a drop and a spike of one event may
    # interleave (each kind groups its own minutes), and neither takes over the other's alert
    current = {incident.incident_id for incident in incidents}
    for incident in sorted(incidents, key=lambda item: item.first_anomalous_minute):
        live.add(incident.incident_id)
        firing_id = f"{incident.incident_id}:firing"
        firing = known.get(firing_id)
        seen_first = firing is None
        if firing is None:
            continued = continued_notification(
                (notification for notification in known.values() if notification.incident_id not in current), incident
            )
            if continued is not None:
                firing = _take_over(continued, incident, now, known, result)
                resolved = known.get(f"{continued.incident_id}:resolved")
                if resolved is not None:
                    _take_over(resolved, incident, now, known, result)
            else:
                recent = utc(incident.last_anomalous_minute) >= now - lookback
                silence = covering(silences, incident.event_name, incident.rule_id)
                firing = Notification(
                    notification_id=firing_id,
                    incident_id=incident.incident_id,
                    kind="firing",
                    event_name=incident.event_name,
                    rule_id=incident.rule_id,
                    channel=incident.alert_channel,
                    status="skipped" if not recent else "silenced" if silence else "pending",
                    last_error=silence.describe() if silence and recent else None,
                    created_at=now,
                    updated_at=now,
                    first_anomalous_minute=incident.first_anomalous_minute,
                )
                known[firing_id] = firing
                result.inserts.append(firing)
        elif firing.first_anomalous_minute is None:  # recorded by an earlier version
            firing.first_anomalous_minute = utc(incident.first_anomalous_minute)
            result.updates.append(firing)
        if firing.status == "skipped":
            if utc(incident.last_anomalous_minute) < now - lookback:
                result.skipped += seen_first  # this run's, not every one recorded so
                continue
            # first seen long after it began (a backfill, a first run), it has gone on until now
            firing.status = "pending"
            firing.updated_at = now
            result.updates.append(firing)
        silence = covering(silences, incident.event_name, incident.rule_id)
        if firing.status in UNDELIVERED and silence is not None:
            firing.status, firing.last_error, firing.updated_at = "silenced", silence.describe(), now
            firing.maybe_sent = False
            result.updates.append(firing)
        if firing.status == "silenced":
            if silence is not None or incident.status == "over":
                result.silenced += 1
                continue
            # the silence ended while the incident goes on: it is sent now
            firing.status, firing.last_error, firing.updated_at = "pending", None, now
            result.updates.append(firing)
        if firing.status in UNDELIVERED:
            result.due.append(Due(firing, incident))
        if incident.status != "over" or firing.status not in ("sent", *UNDELIVERED):
            continue
        resolved_id = f"{incident.incident_id}:resolved"
        resolved = known.get(resolved_id)
        if resolved is None:
            resolved = resolved_notice(firing, now)
            known[resolved_id] = resolved
            result.due.append(Due(resolved, incident, new=True, after=firing))
        elif resolved.status in UNDELIVERED:
            result.due.append(Due(resolved, incident, after=firing))
    if rules is not None:
        _close_unmonitored(known, live, rules, now, result)
    for notification in list(known.values()):
        if notification.status in UNDELIVERED and notification.incident_id not in live:
            if any(due.notification is notification for due in result.due):
                continue  # a notice that an unmonitored rule's incident is closed
            notification.status = "withdrawn"
            notification.last_error = "its incident no longer exists: the rule was removed or changed"
            notification.maybe_sent = False
            notification.updated_at = now
            result.updates.append(notification)
            result.withdrawn += 1
    return result


def resolved_notice(firing: Notification, now: datetime) -> Notification:
    """The resolved notice of an alert, to record ``pending``: it replies in the alert's thread."""
    notification_id = f"{firing.incident_id}:resolved"
    return dataclasses.replace(
        firing, notification_id=notification_id, kind="resolved", status="pending", attempts=0, last_error=None,
        sent_at=None, slack_ts=None, created_at=now, updated_at=now, maybe_sent=False, dedup_key=notification_id,
        digest_id=None,
    )  # fmt: skip


def unmonitored_reason(rule_id: str, rules: Mapping[str, bool]) -> str | None:
    """Why a rule is no longer monitored, or None if it is."""
    if rules.get(rule_id):
        return None
    if rule_id in rules:
        return "its rule was disabled (enabled: false)"
    return "its rule was removed from the events configuration"


def _close_unmonitored(
    known: dict[str, Notification], live: set[str], rules: Mapping[str, bool], now: datetime, result: Plan
) -> None:
    """Resolved notices for sent alerts whose incident disappeared, because its rule is no longer
    monitored or because the data no longer shows it (``VANISHED``): once per incident (a continued
    incident's chain shares one ``dedup_key``)."""
    chains: dict[str, list[Notification]] = {}
    for notification in known.values():
        if notification.kind in ("firing", "resolved"):
            chains.setdefault(notification.dedup_key or notification.notification_id, []).append(notification)
    resolved_incidents = {item.incident_id for item in known.values() if item.kind == "resolved"}
    for firing in list(known.values()):
        if firing.kind != "firing" or firing.status != "sent" or firing.incident_id in live:
            continue
        reason = unmonitored_reason(firing.rule_id or firing.event_name, rules) or VANISHED
        chain = chains.get(firing.dedup_key or firing.notification_id, [])
        if any(item.incident_id in live or item.incident_id in resolved_incidents for item in chain):
            continue
        if max(chain, key=lambda item: utc(item.updated_at or now)) is not firing:
            continue  # an earlier link of a continued incident: its newest link closes it
        resolved_id = f"{firing.incident_id}:resolved"
        resolved = known.get(resolved_id)
        if resolved is None:
            resolved = resolved_notice(firing, now)
            known[resolved_id] = resolved
            result.due.append(Due(resolved, None, new=True, after=firing, closed=reason))
            resolved_incidents.add(firing.incident_id)
    for resolved in known.values():
        if resolved.kind == "resolved" and resolved.status in UNDELIVERED and resolved.incident_id not in live:
            alert = known.get(f"{resolved.incident_id}:firing")
            reason = unmonitored_reason(resolved.rule_id or resolved.event_name, rules) or VANISHED
            waiting = alert is not None and alert.status == "sent"
            if waiting and not any(due.notification is resolved for due in result.due):
                result.due.append(Due(resolved, None, after=alert, closed=reason))


def _take_over(
    notification: Notification, incident: Incident, now: datetime, known: dict[str, Notification], result: Plan
) -> Notification:
    """``notification`` (of the incident ``incident`` continues) under ``incident``'s id; an
    undelivered one is superseded by its copy, which keeps its ``dedup_key``."""
    copy = dataclasses.replace(
        notification, notification_id=f"{incident.incident_id}:{notification.kind}", incident_id=incident.incident_id,
        first_anomalous_minute=incident.first_anomalous_minute, created_at=notification.created_at or now,
        updated_at=now,
    )  # fmt: skip
    known[copy.notification_id] = copy
    result.inserts.append(copy)
    if notification.status in UNDELIVERED:
        notification.status = "superseded"
        notification.maybe_sent = False
        notification.last_error = f"continued by incident {incident.incident_id}"
        notification.updated_at = now
        result.updates.append(notification)
    return copy


def continued_notification(known: Iterable[Notification], incident: Incident) -> Notification | None:
    """The alert of an incident this one continues: same rule, and its first anomalous minute
    lies within this incident (late events made earlier minutes anomalous), or less than the
    cooldown before it (its first minutes stopped being anomalous: late events filled a drop, a
    recount raised a baseline's band). Only incidents gone from the marts are candidates."""
    first, last = utc(incident.first_anomalous_minute), utc(incident.last_anomalous_minute)
    earliest = first - timedelta(minutes=incident.cooldown_minutes)
    candidates = [
        (utc(notification.first_anomalous_minute), notification.notification_id, notification)
        for notification in known
        if notification.kind == "firing"
        and notification.status not in ("superseded", "withdrawn")
        and notification.rule_id == incident.rule_id
        and notification.first_anomalous_minute is not None
        and earliest < utc(notification.first_anomalous_minute) <= last
    ]
    return min(candidates)[2] if candidates else None


def delay_of(
    notification: Notification, now: datetime, may_repeat: bool = False, earlier_attempts: int | None = None
) -> Delay | None:
    """How late a notification is, if it is: attempts of earlier runs failed (``earlier_attempts``,
    by default all its attempts), or it waited past LATE_AFTER."""
    attempts = notification.attempts if earlier_attempts is None else earlier_attempts
    recorded = utc(notification.created_at) if notification.created_at else now
    late = attempts > 0 or now - recorded >= LATE_AFTER
    if not late and not may_repeat:
        return None
    return Delay(due_since=recorded, attempts=attempts, late=late, may_repeat=may_repeat)
