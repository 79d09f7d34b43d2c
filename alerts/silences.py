"""Silences: an event's alerts muted for a while, kept in the warehouse (``alert_silences``).

A silence is made with ``mixpanel-alerts silence EVENT --for 2h --reason "…"`` (or ``--until``),
or, with a bot token, by a reaction (``:no_bell:``) on one of the event's alerts in Slack, which the
next run reads (``reactions.get``: no public endpoint needed). It ends by itself at ``ends_at``,
or with ``unsilence``. While an event is silenced its new incidents are recorded ``silenced``, not
sent; one still open when the silence ends is sent then. Silences live in the warehouse, so they
hold on a stateless runtime (Cloud Run, CI), where every run starts from nothing.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from mixpanel_alerts.core.state_table import StateTable
from mixpanel_alerts.core.times import utc

SILENCES_TABLE = "alert_silences"
COLUMNS = {
    "silence_id": ("varchar", "STRING"),
    "event_name": ("varchar", "STRING"),
    "starts_at": ("timestamptz", "TIMESTAMP"),
    "ends_at": ("timestamptz", "TIMESTAMP"),
    "reason": ("varchar", "STRING"),
    # who made it: the local user (command line) or "slack:<user id>" (a reaction)
    "created_by": ("varchar", "STRING"),
    "created_at": ("timestamptz", "TIMESTAMP"),
    # set by unsilence: the silence ended early
    "ended_early_at": ("timestamptz", "TIMESTAMP"),
    # the rule it mutes; none: every rule of the event (and every silence from before rule ids)
    "rule_id": ("varchar", "STRING"),
}
# a reaction with one of these names on an alert silences its event for REACTION_SILENCE
MUTE_REACTIONS = ("no_bell",)
REACTION_SILENCE = timedelta(hours=24)
# reactions are looked for on the alerts sent this long ago at most
REACTION_LOOKBACK = timedelta(hours=24)
DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")


@dataclasses.dataclass
class Silence:
    silence_id: str
    event_name: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime
    ended_early_at: datetime | None = None
    rule_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("starts_at", "ends_at", "created_at", "ended_early_at"):
            setattr(self, name, utc(getattr(self, name)))

    @property
    def end(self) -> datetime:
        return min(self.ends_at, self.ended_early_at) if self.ended_early_at else self.ends_at

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.end

    def describe(self) -> str:
        return f"silenced until {self.end:%Y-%m-%d %H:%M} UTC by {self.created_by}: {self.reason}"


def parse_duration(text: str) -> timedelta:
    """``90m``, ``2h``, ``1h30m``, ``3d``, ``1w``; a ValueError says what is accepted."""
    match = DURATION.match(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration: use minutes, hours, days or weeks, such as 90m, 2h, 1h30m, 3d")
    weeks, days, hours, minutes = (int(part or 0) for part in match.groups())
    duration = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes)
    if duration <= timedelta(0):
        raise ValueError(f"{text!r} is no time at all: a silence must last at least a minute")
    return duration


def active_silences(silences: Iterable[Silence], now: datetime) -> dict[tuple[str, str | None], Silence]:
    """Per event and rule (none: every rule of the event), the active silence that lasts longest."""
    active: dict[tuple[str, str | None], Silence] = {}
    for silence in silences:
        key = (silence.event_name, silence.rule_id)
        if silence.active(now) and (key not in active or silence.end > active[key].end):
            active[key] = silence
    return active


def covering(active: Mapping[tuple[str, str | None], Silence], event_name: str, rule_id: str) -> Silence | None:
    """The active silence that mutes a rule longest: its own, or its event's."""
    found = [silence for key in ((event_name, None), (event_name, rule_id)) if (silence := active.get(key))]
    return max(found, key=lambda silence: silence.end) if found else None


class Silences:
    """``alert_silences`` through a dlt SQL client."""

    def __init__(self, client: Any, warehouse: str) -> None:
        self.store = StateTable(client, warehouse, SILENCES_TABLE, COLUMNS)

    def ensure(self) -> None:
        self.store.ensure()

    def all(self) -> list[Silence]:
        return [Silence(**row) for row in self.store.rows(order_by="created_at")]

    def add(self, silence: Silence) -> None:
        self.store.insert(dataclasses.asdict(silence))

    def end_early(self, silence: Silence, now: datetime) -> None:
        silence.ended_early_at = now
        self.store.update("silence_id", dataclasses.asdict(silence), fields=["ended_early_at"])


def new_silence(
    event_name: str, *, now: datetime, until: datetime, reason: str, created_by: str, rule_id: str | None = None
) -> Silence:
    """A silence of one rule (``rule_id``) or of every rule of the event (none)."""
    return Silence(
        silence_id=f"s-{uuid.uuid4().hex[:10]}", event_name=event_name, starts_at=now, ends_at=until, reason=reason,
        created_by=created_by, created_at=now, rule_id=rule_id,
    )  # fmt: skip


def reaction_silence(
    reactions: Mapping[str, Any],
    *,
    event_name: str,
    channel_name: str,
    ts: str,
    now: datetime,
    rule_id: str | None = None,
) -> Silence | None:
    """The silence a mute reaction on an alert asks for (``reactions``: ``reactions.get``'s message),
    or None. Its id names the message, so reading the same reaction again adds nothing."""
    for reaction in reactions.get("reactions") or []:
        if reaction.get("name") in MUTE_REACTIONS and reaction.get("count", 0) > 0:
            users = reaction.get("users") or []
            who = f"slack:{users[0]}" if users else "slack"
            return Silence(
                silence_id=f"reaction:{ts}", event_name=event_name, starts_at=now, ends_at=now + REACTION_SILENCE,
                reason=f":{reaction['name']}: on the alert in {channel_name}", created_by=who, created_at=now,
                rule_id=rule_id,
            )  # fmt: skip
    return None
