"""Moments in UTC: the one normaliser every layer uses.

Warehouses hand back naive timestamps (DuckDB's ``timestamp`` columns hold UTC without a zone) or
aware ones (BigQuery, ``timestamptz``); the product compares and prints them in UTC only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def utc(value: datetime) -> datetime: ...


@overload
def utc(value: None) -> None: ...


def utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC moment: a naive one is taken to be UTC already, an aware one is
    converted; None stays None."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_utc(value: datetime) -> str:
    """``2026-10-01T12:34:00Z``."""
    return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
