"""Realistic Mixpanel traffic for the simulator: events as the JavaScript and mobile SDKs send
them, and how each renders as an export line."""

from __future__ import annotations

import dataclasses
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

try:  # orjson is a dlt dependency; the plain json module is the fallback
    import orjson

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value)

except ImportError:  # pragma: no cover

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


GZIP_MIN_BYTES = 1400


@dataclasses.dataclass(frozen=True)
class SimEvent:
    """One stored event. ``time_ms`` is UTC; the export renders it per request. It is visible
    from ``processing_ms`` on; ``claimed_processing_ms``, when set, is the processing time its
    line shows and ``where`` compares (a bad clock upstream: it may lie in the future)."""

    name: str
    time_ms: int
    processing_ms: int
    properties: dict[str, Any]
    claimed_processing_ms: int | None = None

    @property
    def shown_processing_ms(self) -> int:
        return self.processing_ms if self.claimed_processing_ms is None else self.claimed_processing_ms

    def render(self, time_in_ms: bool, tz: ZoneInfo | None) -> bytes:
        event_ms = self.time_ms
        if tz is not None:  # legacy projects export "local epoch": wall-clock time as if UTC
            utc = datetime.fromtimestamp(event_ms / 1000, UTC)
            offset = utc.astimezone(tz).utcoffset() or timedelta(0)
            event_ms += int(offset.total_seconds() * 1000)
        properties = {
            "time": event_ms if time_in_ms else event_ms // 1000,
            **self.properties,
            "mp_processing_time_ms": self.shown_processing_ms,
        }
        return _dumps({"event": self.name, "properties": properties})


_BROWSERS = ["Chrome", "Safari", "Firefox", "Edge", "Mobile Safari", "Chrome iOS"]
_OSES = ["Windows", "Mac OS X", "iOS", "Android", "Linux"]
_CITIES = [("San Francisco", "California", "US"), ("Berlin", "Berlin", "DE"), ("Paris", "Ile-de-France", "FR")]
_CITIES += [("Bengaluru", "Karnataka", "IN"), ("São Paulo", "São Paulo", "BR"), ("Tokyo", "Tokyo", "JP")]


def make_event(
    name: str,
    at: datetime,
    *,
    processed_at: datetime | None = None,
    distinct_id: str | None = None,
    insert_id: str | None = "auto",
    rng: random.Random | None = None,
    **extra: Any,
) -> SimEvent:
    """A realistic event: the properties a Mixpanel JavaScript or mobile SDK sends, plus ``extra``."""
    rng = rng or random.Random()
    city, region, country = rng.choice(_CITIES)
    properties: dict[str, Any] = {
        "distinct_id": distinct_id or f"user-{rng.randrange(1, 50_000)}",
        "$browser": rng.choice(_BROWSERS),
        "$browser_version": rng.randrange(90, 130),
        "$city": city,
        "$region": region,
        "mp_country_code": country,
        "$os": rng.choice(_OSES),
        "$current_url": f"https://shop.example.com/products/{rng.randrange(1, 5000)}?ref=feed",
        "$device_id": f"{rng.getrandbits(64):016x}-{rng.getrandbits(32):08x}",
        "$lib_version": "2.55.1",
        "$screen_height": rng.choice([768, 900, 1080, 1440]),
        "$screen_width": rng.choice([1366, 1440, 1920, 2560]),
        "mp_lib": "web",
        "$referring_domain": rng.choice(["www.google.com", "$direct", "t.co", "news.ycombinator.com"]),
        "utm_source": rng.choice(["newsletter", "google", "partner", None]),
        "session_id": f"s-{rng.getrandbits(48):012x}",
        "app_version": f"5.{rng.randrange(0, 20)}.{rng.randrange(0, 9)}",
        "experiment_bucket": rng.choice(["control", "variant_a", "variant_b"]),
        "page_load_ms": rng.randrange(80, 4000),
    }
    if insert_id == "auto":
        properties["$insert_id"] = uuid.UUID(int=rng.getrandbits(128)).hex
    elif insert_id is not None:
        properties["$insert_id"] = insert_id
    properties.update(extra)
    time_ms = int(at.timestamp() * 1000)
    processing_ms = int((processed_at or at + timedelta(seconds=2)).timestamp() * 1000)
    return SimEvent(name=name, time_ms=time_ms, processing_ms=processing_ms, properties=properties)


def generate_traffic(
    count: int,
    *,
    names: list[str],
    start: datetime,
    end: datetime,
    seed: int = 7,
) -> Iterator[SimEvent]:
    """``count`` events spread uniformly over ``[start, end)``, names drawn from ``names``."""
    rng = random.Random(seed)
    span_ms = int((end - start).total_seconds() * 1000)
    start_ms = int(start.timestamp() * 1000)
    for _ in range(count):
        at_ms = start_ms + rng.randrange(max(span_ms, 1))
        at = datetime.fromtimestamp(at_ms / 1000, UTC)
        yield make_event(rng.choice(names), at, rng=rng, error_code=rng.choice(["E_NULL", "E_TIMEOUT", "E_500"]))
