"""The suggested threshold: every threshold's incident count from one pass over the window counts,
checked against incidents grouped the way incidents.sql groups them, minute by minute."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from mixpanel_alerts.tuning import IncidentCurve, incident_curve, suggest_threshold

START = datetime(2026, 10, 1, tzinfo=UTC)


def minutes_of(counts: list[int], first: datetime = START) -> list[tuple[datetime, int]]:
    return [(first + timedelta(minutes=index), count) for index, count in enumerate(counts)]


def grouped_incidents(minutes: list[tuple[datetime, int]], threshold: int, cooldown: int, since: datetime) -> int:
    """incidents.sql, literally: the minutes above the threshold, a new incident where the previous
    anomalous minute is at least the cooldown before; those starting at or after ``since``."""
    anomalous = [minute for minute, count in minutes if count > threshold]
    starts = [
        minute
        for previous, minute in zip([None, *anomalous], anomalous, strict=False)
        if previous is None or minute - previous >= timedelta(minutes=cooldown)
    ]
    return sum(1 for minute in starts if minute >= since)


@pytest.mark.parametrize("cooldown", [1, 5, 30], ids=["cooldown-1", "cooldown-5", "cooldown-30"])
@pytest.mark.parametrize("seed", range(6))
def test_every_threshold_counts_the_incidents_incidents_sql_would_group(seed: int, cooldown: int) -> None:
    rng = random.Random(seed)
    counts = [rng.choice([0, 0, 0, 1, 2, 3, 5, 8, 13, 40]) if rng.random() < 0.3 else 0 for _ in range(3000)]
    gaps = [index for index in range(0, 3000, 7) if rng.random() < 0.2]
    minutes = [pair for index, pair in enumerate(minutes_of(counts)) if index not in gaps]  # unknown minutes
    since = START + timedelta(minutes=100)
    curve = incident_curve(minutes, cooldown, since)
    for threshold in range(1, 42):
        assert curve.incidents_at(threshold) == grouped_incidents(minutes, threshold, cooldown, since), threshold


def test_a_higher_threshold_can_split_an_incident_and_the_suggestion_holds_above() -> None:
    """10, 5, 10 with a cooldown of 2: one incident at 4, two at 5..9 (the 10s are 2 minutes apart).
    With a budget of one, 4 is within it yet 5 is not: the suggestion is 10, from which no higher
    threshold exceeds it."""
    minutes = minutes_of([10, 5, 10])
    curve = incident_curve(minutes, 2, START)
    assert [curve.incidents_at(t) for t in (4, 5, 9, 10)] == [1, 2, 2, 0]
    suggestion = suggest_threshold(curve, weeks=1.0, target_per_week=1.0)
    assert suggestion is not None and suggestion.alert_threshold == 10 and suggestion.incidents == 0


@pytest.mark.parametrize(
    ("target_per_week", "weeks", "threshold", "incidents"),
    [(1.0, 2.0, 41, 2), (2.0, 2.0, 35, 4), (0.5, 2.0, 44, 1), (100.0, 2.0, 1, 14), (1.0, 0.5, 50, 0)],
    ids=["one-a-week", "two-a-week", "half-a-week", "any-number", "shorter-than-a-week"],
)
def test_the_suggestion_is_the_lowest_threshold_within_the_target(
    target_per_week: float, weeks: float, threshold: int, incidents: int
) -> None:
    """One burst a day of these sizes, each lasting 5 minutes, hours apart."""
    sizes = [20, 35, 8, 50, 12, 27, 41, 15, 30, 9, 44, 22, 18, 38]
    minutes = [
        (START + timedelta(days=day, minutes=minute), size) for day, size in enumerate(sizes) for minute in range(5)
    ]
    suggestion = suggest_threshold(incident_curve(minutes, 5, START), weeks, target_per_week)
    assert suggestion is not None
    assert (suggestion.alert_threshold, suggestion.incidents) == (threshold, incidents)
    assert suggestion.per_week == pytest.approx(incidents / weeks)


def test_minutes_before_the_period_join_an_incident_but_are_not_counted() -> None:
    """An incident that began in the minute before the period, continuing into it, is not the period's."""
    minutes = minutes_of([9, 9, 9, 0, 0, 0, 0, 0, 0, 7], START - timedelta(minutes=1))
    curve = incident_curve(minutes, 5, START)
    assert curve.incidents_at(5) == 1  # the 7, after a gap of the cooldown
    assert curve.incidents_at(8) == 0  # the 9s began before the period


@pytest.mark.parametrize("counts", [[], [0, 0, 0], [1, 1]], ids=["no minutes", "zeros", "ones"])
def test_no_suggestion_without_a_window_above_the_lowest_threshold(counts: list[int]) -> None:
    curve = incident_curve(minutes_of(counts), 5, START)
    assert curve == IncidentCurve([], [])
    assert suggest_threshold(curve, weeks=1.0, target_per_week=1.0) is None
