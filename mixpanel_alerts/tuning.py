"""The threshold a threshold rule would have needed: from a replay's window counts, the lowest
``alert_threshold`` that would have raised at most a chosen number of incidents a week.

Incidents are counted as ``incidents.sql`` groups them: a minute whose window count is above the
threshold is anomalous, and anomalous minutes less than the cooldown apart form one incident. So a
minute starts an incident at threshold T exactly when its count is above T and no count in the
cooldown before it is: ``highest count in the cooldown before <= T < count``. Each minute thus
starts an incident over one range of thresholds, and one pass over the minutes gives every
threshold's incident count at once (the count is not monotone in T: a higher threshold can split
one incident into two, so the suggestion is the lowest T from which every higher one stays within
the target).

Standard library only, no I/O: ``mixpanel_alerts.backtest`` reads the counts and passes them in.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import itertools
from collections.abc import Iterable
from datetime import datetime, timedelta

# the smallest alert_threshold the events configuration accepts
LOWEST_THRESHOLD = 1


@dataclasses.dataclass(frozen=True)
class Suggestion:
    """The lowest threshold within the target, and what it would have given over the period."""

    alert_threshold: int
    incidents: int
    per_week: float
    target_per_week: float


@dataclasses.dataclass(frozen=True)
class IncidentCurve:
    """The number of incidents at every threshold, as the thresholds where it changes."""

    breakpoints: list[int]  # ascending; the count is constant from one to the next
    counts: list[int]  # the count from breakpoints[i] up to breakpoints[i + 1]

    def incidents_at(self, threshold: int) -> int:
        position = bisect.bisect_right(self.breakpoints, threshold) - 1
        return self.counts[position] if position >= 0 else 0


def incident_curve(
    minutes: Iterable[tuple[datetime, int]], cooldown_minutes: int, counted_from: datetime
) -> IncidentCurve:
    """The incidents a threshold would have started at or after ``counted_from``, from each minute's
    window count in time order (minutes missing are not anomalous at any threshold). Minutes from
    ``counted_from`` less the cooldown are read too: one there would join an incident."""
    cooldown = timedelta(minutes=cooldown_minutes)
    before: collections.deque[tuple[datetime, int]] = collections.deque()  # counts falling, newest last
    changes: dict[int, int] = collections.defaultdict(int)
    for minute, count in minutes:
        while before and before[0][0] <= minute - cooldown:
            before.popleft()
        highest_before = before[0][1] if before else 0
        lowest, highest = max(highest_before, LOWEST_THRESHOLD), count - 1  # the thresholds it starts one at
        if minute >= counted_from and lowest <= highest:
            changes[lowest] += 1
            changes[highest + 1] -= 1
        while before and before[-1][1] <= count:
            before.pop()
        before.append((minute, count))
    breakpoints = sorted(changes)
    return IncidentCurve(breakpoints, list(itertools.accumulate(changes[point] for point in breakpoints)))


def suggest_threshold(curve: IncidentCurve, weeks: float, target_per_week: float) -> Suggestion | None:
    """The lowest threshold from which none gives more than ``target_per_week`` incidents a week
    over ``weeks``; None when no window count was above the lowest threshold (nothing to learn
    one from)."""
    if not curve.breakpoints or weeks <= 0:
        return None
    allowed = target_per_week * weeks
    suggested = curve.breakpoints[-1]  # above every count: no incident
    for point, count in zip(reversed(curve.breakpoints), reversed(curve.counts), strict=True):
        if count > allowed:
            break
        suggested = point
    else:
        suggested = LOWEST_THRESHOLD
    incidents = curve.incidents_at(suggested)
    return Suggestion(suggested, incidents, incidents / weeks, target_per_week)
