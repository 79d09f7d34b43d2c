"""Write a sample backtest report page from synthetic data, for the README's screenshot.

    python scripts/sample_report.py /tmp/report.html
    python scripts/sample_report.py /tmp/report.html --scale 100   # counts in the tens of thousands

Fourteen days of per-minute counts with a daily and a weekly rhythm, a few spikes and one
45-minute outage; a baseline rule on the checkouts, a threshold rule on the payment errors (with
the threshold suggested for one incident a week, as ``backtest`` computes it) and a baseline rule
on a small bursty event whose band reaches far above its counts (the axis cuts it). The incidents
are the minutes outside the band (or over the threshold), grouped into runs, each with the hours
around it for its own chart.
"""

from __future__ import annotations

import argparse
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mixpanel_alerts.report import render_backtest_html
from mixpanel_alerts.tuning import incident_curve, suggest_threshold

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


def with_context(series: list[dict[str, Any]], found: list[dict[str, Any]], hours: int = 3) -> list[dict[str, Any]]:
    """Each incident with the minutes ``hours`` either side of it, as ``backtest`` adds them."""
    for incident in found:
        begins = datetime.fromisoformat(incident["first_anomalous_minute"]) - timedelta(hours=hours)
        ends = datetime.fromisoformat(incident["last_anomalous_minute"]) + timedelta(hours=hours, minutes=1)
        incident["context"] = [p for p in series if begins <= datetime.fromisoformat(p["minute"]) < ends]
        incident["context_from"] = begins.strftime("%Y-%m-%dT%H:%M:%SZ")
        incident["context_to"] = ends.strftime("%Y-%m-%dT%H:%M:%SZ")
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

    checkouts, payment_errors, invites = [], [], []
    invites_per_minute = [noisy(rng, 0.6 * scale) for _ in minutes]
    for day, hour in ((3, 15.5), (4, 18.75)):  # a team invited at once: inside the band at 15:30, not after 18:00
        burst = minutes.index(START + timedelta(days=day, hours=hour))
        for offset in range(3):
            invites_per_minute[burst + offset] += round(9 * scale)
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
        # invites come in bursts (a team invites everyone at once): a wide band, far above most windows
        burst_hours = 14 <= moment.hour < 18 and moment.weekday() < 5
        invites.append(
            {"minute": iso, "count": sum(invites_per_minute[index - 4 : index + 1])}
            | {"expected": 3.0 * scale, "lower": 0.0, "upper": (150.0 if burst_hours else 14.0) * scale}
        )

    def outside_band(point: dict[str, Any]) -> str | None:
        return "spike" if point["count"] > point["upper"] else "drop" if point["count"] < point["lower"] else None

    common = {"weeks": DAYS / 7, "learning": None, "suggestion": None}
    errors_at = [(datetime.fromisoformat(point["minute"]), point["count"]) for point in payment_errors]
    suggestion = suggest_threshold(incident_curve(errors_at, 5, START), DAYS / 7, 1.0)
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
            "incidents": with_context(checkouts, incidents(checkouts, outside_band)),
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
            "incidents": with_context(
                payment_errors,
                incidents(payment_errors, lambda point: "spike" if point["count"] > 60 * scale else None),
            ),
            "suggestion": suggestion and vars(suggestion),
        },
        common
        | {
            "event_name": "Invite Sent",
            "detector": "baseline",
            "direction": "up",
            "time_window_minutes": 5,
            "alert_threshold": None,
            "min_events": None,
            "description": "Invitations: bursty on weekday afternoons, so the band reaches far above most windows.",
            "alert_channel": "#alerts-growth",
            "series": invites,
            "incidents": with_context(invites, incidents(invites, outside_band)),
        },
    ]
    return {
        "target_per_week": 1.0,
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
