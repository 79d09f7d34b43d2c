"""The export request's window: which days to ask for, and which events by processing time.

A cursor on event time loses late events (offline clients deliver up to five days late), so the
cursor is Mixpanel's processing time (``mp_processing_time_ms``), and the days asked for are those
that can still receive events processed after it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclasses.dataclass(frozen=True)
class ExportWindow:
    """What one export request asks for."""

    from_date: date
    to_date: date
    processed_after_ms: int | None = None

    def params(self, event_names: Sequence[str]) -> dict[str, str]:
        params = {
            "from_date": self.from_date.isoformat(),
            "to_date": self.to_date.isoformat(),
            "event": json.dumps(list(event_names)),
            "time_in_ms": "true",
        }
        if self.processed_after_ms is not None:
            params["where"] = f'properties["mp_processing_time_ms"] > {self.processed_after_ms}'
        return params


def incremental_window(
    *,
    now: datetime,
    project_timezone: str,
    start_date: date | None,
    late_arrival_days: int,
    cursor_ms: int | None,
    margin_minutes: int,
) -> ExportWindow:
    """The days that can still receive new events, filtered on processing time.

    A cursor on event time loses late events (offline clients deliver up to five days late), so
    the cursor is Mixpanel's processing time: every event processed after ``cursor - margin`` has
    an event time no earlier than ``cursor - margin - late_arrival_days``, which bounds
    ``from_date``. ``to_date`` is today in the project's timezone, never later.
    """
    tz = ZoneInfo(project_timezone)
    today = now.astimezone(tz).date()
    if cursor_ms is None:
        first_day = start_date or today - timedelta(days=1)
        return ExportWindow(min(first_day, today), today, None)
    processed_after_ms = cursor_ms - margin_minutes * 60_000
    earliest = datetime.fromtimestamp(processed_after_ms / 1000, UTC) - timedelta(days=late_arrival_days)
    from_date = earliest.astimezone(tz).date()
    if start_date is not None:
        from_date = max(start_date, from_date)
    return ExportWindow(min(from_date, today), today, processed_after_ms)


def backfill_windows(start: date, end: date, days_per_request: int) -> list[ExportWindow]:
    windows = []
    day = start
    while day <= end:
        last = min(end, day + timedelta(days=days_per_request - 1))
        windows.append(ExportWindow(day, last, None))
        day = last + timedelta(days=1)
    return windows
