"""The export request's window: which days to ask for, and which events by processing time.

A cursor on event time loses late events (offline clients deliver up to five days late), so the
cursor is Mixpanel's processing time (``mp_processing_time_ms``), and the days asked for are those
that can still receive events processed after it.

Also what has been asked for: each event's coverage (the event-time spans exported completely) and
the history still to fetch for events enabled after the first run. Both live in the resource state
as plain lists and dicts, so dlt commits them with the load they describe.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
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


def next_cursor(requested_at: datetime) -> int:
    """The cursor after an incremental export asked at ``requested_at`` is stored: that moment,
    whatever the data says. Every event processed before it was visible then or, if Mixpanel made
    it visible later, is still asked for by the next request (``cursor - margin``); a processing
    time in the future (a bad clock) must not move the cursor past it and cancel the margin."""
    return int(requested_at.timestamp() * 1000)


def future_processing_note(events: int, latest_ms: int | None) -> str:
    """What a run says about events whose processing time lies in the future."""
    latest = "" if latest_ms is None else f" (the latest {_utc_minute(latest_ms)})"
    return (
        f"{events:,} event{'s have' if events != 1 else ' has'} a Mixpanel processing time in the future{latest}: "
        "stored; the cursor stays at this run's request time"
    )


def _utc_minute(moment_ms: int) -> str:
    return datetime.fromtimestamp(moment_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def backfill_windows(start: date, end: date, days_per_request: int) -> list[ExportWindow]:
    windows = []
    day = start
    while day <= end:
        last = min(end, day + timedelta(days=days_per_request - 1))
        windows.append(ExportWindow(day, last, None))
        day = last + timedelta(days=1)
    return windows


@dataclasses.dataclass(frozen=True)
class BackfillReach:
    """What the days backfilled since the cursor are worth to it: every day from ``first_day`` to
    ``last_day`` (today) had to be asked; ``missing`` were not; with none missing, ``cursor_ms``
    is where the cursor may move."""

    first_day: date
    last_day: date
    missing: list[date]
    cursor_ms: int | None


class BackfillLedger:
    """The days backfilled since the cursor: when each day's whole-day request started, and for
    which events. ``record`` is the resource state's own dict, so it is saved with the load that
    stored the day.

    A request of day D without a processing-time filter returns every event of D that Mixpanel had
    processed when the request started. So the requests of a run of days stand in for a scheduled
    collect of those days asked at the earliest of their start times, X, and the cursor may move
    to X when no event can fall between them, the old cursor and the collects after X:

    - every event processed after the old cursor (less the margin) falls on a day of the next
      scheduled collect's window (``incremental_window``: the late-arrival reach of
      ``cursor - margin``, or without a cursor the start date, up to today): all must be asked;
    - the collects after X ask only for events processed after ``X - margin``, on the days of their
      own window: an event of a backfilled day of that window processed after its request, but
      before X, would be skipped. X being the earliest start, no such event exists once that
      window's days are asked too. It reaches back further than the first when there was no cursor.

    A later X (the last request's) would skip an event of an earlier day processed while the later
    days were asked; a day left out, an event of that day processed after the old cursor."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def add(self, names: Sequence[str], day: date, requested_ms: int) -> None:
        """``day`` of ``names`` was exported whole by a request that started at ``requested_ms``.
        Days asked for other events start the ledger again: a day counts only for its events."""
        if self.record.get("names") != sorted(names):
            self.record.clear()
            self.record.update({"names": sorted(names), "days": {}})
        self.record["days"][day.isoformat()] = requested_ms

    def forget(self, *, before: date, cursor_ms: int | None) -> None:
        """Drop the days that no longer count: asked no later than the cursor, or before
        ``before`` (a bound on the state's size: a day missing only keeps the cursor where it is)."""
        days = self.record.get("days", {})
        self.record["days"] = {
            day: at for day, at in days.items() if day >= before.isoformat() and (cursor_ms is None or at > cursor_ms)
        }

    def reach(
        self,
        names: Sequence[str],
        scheduled: ExportWindow,
        cursor_ms: int | None,
        window_after: Callable[[int], ExportWindow],
    ) -> BackfillReach:
        """Whether the days asked with ``names`` since the cursor (``cursor_ms``) stand in for the
        ``scheduled`` collect, and for the windows of the collects after the cursor it would leave
        (``window_after(cursor)``): see the class."""
        first_day = scheduled.from_date
        while True:
            asked = self._asked_since(names, first_day, scheduled.to_date, cursor_ms)
            missing = [day for day, at in asked.items() if at is None]
            if missing:
                return BackfillReach(first_day, scheduled.to_date, missing, None)
            moved_ms = min(at for at in asked.values() if at is not None)
            reach = window_after(moved_ms).from_date
            if reach >= first_day:
                return BackfillReach(first_day, scheduled.to_date, [], moved_ms)
            first_day = reach  # the earlier the cursor, the further back its collects look

    def _asked_since(
        self, names: Sequence[str], first: date, last: date, cursor_ms: int | None
    ) -> dict[date, int | None]:
        """When each day from ``first`` to ``last`` was asked with ``names`` after the cursor; None if not."""
        days = self.record.get("days", {}) if self.record.get("names") == sorted(names) else {}
        asked: dict[date, int | None] = {}
        for offset in range((last - first).days + 1):
            day = first + timedelta(days=offset)
            at = days.get(day.isoformat())
            asked[day] = at if at is not None and (cursor_ms is None or at > cursor_ms) else None
        return asked


def backfill_moved_cursor_note(first_day: date, last_day: date, cursor_ms: int, margin_minutes: int) -> str:
    """What a backfill that stood in for the next scheduled collect says."""
    return (
        f"the backfill asked for every day a collect would ({first_day}..{last_day}): the cursor is now "
        f"{_utc_minute(cursor_ms)}, and the next collect asks only for events processed since then (less the "
        f"{margin_minutes}-minute margin)"
    )


def backfill_left_cursor_note(window: ExportWindow, first_missing: date) -> str:
    """What a backfill up to today says when days of the next collect's ``window`` are missing."""
    return (
        f"the cursor did not move: the next collect still asks for {window.from_date}..{window.to_date}, and "
        f"not every day from {first_missing} was backfilled since the last collect; a backfill from "
        f"{first_missing} to today would stand in for it"
    )


DAY_MS = 86_400_000
HOUR_SECONDS = 3600


def day_start_ms(day: date, project_timezone: str) -> int:
    """The first instant of ``day`` in the project's timezone, in epoch milliseconds."""
    return int(datetime.combine(day, time.min, tzinfo=ZoneInfo(project_timezone)).timestamp() * 1000)


def day_of(moment_ms: int, project_timezone: str) -> date:
    return datetime.fromtimestamp(moment_ms / 1000, ZoneInfo(project_timezone)).date()


class Coverage:
    """Per event name, the event-time spans exported completely: sorted, merged ``[from_ms, to_ms]``
    pairs, ``to_ms`` None for the span still being collected. ``spans`` is the resource state's own
    dict, so every change is saved with the load."""

    def __init__(self, spans: dict[str, list[list[Any]]]) -> None:
        self.spans = spans

    def collected(self) -> set[str]:
        """The names collected now (their last span is still open)."""
        return {name for name in self.spans if self.collected_from(name) is not None}

    def collected_from(self, name: str) -> int | None:
        """Where the open span begins: from then on the event's data is complete."""
        return next((start for start, end in self.spans.get(name, []) if end is None), None)

    def stopped_at(self, name: str) -> int | None:
        """Where the last closed span ends (an event collected before, then disabled)."""
        ends = [end for _, end in self.spans.get(name, []) if end is not None]
        return max(ends) if ends else None

    def add(self, name: str, from_ms: int, to_ms: int | None) -> None:
        """Add a span; spans that overlap or touch merge, so the earliest start holds where the
        data is contiguous."""
        spans = sorted([*self.spans.get(name, []), [from_ms, to_ms]], key=lambda span: span[0])
        merged = [list(spans[0])]
        for start, end in spans[1:]:
            last = merged[-1]
            if last[1] is None or last[1] >= start:
                last[1] = None if last[1] is None or end is None else max(last[1], end)
            else:
                merged.append([start, end])
        self.spans[name] = merged

    def stop(self, name: str, to_ms: int) -> None:
        """Close the open span at ``to_ms``. If nothing of it was complete by then, an empty span
        ``[to_ms, to_ms]`` still says where the data stopped."""
        self.spans[name] = [
            [min(start, to_ms), to_ms] if end is None else [start, end] for start, end in self.spans.get(name, [])
        ]


def follow_enabled_events(
    state: dict[str, Any],
    names: Sequence[str],
    *,
    window: ExportWindow,
    cursor_ms: int | None,
    margin_minutes: int,
    late_arrival_days: int,
    project_timezone: str,
    history_days: int,
) -> None:
    """After the incremental export of ``window`` (asked with the cursor ``cursor_ms``): each
    enabled name's coverage, and a history job for the names that earlier runs did not collect.

    The first run (no cursor) asked for whole days from its first one: every name is complete from
    that day. Later, a new name is complete only from the processing-time floor of the request
    (every event after it was processed after it), until its history is fetched. A name no longer
    enabled stops where the late-arrival reach of the last run that asked for it ends. State
    without coverage (an earlier version) makes every name new."""
    coverage = Coverage(state.setdefault("coverage", {}))
    jobs: list[dict[str, Any]] = state.setdefault("history", [])
    if cursor_ms is None:
        for name in names:
            coverage.add(name, day_start_ms(window.from_date, project_timezone), None)
        return
    floor_ms = cursor_ms - margin_minutes * 60_000
    for name in coverage.collected() - set(names):
        coverage.stop(name, floor_ms - late_arrival_days * DAY_MS)
    keep_history_of(jobs, set(names))
    new = [name for name in names if name not in coverage.collected()]
    if new:
        jobs.append(
            plan_history(
                new, coverage, today=window.to_date, project_timezone=project_timezone, history_days=history_days
            )
        )
    for name in new:
        coverage.add(name, -(-floor_ms // 60_000) * 60_000, None)  # from the next whole minute


def plan_history(
    names: Sequence[str], coverage: Coverage, *, today: date, project_timezone: str, history_days: int
) -> dict[str, Any]:
    """The history job of names collected from now on: each name's first day is ``history_days``
    before today, or the day its earlier data stopped if that is later (a re-enabled event); days
    are fetched from today backwards, so each one done extends the coverage contiguously."""
    earliest = today - timedelta(days=history_days)
    first_days = {}
    for name in names:
        stopped_ms = coverage.stopped_at(name)
        first = earliest if stopped_ms is None else max(earliest, day_of(stopped_ms, project_timezone))
        first_days[name] = min(first, today).isoformat()
    return {"names": first_days, "next_day": today.isoformat()}


def next_history_day(jobs: list[dict[str, Any]]) -> tuple[date, list[str]] | None:
    """The day to fetch next and the names that want it (one request for all of them). Jobs are
    kept non-empty, so the first one has it."""
    if not jobs:
        return None
    job = jobs[0]
    return date.fromisoformat(job["next_day"]), sorted(_wanting(job))


def history_fetched(jobs: list[dict[str, Any]]) -> None:
    """The first job's next day is stored: it moves to the day before; a finished job goes."""
    job = jobs[0]
    job["next_day"] = (date.fromisoformat(job["next_day"]) - timedelta(days=1)).isoformat()
    jobs[:] = [job for job in jobs if _wanting(job)]


def keep_history_of(jobs: list[dict[str, Any]], enabled: set[str]) -> None:
    """Drop the names no longer enabled (they are never requested), and jobs left empty."""
    for job in jobs:
        job["names"] = {name: first for name, first in job["names"].items() if name in enabled}
    jobs[:] = [job for job in jobs if _wanting(job)]


def _wanting(job: dict[str, Any]) -> list[str]:
    """The names of a job whose history reaches back to its next day."""
    return [name for name, first in job["names"].items() if first <= job["next_day"]]


def history_days_left(jobs: list[dict[str, Any]]) -> int:
    """Requests still to make: one per day per job."""
    left = 0
    for job in jobs:
        first = min(job["names"].values())
        left += max(0, (date.fromisoformat(job["next_day"]) - date.fromisoformat(first)).days + 1)
    return left


def queries_in_last_hour(ledger: list[list[float]], now: datetime) -> int:
    """Attempts recorded (``[epoch seconds, attempts]``) within the hour before ``now``."""
    since = now.timestamp() - HOUR_SECONDS
    return int(sum(attempts for at, attempts in ledger if at > since))


def record_queries(ledger: list[list[float]], now: datetime, attempts: int) -> None:
    """Add ``attempts`` at ``now``; entries older than an hour go."""
    since = now.timestamp() - HOUR_SECONDS
    ledger[:] = [[at, count] for at, count in ledger if at > since]
    if attempts:
        ledger.append([round(now.timestamp(), 3), attempts])


# ------------------------------------------------------------------ which clock `time` is on
#
# Mixpanel's `mp_processing_time_ms` is UTC epoch milliseconds. An event's `time` is UTC epoch too
# in projects created since 1 January 2023, and the project's local wall-clock time written as if
# UTC ("local epoch") in older ones. So processing time minus `time` is the event's lateness minus
# the offset `time` carries: seconds for live traffic read with the right offset, whole hours off
# with the wrong one.

QUARTER_HOUR_MS = 15 * 60_000
HOUR_MS = 60 * 60_000
# read with the right offset, the middle half of live events arrive within this lateness (from a
# little clock skew to half an hour of queueing); spread wider (imports, offline clients), no offset
# is inferred
LATENESS_LOW_MS, LATENESS_HIGH_MS = -5 * 60_000, 30 * 60_000
# fewer events with a processing time than this say nothing about the offset
MIN_OFFSET_SAMPLE = 100
MAX_OFFSET_MS = 14 * HOUR_MS


def exported_time_offset(gap_quartiles_ms: tuple[int, int, int]) -> int | None:
    """The offset from UTC (ms, east positive) that exported `time` values carry, from the 25th,
    50th and 75th percentiles of processing time minus `time`: the whole quarter hour that puts
    the middle half of the events' lateness between LATENESS_LOW_MS and LATENESS_HIGH_MS, the
    smallest such lateness first; None when none does."""
    low, _, high = gap_quartiles_ms
    offset = -((low - LATENESS_LOW_MS) // QUARTER_HOUR_MS) * QUARTER_HOUR_MS  # the least with low + it >= LOW
    if high + offset > LATENESS_HIGH_MS or abs(offset) > MAX_OFFSET_MS:
        return None
    return offset


def time_offset_note(
    gap_quartiles_ms: tuple[int, int, int] | None, events: int, project_timezone: str, at: datetime
) -> str | None:
    """A warning when the exported `time` values look like another clock than the one
    ``project_timezone`` (MIXPANEL_PROJECT_TIMEZONE) reads them on: an hour or more apart, from at
    least MIN_OFFSET_SAMPLE events; None otherwise. ``at`` picks the zone's offset (daylight saving)."""
    if gap_quartiles_ms is None or events < MIN_OFFSET_SAMPLE:
        return None
    shown_ms = exported_time_offset(gap_quartiles_ms)
    offset = at.astimezone(ZoneInfo(project_timezone)).utcoffset()
    applied_ms = int(offset.total_seconds() * 1000) if offset is not None else 0
    if shown_ms is None or abs(shown_ms - applied_ms) < HOUR_MS:
        return None
    stored_off = _duration(abs(shown_ms - applied_ms))
    said = f"MIXPANEL_PROJECT_TIMEZONE={project_timezone} reads event times as {_clock(applied_ms)}"
    seen = f"they look like {_clock(shown_ms)}: Mixpanel's processing times (always UTC) follow them within minutes so"
    if shown_ms == 0:
        advice = (
            "projects created since 1 January 2023 export UTC times: leave MIXPANEL_PROJECT_TIMEZONE unset (UTC) "
            "and set DETECTION_TIMEZONE for local hours of day"
        )
    else:
        advice = (
            "projects created before 1 January 2023 export their timezone's wall-clock time: set "
            "MIXPANEL_PROJECT_TIMEZONE to the project's timezone (Mixpanel's Project Settings)"
        )
    return f"{said}, but {seen}. As set, every event is stored {stored_off} off; {advice}"


def _clock(offset_ms: int) -> str:
    if offset_ms == 0:
        return "UTC"
    sign = "+" if offset_ms > 0 else "-"
    minutes = abs(offset_ms) // 60_000
    return f"local time at UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _duration(ms: int) -> str:
    minutes = ms // 60_000
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h" if not minutes else f"{hours} h {minutes:02d} min"
