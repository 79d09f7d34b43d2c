"""The clock alerts speak in: DETECTION_TIMEZONE (else the project's timezone, else UTC), the same
days and hours of day the baselines learn by. Storage and the warehouse stay UTC; only what a
person reads (the alert's times, its chart's axis, a notice) is local, each time with its zone's
abbreviation ("09:36 EST", "14:05 CET"), so a reader never has to guess.

The alert step sets it for its stages (``speaking_in``); a context variable, so a test or a thread
that renders without it speaks UTC."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime
from zoneinfo import ZoneInfo

from mixpanel_alerts.core.times import utc

_zone: ContextVar[str] = ContextVar("alert_zone", default="UTC")


@contextlib.contextmanager
def speaking_in(name: str) -> Iterator[None]:
    """Alerts rendered inside say their times in the IANA zone ``name``."""
    token = _zone.set(ZoneInfo(name).key)
    try:
        yield
    finally:
        _zone.reset(token)


def local(value: datetime) -> datetime:
    """``value`` (naive: UTC) in the alerts' zone."""
    return utc(value).astimezone(ZoneInfo(_zone.get()))


def zone_label(value: datetime) -> str:
    """The zone's abbreviation at ``value``: "UTC", "EST" or "EDT", "IST"; an offset ("+04") where
    the zone has no letters."""
    return local(value).tzname() or "UTC"


def minute(value: datetime | None) -> str:
    """A minute as "2024-01-01 09:36 EST" in the alerts' clock, or "-" for nothing."""
    return f"{local(value):%Y-%m-%d %H:%M} {zone_label(value)}" if value else "-"
