"""Stage 3 of the alert step: flood control. More than ``ALERT_DIGEST_THRESHOLD`` new alerts for one
destination in one run go out as one digest message (its own ledger row, kind ``digest``); its
alerts are bound to it (``digest_id``) before it is posted and marked sent with it."""

from __future__ import annotations

import uuid
from datetime import datetime

from .deliver import mark_sent_in
from .ledger import Notification
from .plan import Due
from .slack import Sender
from .state import AlertState


def group_digests(
    due: list[Due],
    known: dict[str, Notification],
    sender: Sender,
    threshold: int,
    state: AlertState,
    moment: datetime,
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
            destination = notification.channel if sender.per_channel else sender.description
            fresh.setdefault(destination, []).append(item)
    digests: list[tuple[Notification, list[Due]]] = []
    grouped: set[int] = set()
    for digest_id, members in bound.items():
        digest = known[digest_id]
        grouped.update(id(item) for item in members)
        if digest.status == "sent":
            for item in members:
                mark_sent_in(item.notification, digest, moment, state)
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
        state.insert(digest)
        for item in members:
            item.notification.digest_id = digest_id
            item.notification.updated_at = moment
            state.update(item.notification)
        digests.append((digest, members))
    singles = [item for item in due if id(item) not in grouped]  # in the plan's order: alerts before notices
    return singles, digests
