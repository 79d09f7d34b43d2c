"""Write a sample backtest report page from synthetic data, for the README's screenshot.

    python scripts/sample_report.py /tmp/report.html
    python scripts/sample_report.py /tmp/report.html --scale 100   # counts in the tens of thousands

Fourteen days of per-minute counts with a daily and a weekly rhythm, a few spikes and one
45-minute outage; a baseline rule on the checkouts and a threshold rule on the payment errors.
The incidents are the minutes outside the band (or over the threshold), grouped into runs.
"""

from __future__ import annotations

import argparse
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mixpanel_alerts.report import render_backtest_html

START = datetime(2026, 11, 16, tzinfo=UTC)
DAYS = 14


def rhythm(moment: datetime, scale: float = 1.0) -> float:
    """Events per minute: a trough at 04:00 UTC, a peak in the evening, quieter weekends; ``scale``
    times as many (to see the axes of big counts)."""
    hour = moment.hour + moment.minute / 60
    daily = 0.55 + 0.45 * math.sin((hour - 10) / 24 * 2 * math.pi)
    return scale * (40 * daily * (0.7 if moment.weekday() >= 5 else 1.0) + 4)


def noisy(rng: random.Random, mean: float) -> int:
    return max(0, round(rng.gauss(mean, math.sqrt(mean))))


def incidents(series: list[dict[str, Any]], anomalous: Any) -> list[dict[str, Any]]:
    """Runs of anomalous minutes, each one incident."""
    found: list[dict[str, Any]] = []
    previous: dict[str, Any] | None = None
    for point in series:
        kind = anomalous(point)
        if kind and previous and previous["kind"] == kind:
            previous["last_anomalous_minute"] = point["minute"]
            if (point["count"] > previous["peak_count"]) == (kind == "spike"):
                previous["peak_count"], previous["expected_count"] = point["count"], point["expected"]
        elif kind:
            previous = {
                "kind": kind,
                "first_anomalous_minute": point["minute"],
                "last_anomalous_minute": point["minute"],
                "peak_count": point["count"],
                "expected_count": point["expected"],
            }
            found.append(previous)
        else:
            previous = None
    return found


def sample_report(seed: int = 7, scale: float = 1.0) -> dict[str, Any]:
    rng = random.Random(seed)
    lead = 14  # minutes simulated before the period, so its first windows are full
    minutes = [START + timedelta(minutes=i - lead) for i in range(DAYS * 1440 + lead)]
    spikes = {
        START + timedelta(days=d, hours=h): size for d, h, size in ((2, 14.5, 3.0), (6, 20, 2.2), (10, 9.25, 2.6))
    }
    outage = START + timedelta(days=8, hours=13, minutes=10)
    per_minute, errors = [], []
    for moment in minutes:
        rate = rhythm(moment, scale)
        for start, size in spikes.items():
            if timedelta(0) <= moment - start < timedelta(minutes=25):
                rate *= size
        if timedelta(0) <= moment - outage < timedelta(minutes=45):
            rate *= 0.05
        per_minute.append(noisy(rng, rate))
        failing = timedelta(0) <= moment - outage < timedelta(minutes=50) or any(
            timedelta(0) <= moment - start < timedelta(minutes=12) for start in list(spikes)[1:]
        )
        errors.append(noisy(rng, scale * (9 if failing else 0.6)))

    checkouts, payment_errors = [], []
    for index, moment in enumerate(minutes[lead:], lead):
        iso = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        expected = sum(rhythm(moment - timedelta(minutes=k), scale) for k in range(5))
        spread = 4 * math.sqrt(expected) + 0.08 * expected
        checkouts.append(
            {
                "minute": iso,
                "count": sum(per_minute[index - 4 : index + 1]),
                "expected": round(expected, 1),
                "lower": round(max(0.0, expected - spread), 1),
                "upper": round(expected + spread, 1),
            }
        )
        payment_errors.append(
            {"minute": iso, "count": sum(errors[index - 14 : index + 1]), "expected": None}
            | {"lower": None, "upper": None}
        )

    def outside_band(point: dict[str, Any]) -> str | None:
        return "spike" if point["count"] > point["upper"] else "drop" if point["count"] < point["lower"] else None

    common = {"weeks": DAYS / 7, "learning": None}
    rules = [
        common
        | {
            "event_name": "Checkout Completed",
            "detector": "baseline",
            "direction": "both",
            "time_window_minutes": 5,
            "alert_threshold": None,
            "min_events": round(20 * scale),
            "description": "Checkouts per 5 minutes against the same minute of the last 7 days.",
            "alert_channel": "#alerts-checkout",
            "series": checkouts,
            "incidents": incidents(checkouts, outside_band),
        },
        common
        | {
            "event_name": "Payment Failed",
            "detector": "threshold",
            "direction": "up",
            "time_window_minutes": 15,
            "alert_threshold": round(60 * scale),
            "min_events": None,
            "description": f"More than {round(60 * scale):,} failed payments in 15 minutes.",
            "alert_channel": "#alerts-payments",
            "series": payment_errors,
            "incidents": incidents(payment_errors, lambda point: "spike" if point["count"] > 60 * scale else None),
        },
    ]
    return {
        "generated_at": (START + timedelta(days=DAYS, hours=8)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "start_date": START.date().isoformat(),
        "end_date": (START + timedelta(days=DAYS - 1)).date().isoformat(),
        "warehouse": "duckdb data/mixpanel.duckdb (mixpanel_data.mixpanel_events)",
        "rules": rules,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write a sample backtest report page.")
    parser.add_argument("output", type=Path, help="the HTML file to write")
    parser.add_argument("--scale", type=float, default=1.0, help="times as many events (default 1)")
    arguments = parser.parse_args()
    arguments.output.write_text(render_backtest_html(sample_report(scale=arguments.scale)), encoding="utf-8")
