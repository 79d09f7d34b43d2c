"""Unit tests of the pure parts of the export client: hosts, request windows, request parameters,
the cursor, and which clock exported times are on."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from mixpanel_alerts.pipelines.mixpanel.client import ExportError, export_base_url
from mixpanel_alerts.pipelines.mixpanel.window import (
    BackfillLedger,
    ExportWindow,
    backfill_left_cursor_note,
    backfill_moved_cursor_note,
    backfill_windows,
    exported_time_offset,
    future_processing_note,
    incremental_window,
    next_cursor,
    time_offset_note,
)

MARGIN_MINUTES = 30


@pytest.mark.parametrize(
    ("region", "host"),
    [
        pytest.param("us", "https://data.mixpanel.com", id="us"),
        pytest.param("eu", "https://data-eu.mixpanel.com", id="eu"),
        pytest.param("in", "https://data-in.mixpanel.com", id="in"),
    ],
)
def test_export_host_follows_the_region(region, host):
    assert export_base_url(region, None) == host


@pytest.mark.parametrize(
    ("export_url", "expected"),
    [
        pytest.param("http://127.0.0.1:8080", "http://127.0.0.1:8080", id="plain"),
        pytest.param("https://proxy.example.com/mixpanel/", "https://proxy.example.com/mixpanel", id="trailing-slash"),
    ],
)
def test_export_url_overrides_the_region(export_url, expected):
    assert export_base_url("eu", export_url) == expected


def test_unknown_region_names_the_setting():
    with pytest.raises(ExportError, match="MIXPANEL_REGION"):
        export_base_url("mars", None)


def window(now: datetime, **options) -> ExportWindow:
    arguments = {
        "project_timezone": "UTC",
        "start_date": None,
        "late_arrival_days": 5,
        "cursor_ms": None,
        "margin_minutes": MARGIN_MINUTES,
        **options,
    }
    return incremental_window(now=now, **arguments)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


NOON = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def test_first_run_starts_yesterday_by_default():
    assert window(NOON) == ExportWindow(date(2026, 1, 14), date(2026, 1, 15), None)


def test_first_run_starts_at_the_start_date():
    assert window(NOON, start_date=date(2025, 12, 1)) == ExportWindow(date(2025, 12, 1), date(2026, 1, 15), None)


@pytest.mark.parametrize(
    "start_date",
    [pytest.param(None, id="no-start-date"), pytest.param(date(2025, 12, 1), id="start-date-long-ago")],
)
def test_later_run_reaches_back_by_margin_and_late_days(start_date):
    cursor = NOON - timedelta(hours=1)
    result = window(NOON, start_date=start_date, cursor_ms=ms(cursor))

    processed_after = cursor - timedelta(minutes=MARGIN_MINUTES)
    assert result.processed_after_ms == ms(processed_after)
    assert result.from_date == (processed_after - timedelta(days=5)).date() == date(2026, 1, 10)
    assert result.to_date == date(2026, 1, 15)


def test_later_run_never_starts_before_the_start_date():
    result = window(NOON, start_date=date(2026, 1, 13), cursor_ms=ms(NOON - timedelta(hours=1)))

    assert result.from_date == date(2026, 1, 13)


def test_late_arrival_days_widen_the_window():
    result = window(NOON, start_date=date(2025, 1, 1), late_arrival_days=12, cursor_ms=ms(NOON))

    assert result.from_date == date(2026, 1, 3)


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param(NOON + timedelta(days=10), id="cursor-in-the-future"),
        pytest.param(NOON, id="cursor-now"),
    ],
)
def test_window_never_goes_past_today(cursor):
    result = window(NOON, start_date=date(2026, 1, 1), cursor_ms=ms(cursor))

    assert result.from_date <= result.to_date == date(2026, 1, 15)


@pytest.mark.parametrize(
    ("now", "project_timezone", "today"),
    [
        pytest.param(datetime(2026, 1, 15, 0, 30, tzinfo=UTC), "America/Los_Angeles", date(2026, 1, 14), id="la"),
        pytest.param(datetime(2026, 1, 15, 20, 0, tzinfo=UTC), "Asia/Tokyo", date(2026, 1, 16), id="tokyo"),
        pytest.param(datetime(2026, 1, 15, 23, 59, tzinfo=UTC), "UTC", date(2026, 1, 15), id="utc"),
    ],
)
def test_to_date_is_today_in_the_project_timezone(now, project_timezone, today):
    first = window(now, project_timezone=project_timezone)
    later = window(now, project_timezone=project_timezone, start_date=date(2025, 1, 1), cursor_ms=ms(now))

    assert (first.from_date, first.to_date) == (today - timedelta(days=1), today)
    assert later.to_date == today


def test_from_date_is_the_day_in_the_project_timezone():
    # processed after 2026-01-15 02:30 UTC, minus 5 days: 2026-01-09 18:30 in Los Angeles
    cursor = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
    now = cursor + timedelta(minutes=5)
    result = window(now, project_timezone="America/Los_Angeles", start_date=date(2025, 1, 1), cursor_ms=ms(cursor))

    assert result.from_date == date(2026, 1, 9)
    assert result.to_date == date(2026, 1, 14)


def test_request_parameters():
    params = ExportWindow(date(2026, 1, 10), date(2026, 1, 15), 1_768_000_000_000).params(["page_view", "Checkout"])

    assert params["from_date"] == "2026-01-10"
    assert params["to_date"] == "2026-01-15"
    assert json.loads(params["event"]) == ["page_view", "Checkout"]
    assert params["time_in_ms"] == "true"
    assert params["where"] == 'properties["mp_processing_time_ms"] > 1768000000000'


def test_first_run_parameters_have_no_processing_filter():
    assert "where" not in ExportWindow(date(2026, 1, 14), date(2026, 1, 15)).params(["page_view"])


@pytest.mark.parametrize(
    ("days_per_request", "expected"),
    [
        pytest.param(1, [(f"2026-01-0{day}", f"2026-01-0{day}") for day in range(1, 9)], id="one-day-each"),
        pytest.param(
            3,
            [("2026-01-01", "2026-01-03"), ("2026-01-04", "2026-01-06"), ("2026-01-07", "2026-01-08")],
            id="three-days-each",
        ),
    ],
)
def test_backfill_slices_cover_every_day_once(days_per_request, expected):
    windows = backfill_windows(date(2026, 1, 1), date(2026, 1, 8), days_per_request)

    assert [(w.from_date.isoformat(), w.to_date.isoformat()) for w in windows] == expected
    assert all(w.processed_after_ms is None for w in windows)


def test_backfill_of_one_day():
    assert backfill_windows(date(2026, 1, 1), date(2026, 1, 1), 1) == [ExportWindow(date(2026, 1, 1), date(2026, 1, 1))]


def test_the_cursor_is_the_request_time_whatever_the_data_says():
    """The next request's processing-time floor is this request's start minus the margin, so an
    event processed before this request but visible only after it is still asked for."""
    cursor = next_cursor(NOON)
    assert cursor == ms(NOON)
    assert (
        window(NOON + timedelta(minutes=15), cursor_ms=cursor).processed_after_ms == ms(NOON) - MARGIN_MINUTES * 60_000
    )


def test_the_future_note_names_the_count_and_the_latest_time():
    latest = ms(datetime(2026, 12, 8, 10, 0, 42, tzinfo=UTC))
    assert future_processing_note(3, latest) == (
        "3 events have a Mixpanel processing time in the future (the latest 2026-12-08 10:00 UTC): stored; "
        "the cursor stays at this run's request time"
    )
    assert future_processing_note(1, latest).startswith("1 event has a Mixpanel processing time in the future")


SECOND, MINUTE, HOUR = 1000, 60_000, 3_600_000


def quartiles(lateness_ms: tuple[int, int, int], offset_ms: int) -> tuple[int, int, int]:
    """Processing time minus `time` when `time` carries ``offset_ms`` (east positive)."""
    return (lateness_ms[0] - offset_ms, lateness_ms[1] - offset_ms, lateness_ms[2] - offset_ms)


LIVE = (1 * SECOND, 3 * SECOND, 40 * SECOND)  # the middle half of live traffic arrives within a minute


@pytest.mark.parametrize(
    ("lateness", "offset"),
    [
        pytest.param(LIVE, 0, id="utc"),
        pytest.param(LIVE, 2 * HOUR, id="utc+2"),
        pytest.param(LIVE, -8 * HOUR, id="utc-8"),
        pytest.param(LIVE, 5 * HOUR + 30 * MINUTE, id="utc+5:30"),
        pytest.param(LIVE, 14 * HOUR, id="utc+14"),
        pytest.param((-2 * MINUTE, 1 * MINUTE, 20 * MINUTE), -5 * HOUR, id="clock-skew-and-queueing"),
    ],
)
def test_the_offset_exported_times_carry_is_read_from_their_lateness(lateness, offset):
    assert exported_time_offset(quartiles(lateness, offset)) == offset


@pytest.mark.parametrize(
    "gaps",
    [
        pytest.param((1 * SECOND, 2 * HOUR, 30 * HOUR), id="imported-history"),
        pytest.param((30 * MINUTE, 1 * HOUR, 2 * HOUR), id="hourly-batches"),
        pytest.param((-15 * HOUR - 10 * SECOND, -15 * HOUR, -15 * HOUR + 40 * SECOND), id="beyond-any-zone"),
    ],
)
def test_no_offset_is_read_from_lateness_spread_wide(gaps):
    assert exported_time_offset(gaps) is None


AT = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # winter: Berlin UTC+1, New York UTC-5


@pytest.mark.parametrize(
    ("offset", "project_timezone", "says"),
    [
        pytest.param(0, "America/New_York", ["reads event times as local time at UTC-05:00", "look like UTC",
                                              "stored 5 h off", "leave MIXPANEL_PROJECT_TIMEZONE unset"],
                     id="new-project-with-a-timezone-set"),
        pytest.param(1 * HOUR, "UTC", ["reads event times as UTC", "look like local time at UTC+01:00",
                                        "stored 1 h off", "set MIXPANEL_PROJECT_TIMEZONE to the project's timezone"],
                     id="legacy-project-left-on-utc"),
        pytest.param(5 * HOUR + 30 * MINUTE, "Europe/Berlin", ["local time at UTC+05:30", "stored 4 h 30 min off"],
                     id="legacy-project-with-another-timezone"),
    ],
)  # fmt: skip
def test_a_time_offset_note_says_which_clock_the_times_are_on_and_what_to_set(offset, project_timezone, says):
    note = time_offset_note(quartiles(LIVE, offset), 500, project_timezone, AT)
    assert note is not None
    assert note.startswith(f"MIXPANEL_PROJECT_TIMEZONE={project_timezone} reads event times as ")
    for text in says:
        assert text in note


@pytest.mark.parametrize(
    ("offset", "project_timezone", "events"),
    [
        pytest.param(0, "UTC", 500, id="utc-and-utc"),
        pytest.param(1 * HOUR, "Europe/Berlin", 500, id="legacy-berlin-set"),
        pytest.param(-8 * HOUR, "America/Los_Angeles", 500, id="legacy-los-angeles-set"),
        pytest.param(0, "Europe/London", 500, id="london-in-winter-is-utc"),
        pytest.param(0, "America/New_York", 99, id="too-few-events"),
    ],
)
def test_no_time_offset_note_when_the_setting_fits_or_the_sample_is_small(offset, project_timezone, events):
    assert time_offset_note(quartiles(LIVE, offset), events, project_timezone, AT) is None


# ------------------------------------------------------------------ a backfill that reaches today

NAMES = ["checkout_completed", "page_view"]
CURSOR = NOON - timedelta(hours=2)  # the last scheduled collect asked at 10:00: its window is Jan 10..15
DAY = timedelta(days=1)


def days(first: date, last: date) -> list[date]:
    return [first + offset * DAY for offset in range((last - first).days + 1)]


def backfilled(asked: list[date], start: datetime, *, every: timedelta = timedelta(seconds=1), names=NAMES):
    """A ledger of ``asked`` requested one after another, ``every`` apart, from ``start``."""
    ledger = BackfillLedger({})
    for number, day in enumerate(asked):
        ledger.add(names, day, ms(start + number * every))
    return ledger


def reach(ledger: BackfillLedger, cursor: datetime | None, start_date: date | None = None, names=NAMES):
    """What ``ledger`` is worth at NOON, the moment of its request of today, to ``cursor``."""
    cursor_ms = cursor and ms(cursor)
    scheduled = window(NOON, cursor_ms=cursor_ms, start_date=start_date)
    return ledger.reach(names, scheduled, cursor_ms, lambda moved: window(NOON, cursor_ms=moved, start_date=start_date))


@pytest.mark.parametrize(
    ("cursor", "start_date", "asked", "first_day"),
    [
        pytest.param(CURSOR, None, days(date(2026, 1, 10), date(2026, 1, 15)), date(2026, 1, 10),
                     id="late-arrival-window-to-today"),
        pytest.param(CURSOR, None, days(date(2026, 1, 1), date(2026, 1, 15)), date(2026, 1, 10),
                     id="more-than-the-window"),
        pytest.param(None, None, days(date(2026, 1, 10), date(2026, 1, 15)), date(2026, 1, 10),
                     id="no-cursor-late-arrival-window"),
        pytest.param(None, None, days(date(2026, 1, 5), date(2026, 1, 15)), date(2026, 1, 10),
                     id="no-cursor-ten-days"),
        pytest.param(None, date(2026, 1, 12), days(date(2026, 1, 12), date(2026, 1, 15)), date(2026, 1, 12),
                     id="no-cursor-from-the-start-date"),
    ],
)  # fmt: skip
def test_a_backfill_of_every_day_a_collect_asks_moves_the_cursor_to_its_earliest_request(
    cursor, start_date, asked, first_day
):
    """The requests of the days the collects before and after the move ask for stand in for a
    collect asked at the earliest of them: an event of the first day processed while the later
    days were asked is still asked for by the next collect."""
    start = NOON - timedelta(hours=1)
    result = reach(backfilled(asked, start, every=timedelta(minutes=5)), cursor, start_date)

    assert result.missing == []
    assert result.first_day == first_day
    assert result.cursor_ms == ms(start + asked.index(first_day) * timedelta(minutes=5))


@pytest.mark.parametrize(
    ("cursor", "asked", "start", "names", "first_missing"),
    [
        pytest.param(CURSOR, days(date(2026, 1, 14), date(2026, 1, 15)), NOON, NAMES, date(2026, 1, 10),
                     id="the-last-two-days-only"),
        pytest.param(CURSOR, [date(2026, 1, 10), date(2026, 1, 11), *days(date(2026, 1, 13), date(2026, 1, 15))],
                     NOON, NAMES, date(2026, 1, 12), id="a-day-left-out"),
        pytest.param(CURSOR, days(date(2026, 1, 10), date(2026, 1, 15)), CURSOR - timedelta(hours=1), NAMES,
                     date(2026, 1, 10), id="a-cursor-ahead-of-the-requests"),
        pytest.param(CURSOR, days(date(2026, 1, 10), date(2026, 1, 15)), CURSOR - timedelta(seconds=3), NAMES,
                     date(2026, 1, 10), id="some-days-asked-before-the-cursor"),
        pytest.param(CURSOR, days(date(2026, 1, 10), date(2026, 1, 15)), NOON, ["page_view"], date(2026, 1, 10),
                     id="asked-for-other-events"),
        pytest.param(None, days(date(2026, 1, 14), date(2026, 1, 15)), NOON, NAMES, date(2026, 1, 10),
                     id="no-cursor-the-last-two-days-only"),
    ],
)  # fmt: skip
def test_the_cursor_stays_unless_every_day_a_collect_asks_was_backfilled_since_it(
    cursor, asked, start, names, first_missing
):
    """Without a cursor, the first collect would ask for yesterday and today only, but the ones
    after the move reach back the late-arrival days: an event of those days processed after its
    day was backfilled, before the new cursor, would be skipped."""
    result = reach(backfilled(asked, start, names=names), cursor)

    assert result.cursor_ms is None
    assert result.missing[0] == first_missing


def test_without_a_cursor_a_backfill_reaches_back_to_the_start_date():
    result = reach(backfilled(days(date(2026, 1, 5), date(2026, 1, 15)), NOON), None, date(2026, 1, 1))

    assert result.cursor_ms is None
    assert result.missing == days(date(2026, 1, 1), date(2026, 1, 4))


def test_days_asked_for_other_events_start_the_ledger_again():
    ledger = backfilled([date(2026, 1, 10)], NOON, names=["page_view"])
    ledger.add(NAMES, date(2026, 1, 11), ms(NOON))

    assert ledger.record == {"names": NAMES, "days": {"2026-01-11": ms(NOON)}}


def test_the_ledger_forgets_days_before_a_bound_and_days_asked_before_the_cursor():
    ledger = backfilled([date(2026, 1, 9), date(2026, 1, 10), date(2026, 1, 11)], CURSOR - timedelta(seconds=1))

    ledger.forget(before=date(2026, 1, 10), cursor_ms=ms(CURSOR))

    assert ledger.record["days"] == {"2026-01-11": ms(CURSOR + timedelta(seconds=1))}


EARLY_CURSOR = NOON - timedelta(hours=10)  # its window is Jan 10..15 too, and the backfills below come after it


@pytest.mark.parametrize(
    ("cursor", "asked", "moves"),
    [
        pytest.param(EARLY_CURSOR, days(date(2026, 1, 10), date(2026, 1, 15)), True, id="window-to-today"),
        pytest.param(EARLY_CURSOR, days(date(2026, 1, 14), date(2026, 1, 15)), False, id="last-two-days"),
        pytest.param(EARLY_CURSOR, days(date(2026, 1, 7), date(2026, 1, 15)), True, id="more-than-the-window"),
        pytest.param(EARLY_CURSOR, days(date(2026, 1, 11), date(2026, 1, 15)), False, id="first-day-left-out"),
        pytest.param(None, days(date(2026, 1, 10), date(2026, 1, 15)), True, id="no-cursor-window"),
        pytest.param(None, days(date(2026, 1, 7), date(2026, 1, 15)), True, id="no-cursor-more-than-the-window"),
    ],
)
def test_no_event_falls_between_the_old_cursor_the_backfill_and_the_next_collect(cursor, asked, moves):
    """Every event Mixpanel processes until the next collect, on a day that can still receive it
    and that the old cursor or the backfill covers, is stored by the collects before, by the
    backfill, or asked for by the next collect, whether the cursor moved or not. The backfill's
    days are asked an hour apart, so the margin hides nothing: a cursor at the last request would
    skip events of the first days processed meanwhile."""
    cursor_ms = cursor and ms(cursor)
    backfill_start = NOON - (len(asked) - 1) * timedelta(hours=1)
    result = reach(backfilled(asked, backfill_start, every=timedelta(hours=1)), cursor)
    assert (result.cursor_ms is not None) == moves
    next_collect = window(NOON + timedelta(minutes=5), cursor_ms=result.cursor_ms or cursor_ms)
    asked_at = {day: ms(backfill_start + number * timedelta(hours=1)) for number, day in enumerate(asked)}
    floor_before = None if cursor_ms is None else cursor_ms - MARGIN_MINUTES * 60_000
    covered_from = asked[0] if cursor is None else date(2026, 1, 1)

    for processed in range(ms(NOON - timedelta(days=8)), ms(NOON), 10 * 60_000):
        for day in days(covered_from, date(2026, 1, 15)):
            day_start = ms(datetime.combine(day, datetime.min.time(), UTC))
            if not day_start <= processed < day_start + 6 * 86_400_000:
                continue  # no event of this day is processed then, within the late-arrival days
            stored_before = floor_before is not None and processed <= floor_before
            backfilled_it = day in asked_at and processed <= asked_at[day]
            assert next_collect.processed_after_ms is not None
            asked_next = processed > next_collect.processed_after_ms and day >= next_collect.from_date
            assert stored_before or backfilled_it or asked_next, (day, datetime.fromtimestamp(processed / 1000, UTC))


def test_the_backfill_says_where_the_cursor_went_or_why_it_stayed():
    scheduled = ExportWindow(date(2026, 1, 10), date(2026, 1, 15), None)
    assert backfill_moved_cursor_note(date(2026, 1, 9), date(2026, 1, 15), ms(NOON), 30) == (
        "the backfill asked for every day a collect would (2026-01-09..2026-01-15): the cursor is now "
        "2026-01-15 12:00 UTC, and the next collect asks only for events processed since then (less the "
        "30-minute margin)"
    )
    assert backfill_left_cursor_note(scheduled, date(2026, 1, 12)) == (
        "the cursor did not move: the next collect still asks for 2026-01-10..2026-01-15, and not every day "
        "from 2026-01-12 was backfilled since the last collect; a backfill from 2026-01-12 to today would "
        "stand in for it"
    )
