"""``plan()`` as a plain function: the ledger's cases, each built from Incident and Notification
objects (tests/alert_plan_builders.py), with no warehouse and no Slack.

Times are naive, as DuckDB returns them (``plan`` reads them as UTC); ``now`` is aware, as the alert
step passes it.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import pytest

from mixpanel_alerts.alerts.ledger import UNDELIVERED, Notification
from mixpanel_alerts.alerts.plan import LATE_AFTER, Due, continued_notification, delay_of, plan
from mixpanel_alerts.alerts.render import Delay, Incident
from mixpanel_alerts.core.times import utc
from tests.alert_plan_builders import (
    CHANNEL,
    EVENT,
    FIRST,
    LOOKBACK,
    NOW,
    OTHER_EVENT,
    incident,
    ledger_of,
    naive,
    notification,
    sent,
)

SLACK_DOWN_SINCE = NOW - timedelta(hours=3)


def run(incidents: list[Incident], ledger: dict[str, Notification], lookback: timedelta = LOOKBACK) -> Any:
    return plan(incidents, ledger, now=NOW, lookback=lookback)


# --- first sightings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "last_minute_ago",
    [timedelta(0), timedelta(minutes=30), LOOKBACK],
    ids=["last-minute-now", "30-min-ago", "exactly-the-lookback-ago"],
)
def test_new_incident_within_the_lookback_is_recorded_pending_and_due(last_minute_ago: timedelta) -> None:
    last = naive(NOW - last_minute_ago)
    new = incident(first=last - timedelta(minutes=3), last=last)
    result = run([new], {})
    assert [item.notification_id for item in result.inserts] == ["inc:firing"]
    recorded = result.inserts[0]
    assert (recorded.status, recorded.kind, recorded.incident_id) == ("pending", "firing", "inc")
    assert (recorded.event_name, recorded.channel) == (EVENT, CHANNEL)
    assert recorded.created_at == NOW and recorded.updated_at == NOW
    assert recorded.first_anomalous_minute == utc(new.first_anomalous_minute)
    assert recorded.attempts == 0 and recorded.maybe_sent is False and recorded.dedup_key == "inc:firing"
    assert result.due == [Due(recorded, new)]
    assert result.due[0].new is False and result.due[0].after is None, "inserted with the plan, not at delivery"
    assert (result.updates, result.skipped, result.withdrawn) == ([], 0, 0)
    assert delay_of(recorded, NOW) is None, "a first sighting sent now is not late"


@pytest.mark.parametrize("status", ["open", "over"], ids=["ongoing-since-the-backfill-window", "over-long-ago"])
def test_new_incident_older_than_the_lookback_is_recorded_skipped_and_not_due(status: str) -> None:
    last = naive(NOW - LOOKBACK - timedelta(minutes=1))
    old = incident(first=last - timedelta(minutes=10), last=last, status=status)
    result = run([old], {})
    assert [(item.notification_id, item.status) for item in result.inserts] == [("inc:firing", "skipped")]
    assert result.due == [] and result.skipped == 1
    assert (result.updates, result.withdrawn) == ([], 0)


# an incident that ended before the lookback
OLD = {"first": FIRST - timedelta(hours=3), "last": FIRST - timedelta(hours=3) + timedelta(minutes=5)}


def test_recorded_skipped_incident_stays_skipped() -> None:
    skipped = notification(status="skipped", first_anomalous_minute=OLD["first"])
    result = run([incident(status="over", **OLD)], ledger_of(skipped))
    assert (result.inserts, result.updates, result.due) == ([], [], [])
    # counted by the run that first saw it, not by every run since (the summary says this run's)
    assert (result.skipped, skipped.status) == (0, "skipped")


def test_a_skipped_incident_that_goes_on_into_the_lookback_is_sent() -> None:
    """First seen long after it began (a backfill), it has since gone on until now: it alerts."""
    skipped = notification(status="skipped", first_anomalous_minute=OLD["first"])
    ongoing = incident(first=OLD["first"], last=naive(NOW - timedelta(minutes=2)))
    result = run([ongoing], ledger_of(skipped))
    assert (skipped.status, result.skipped, result.updates) == ("pending", 0, [skipped])
    assert [due.notification for due in result.due] == [skipped]


def test_due_follows_the_incidents_first_minutes() -> None:
    later = incident("later", first=naive(NOW - timedelta(minutes=5)))
    earlier = incident("earlier", first=naive(NOW - timedelta(minutes=20)), event_name=OTHER_EVENT)
    result = run([later, earlier], {})
    assert [due.incident.incident_id for due in result.due] == ["earlier", "later"]


# --- undelivered notifications ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "attempts"),
    [("pending", 0), ("pending", 4), ("failed", 1)],
    ids=["pending-never-tried", "pending-after-4-timeouts", "failed-channel-not-found"],
)
@pytest.mark.parametrize("tz", [None, UTC], ids=["naive-duckdb-time", "aware-bigquery-time"])
def test_undelivered_notification_recorded_longer_ago_than_the_lookback_is_still_due(
    status: str, attempts: int, tz: Any
) -> None:
    """Slack was down for 3 hours and the lookback is 60 minutes: the alert is sent late, not dropped."""
    created = naive(SLACK_DOWN_SINCE).replace(tzinfo=tz)
    waiting = notification(
        status=status, attempts=attempts, created_at=created, first_anomalous_minute=naive(SLACK_DOWN_SINCE)
    )
    still_open = incident(first=naive(SLACK_DOWN_SINCE), last=naive(SLACK_DOWN_SINCE) + timedelta(minutes=2))
    result = run([still_open], ledger_of(waiting))
    assert result.due == [Due(waiting, still_open)]
    assert (result.inserts, result.updates, result.skipped, result.withdrawn) == ([], [], 0, 0)
    assert waiting.status == status, "planning does not change the row"
    assert delay_of(waiting, NOW) == Delay(due_since=SLACK_DOWN_SINCE, attempts=attempts, may_repeat=False)
    assert delay_of(waiting, NOW, may_repeat=True) == Delay(SLACK_DOWN_SINCE, attempts, may_repeat=True)


def test_undelivered_alert_of_an_incident_now_over_is_due_with_its_resolved_notice_after_it() -> None:
    waiting = notification(
        created_at=naive(SLACK_DOWN_SINCE), attempts=3, first_anomalous_minute=naive(SLACK_DOWN_SINCE)
    )
    over = incident(first=naive(SLACK_DOWN_SINCE), status="over")
    result = run([over], ledger_of(waiting))
    assert [(due.notification.notification_id, due.new, due.after) for due in result.due] == [
        ("inc:firing", False, None),
        ("inc:resolved", True, waiting),
    ]


@pytest.mark.parametrize(
    ("attempts", "recorded_ago", "may_repeat", "late"),
    [
        (0, timedelta(0), False, False),
        (0, LATE_AFTER - timedelta(seconds=1), False, False),
        (0, LATE_AFTER, False, True),
        (1, timedelta(0), False, True),
        (0, timedelta(0), True, False),
        (2, timedelta(0), True, True),
    ],
    ids=["fresh", "just-under-late-after", "late-after-reached", "an-attempt-failed", "may-repeat", "late-and-repeat"],
)
def test_delay_of(attempts: int, recorded_ago: timedelta, may_repeat: bool, late: bool) -> None:
    created = NOW - recorded_ago
    waiting = notification(attempts=attempts, created_at=created)
    delay = delay_of(waiting, NOW, may_repeat)
    if not late and not may_repeat:
        assert delay is None
    else:
        assert delay == Delay(due_since=created, attempts=attempts, late=late, may_repeat=may_repeat)


def test_retries_within_a_run_do_not_make_an_alert_late() -> None:
    """Only attempts of earlier runs count: a retry seconds later in the same run is not late."""
    waiting = notification(attempts=2, created_at=NOW)
    assert delay_of(waiting, NOW, earlier_attempts=0) is None
    assert delay_of(waiting, NOW, earlier_attempts=1) == Delay(due_since=NOW, attempts=1)


def test_delay_of_a_notification_without_created_at_counts_from_now() -> None:
    assert delay_of(notification(created_at=None), NOW) is None
    assert delay_of(notification(created_at=None, attempts=2), NOW) == Delay(due_since=NOW, attempts=2)


# --- sent alerts and resolved notices --------------------------------------------------------------


@pytest.mark.parametrize("status", ["open", "over"])
def test_sent_alert_is_not_due_again(status: str) -> None:
    firing = sent()
    result = run([incident(status=status)], ledger_of(firing, *([sent(kind="resolved")] if status == "over" else [])))
    assert (result.inserts, result.updates, result.due, result.skipped, result.withdrawn) == ([], [], [], 0, 0)
    assert firing.status == "sent"


def test_over_incident_whose_alert_was_sent_gets_a_resolved_notice() -> None:
    firing = sent()
    over = incident(status="over")
    result = run([over], ledger_of(firing))
    assert len(result.due) == 1
    due = result.due[0]
    assert (due.new, due.after, due.incident) == (True, firing, over)
    assert due.after is firing, "the very row the delivery marks sent"
    resolved = due.notification
    assert (resolved.notification_id, resolved.incident_id, resolved.kind, resolved.status) == (
        "inc:resolved", "inc", "resolved", "pending",
    )  # fmt: skip
    assert (resolved.attempts, resolved.maybe_sent, resolved.last_error) == (0, False, None)
    assert (resolved.sent_at, resolved.slack_ts) == (None, None)
    assert resolved.dedup_key == "inc:resolved", "not the alert's key: it must not find the alert in the channel"
    assert resolved.created_at == NOW
    assert result.inserts == [], "a new notice is recorded when it is delivered (after its alert)"


def test_over_incident_whose_alert_is_still_pending_plans_the_resolved_notice_after_it() -> None:
    firing = notification(status="pending", attempts=2)
    result = run([incident(status="over")], ledger_of(firing))
    assert [due.notification.notification_id for due in result.due] == ["inc:firing", "inc:resolved"]
    alert, notice = result.due
    assert (alert.notification, alert.new, alert.after) == (firing, False, None)
    assert (notice.new, notice.notification.status, notice.notification.attempts) == (True, "pending", 0)
    assert notice.after is firing


@pytest.mark.parametrize("status", UNDELIVERED)
def test_recorded_undelivered_resolved_notice_is_due_after_its_alert(status: str) -> None:
    firing, resolved = sent(), notification(kind="resolved", status=status, attempts=1)
    result = run([incident(status="over")], ledger_of(firing, resolved))
    assert result.due == [Due(resolved, result.due[0].incident, new=False, after=firing)]
    assert (result.inserts, result.updates) == ([], [])


@pytest.mark.parametrize("status", ["skipped", "withdrawn", "superseded"])
def test_over_incident_whose_alert_was_never_to_be_sent_gets_no_resolved_notice(status: str) -> None:
    recorded = notification(status=status, first_anomalous_minute=OLD["first"])
    result = run([incident(status="over", **OLD)], ledger_of(recorded))
    assert result.due == []


# --- an incident a late event moved ----------------------------------------------------------------

# a late event made the two minutes before FIRST anomalous: the incident now starts earlier, new id
MOVED = {"first": FIRST - timedelta(minutes=2), "last": FIRST + timedelta(minutes=5)}


def test_moved_incident_takes_over_the_sent_alert_and_sends_nothing() -> None:
    firing = sent("old")
    moved = incident("new", **MOVED)
    result = run([moved], ledger_of(firing))
    assert len(result.inserts) == 1
    copy = result.inserts[0]
    assert (copy.notification_id, copy.incident_id, copy.status) == ("new:firing", "new", "sent")
    assert copy.dedup_key == "old:firing"
    assert (copy.slack_channel, copy.slack_ts, copy.sent_at) == (firing.slack_channel, firing.slack_ts, firing.sent_at)
    assert copy.first_anomalous_minute == utc(moved.first_anomalous_minute)
    assert copy.created_at == firing.created_at and copy.updated_at == NOW
    assert (result.updates, result.due, result.skipped, result.withdrawn) == ([], [], 0, 0)
    assert (firing.status, firing.notification_id) == ("sent", "old:firing"), "the sent row is history, left alone"


@pytest.mark.parametrize(
    ("status", "attempts", "maybe_sent"),
    [("pending", 0, False), ("pending", 2, True), ("failed", 1, False)],
    ids=["pending-never-tried", "pending-maybe-posted", "failed"],
)
def test_moved_incident_takes_over_the_undelivered_alert(status: str, attempts: int, maybe_sent: bool) -> None:
    firing = notification(
        "old", status=status, attempts=attempts, maybe_sent=maybe_sent, created_at=naive(SLACK_DOWN_SINCE)
    )
    moved = incident("new", **MOVED)
    result = run([moved], ledger_of(firing))
    [copy] = result.inserts
    assert (copy.notification_id, copy.incident_id, copy.status) == ("new:firing", "new", status)
    assert copy.dedup_key == "old:firing", "the search for an earlier post looks for the old stamp"
    assert (copy.attempts, copy.maybe_sent) == (attempts, maybe_sent)
    assert copy.created_at == firing.created_at, "its delay counts from the first recording"
    assert result.due == [Due(copy, moved)]
    assert result.updates == [firing]
    assert (firing.status, firing.maybe_sent, firing.updated_at) == ("superseded", False, NOW)
    assert "new" in (firing.last_error or "")
    assert result.withdrawn == 0, "superseded, not withdrawn"


@pytest.mark.parametrize("alert", ["sent", "pending"])
@pytest.mark.parametrize("notice", UNDELIVERED)
def test_moved_incident_takes_over_the_resolved_notice(alert: str, notice: str) -> None:
    firing = sent("old") if alert == "sent" else notification("old", attempts=1)
    resolved = notification("old", kind="resolved", status=notice, attempts=1)
    moved = incident("new", status="over", **MOVED)
    result = run([moved], ledger_of(firing, resolved))
    assert [item.notification_id for item in result.inserts] == ["new:firing", "new:resolved"]
    firing_copy, resolved_copy = result.inserts
    assert (resolved_copy.incident_id, resolved_copy.status, resolved_copy.dedup_key) == ("new", notice, "old:resolved")
    assert resolved.status == "superseded"
    expected_updates = [resolved] if alert == "sent" else [firing, resolved]
    assert sorted(item.notification_id for item in result.updates) == sorted(
        item.notification_id for item in expected_updates
    )
    notices = [due for due in result.due if due.notification.kind == "resolved"]
    assert len(notices) == 1, "no second resolved notice"
    assert notices[0].notification is resolved_copy
    assert notices[0].after is firing_copy and notices[0].new is False
    assert result.withdrawn == 0


def test_moved_incident_keeps_a_sent_resolved_notice_and_sends_none() -> None:
    firing, resolved = sent("old"), sent("old", kind="resolved")
    result = run([incident("new", status="over", **MOVED)], ledger_of(firing, resolved))
    assert [(item.notification_id, item.status) for item in result.inserts] == [
        ("new:firing", "sent"), ("new:resolved", "sent"),
    ]  # fmt: skip
    assert (result.due, result.updates) == ([], [])


@pytest.mark.parametrize("status", ["superseded", "withdrawn"])
def test_superseded_and_withdrawn_notifications_are_never_continued(status: str) -> None:
    gone = notification("old", status=status, attempts=1)
    moved = incident("new", **MOVED)
    assert continued_notification([gone], moved) is None
    result = run([moved], ledger_of(gone))
    [recorded] = result.inserts
    assert (recorded.notification_id, recorded.status, recorded.dedup_key) == ("new:firing", "pending", "new:firing")
    assert recorded.attempts == 0
    assert result.due == [Due(recorded, moved)]
    assert result.updates == [] and gone.status == status


def test_continued_notification_skips_superseded_rows_for_the_live_one() -> None:
    superseded = notification("older", status="superseded", first_anomalous_minute=FIRST)
    live = sent("old", first_anomalous_minute=FIRST + timedelta(minutes=1))
    assert continued_notification([superseded, live], incident("new", **MOVED)) is live


@pytest.mark.parametrize(
    ("overrides", "continued"),
    [
        ({}, True),
        ({"first_anomalous_minute": MOVED["first"]}, True),
        ({"first_anomalous_minute": MOVED["last"]}, True),
        ({"first_anomalous_minute": naive(NOW - timedelta(minutes=30)).replace(tzinfo=UTC)}, True),
        ({"first_anomalous_minute": MOVED["first"] - timedelta(minutes=4)}, True),
        ({"first_anomalous_minute": MOVED["first"] - timedelta(minutes=5)}, False),
        ({"first_anomalous_minute": MOVED["last"] + timedelta(minutes=1)}, False),
        ({"first_anomalous_minute": None}, False),
        ({"event_name": OTHER_EVENT}, False),
        ({"kind": "resolved", "notification_id": "old:resolved"}, False),
    ],
    ids=[
        "recorded-first-inside",
        "at-the-new-first-minute",
        "at-the-last-minute",
        "aware-time",
        "less-than-the-cooldown-before: its first minutes stopped being anomalous",
        "the-cooldown-or-more-before",
        "after-the-incident",
        "no-first-minute-recorded",
        "other-event",
        "a-resolved-notice",
    ],
)
def test_continued_notification_needs_the_same_event_and_the_recorded_first_minute_inside(
    overrides: dict[str, Any], continued: bool
) -> None:
    recorded = sent("old", **overrides)
    found = continued_notification([recorded], incident("new", **MOVED))
    assert (found is recorded) is continued


def test_of_several_recorded_alerts_the_earliest_is_continued() -> None:
    earlier = sent("a", first_anomalous_minute=FIRST)
    later = sent("b", first_anomalous_minute=FIRST + timedelta(minutes=3))
    assert continued_notification([later, earlier], incident("new", **MOVED)) is earlier


# --- incidents that no longer exist ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "attempts"),
    [("firing", "pending", 0), ("firing", "failed", 1), ("resolved", "pending", 2)],
    ids=["pending-alert", "failed-alert", "pending-resolved-notice"],
)
def test_undelivered_notification_of_a_vanished_incident_is_withdrawn(kind: str, status: str, attempts: int) -> None:
    orphan = notification("gone", kind=kind, status=status, attempts=attempts, maybe_sent=attempts > 0)
    result = run([], ledger_of(orphan))
    assert result.updates == [orphan] and result.withdrawn == 1
    assert (orphan.status, orphan.maybe_sent, orphan.updated_at) == ("withdrawn", False, NOW)
    assert "no longer exists" in (orphan.last_error or "")
    assert (result.inserts, result.due) == ([], [])


@pytest.mark.parametrize("status", ["sent", "skipped", "withdrawn", "superseded"])
def test_delivered_or_settled_notification_of_a_vanished_incident_is_left_alone(status: str) -> None:
    row = sent("gone") if status == "sent" else notification("gone", status=status)
    before = Notification(**vars(row))
    result = run([incident("other", event_name=OTHER_EVENT)], ledger_of(row))
    assert result.updates == [] and result.withdrawn == 0
    assert row == before


def test_withdrawal_counts_every_orphan_and_spares_live_incidents() -> None:
    orphans = [notification("gone-1"), notification("gone-2", status="failed", attempts=1)]
    live = notification("inc", attempts=1)
    result = run([incident()], ledger_of(*orphans, live))
    assert result.withdrawn == 2
    assert sorted(item.notification_id for item in result.updates) == ["gone-1:firing", "gone-2:firing"]
    assert result.due == [Due(live, result.due[0].incident)] and live.status == "pending"


# --- rows from an earlier version ------------------------------------------------------------------


@pytest.mark.parametrize("status", ["sent", "pending"])
def test_row_without_first_anomalous_minute_gets_it_filled(status: str) -> None:
    row = sent(first_anomalous_minute=None) if status == "sent" else notification(first_anomalous_minute=None)
    live = incident()
    result = run([live], ledger_of(row))
    assert row.first_anomalous_minute == utc(live.first_anomalous_minute)
    assert result.updates == [row] and result.inserts == []
    assert [due.notification for due in result.due] == ([row] if status == "pending" else [])


@pytest.mark.parametrize(
    ("status", "attempts", "maybe_sent"),
    [
        ("pending", 0, False),
        ("pending", 1, True),
        ("failed", 3, True),
        ("failed", 0, False),
        ("sent", 1, False),
        ("skipped", 0, False),
        ("withdrawn", 2, False),
        ("superseded", 2, False),
    ],
    ids=lambda value: str(value),
)
def test_notification_defaults_for_rows_from_an_earlier_version(status: str, attempts: int, maybe_sent: bool) -> None:
    row = Notification("inc:firing", "inc", "firing", EVENT, CHANNEL, status, attempts)
    assert row.dedup_key == "inc:firing"
    assert row.maybe_sent is maybe_sent


def test_notification_keeps_recorded_dedup_key_and_maybe_sent() -> None:
    row = Notification(
        "new:firing", "new", "firing", EVENT, CHANNEL, "pending", 3, maybe_sent=False, dedup_key="old:firing"
    )
    assert (row.dedup_key, row.maybe_sent) == ("old:firing", False)
    assert Notification("a", "a", "firing", EVENT, CHANNEL, "sent", maybe_sent=True).maybe_sent is True


def test_a_drop_beside_a_spike_of_the_same_event_takes_over_nothing() -> None:
    """A spike recorded first, then a drop of the same event whose minutes enclose the spike's
    first minute (each kind groups its own minutes): both stay, each with its own alert."""
    spike = incident("spike", first=FIRST, kind="spike")
    drop = incident("drop", first=FIRST - timedelta(minutes=10), last=FIRST + timedelta(minutes=10), kind="drop")
    result = run([spike, drop], ledger_of(sent("spike")))
    assert [(item.notification_id, item.status) for item in result.inserts] == [("drop:firing", "pending")]
    assert [due.notification.notification_id for due in result.due] == ["drop:firing"]
    assert result.updates == [] and result.withdrawn == 0
