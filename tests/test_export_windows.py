"""Unit tests of the pure parts of the export client: hosts, request windows, request parameters."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from mixpanel_alerts.pipelines.mixpanel.client import ExportError, export_base_url
from mixpanel_alerts.pipelines.mixpanel.window import ExportWindow, backfill_windows, incremental_window

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
