"""Day-two rules as plain function calls: silences in the plan, the notice that closes an
unmonitored rule's incident, durations, the pipeline's health, and run history rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mixpanel_alerts.alerts.notices import closed_message, digest_message, pipeline_message, size
from mixpanel_alerts.alerts.plan import plan
from mixpanel_alerts.alerts.silences import Silence, active_silences, parse_duration, reaction_silence
from mixpanel_alerts.runs import RunRecord, assess, minutes
from tests.test_alert_plan import EVENT, LOOKBACK, NOW, OTHER_EVENT, incident, ledger_of, notification, sent

STALE = timedelta(minutes=60)


def silence(event: str = EVENT, *, ends_in: timedelta = timedelta(hours=2), **overrides: Any) -> Silence:
    values: dict[str, Any] = {
        "silence_id": "s-1", "event_name": event, "starts_at": NOW - timedelta(minutes=10), "ends_at": NOW + ends_in,
        "reason": "planned launch", "created_by": "ana", "created_at": NOW - timedelta(minutes=10), **overrides,
    }  # fmt: skip
    return Silence(**values)


def recent(**overrides: Any) -> Any:
    return incident(first=NOW.replace(tzinfo=None) - timedelta(minutes=8), **overrides)


# --- silences in the plan ---------------------------------------------------------------------------


def test_a_new_incident_of_a_silenced_event_is_recorded_silenced_and_not_sent() -> None:
    result = plan([recent()], {}, now=NOW, lookback=LOOKBACK, silences={EVENT: silence()})
    assert [item.status for item in result.inserts] == ["silenced"]
    assert "planned launch" in (result.inserts[0].last_error or "")
    assert result.due == [] and result.silenced == 1


def test_a_silence_of_another_event_changes_nothing() -> None:
    result = plan([recent()], {}, now=NOW, lookback=LOOKBACK, silences={OTHER_EVENT: silence(OTHER_EVENT)})
    assert [item.status for item in result.inserts] == ["pending"] and len(result.due) == 1


def test_an_undelivered_alert_is_silenced_when_its_event_is() -> None:
    pending = notification(attempts=2, maybe_sent=False, first_anomalous_minute=recent().first_anomalous_minute)
    result = plan([recent()], ledger_of(pending), now=NOW, lookback=LOOKBACK, silences={EVENT: silence()})
    assert pending.status == "silenced" and result.due == []


def test_an_incident_still_open_when_its_silence_ends_is_sent() -> None:
    live = recent()
    muted = notification(status="silenced", first_anomalous_minute=live.first_anomalous_minute)
    result = plan([live], ledger_of(muted), now=NOW, lookback=LOOKBACK, silences={})
    assert muted.status == "pending" and [due.notification for due in result.due] == [muted]


def test_an_incident_over_before_its_silence_ended_stays_silenced() -> None:
    over = recent(status="over")
    muted = notification(status="silenced", first_anomalous_minute=over.first_anomalous_minute)
    result = plan([over], ledger_of(muted), now=NOW, lookback=LOOKBACK, silences={})
    assert muted.status == "silenced" and result.due == [] and result.silenced == 1


def test_the_resolved_notice_of_an_alert_sent_before_the_silence_still_follows() -> None:
    over = recent(status="over")
    result = plan([over], ledger_of(sent(first_anomalous_minute=over.first_anomalous_minute)), now=NOW,
                  lookback=LOOKBACK, silences={EVENT: silence()})  # fmt: skip
    assert [due.notification.kind for due in result.due] == ["resolved"]


def test_active_silences_keep_the_longest_and_drop_ended_ones() -> None:
    short, long = silence(ends_in=timedelta(hours=1)), silence(ends_in=timedelta(hours=5), silence_id="s-2")
    ended = silence(OTHER_EVENT, ends_in=timedelta(hours=3), ended_early_at=NOW - timedelta(minutes=1))
    future = silence("later", starts_at=NOW + timedelta(hours=1))
    assert active_silences([short, long, ended, future], NOW) == {EVENT: long}
    assert not silence(ends_in=timedelta(0)).active(NOW), "a silence ends at its end"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90m", timedelta(minutes=90)), ("2h", timedelta(hours=2)), ("1h30m", timedelta(minutes=90)),
     ("3d", timedelta(days=3)), ("1w", timedelta(weeks=1)), (" 2H ", timedelta(hours=2))],
)  # fmt: skip
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "2", "2x", "h", "-1h", "0m", "1.5h", "2h 30m"])
def test_bad_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"90m, 2h|at least a minute"):
        parse_duration(text)


def test_a_no_bell_reaction_asks_for_a_24_hour_silence_named_after_the_message() -> None:
    message = {"reactions": [{"name": "eyes", "count": 1, "users": ["U1"]}, {"name": "no_bell", "count": 1,
                                                                             "users": ["U2"]}]}  # fmt: skip
    made = reaction_silence(message, event_name=EVENT, channel_name="#alerts-errors", ts="17.5", now=NOW)
    assert made is not None and made.silence_id == "reaction:17.5" and made.created_by == "slack:U2"
    assert made.ends_at - made.starts_at == timedelta(hours=24) and ":no_bell:" in made.reason
    assert reaction_silence({"reactions": [{"name": "eyes", "count": 1}]}, event_name=EVENT, channel_name="#a",
                            ts="1", now=NOW) is None  # fmt: skip


# --- rules disabled or removed ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "reason"),
    [({EVENT: False}, "disabled"), ({OTHER_EVENT: True}, "removed")],
)
def test_a_sent_alert_whose_rule_is_no_longer_monitored_gets_one_closing_notice(
    rules: dict[str, bool], reason: str
) -> None:
    alert = sent()
    result = plan([], ledger_of(alert), now=NOW, lookback=LOOKBACK, rules=rules)
    assert len(result.due) == 1
    due = result.due[0]
    assert due.notification.kind == "resolved" and due.after is alert and due.closed and reason in due.closed
    # recorded as pending and not delivered: the next run sends it, it is not withdrawn
    again = plan([], ledger_of(alert, due.notification), now=NOW, lookback=LOOKBACK, rules=rules)
    assert [item.notification for item in again.due] == [due.notification] and again.withdrawn == 0
    due.notification.status = "sent"
    assert plan([], ledger_of(alert, due.notification), now=NOW, lookback=LOOKBACK, rules=rules).due == []


def test_no_closing_notice_while_the_rule_is_monitored_or_after_a_resolved_notice() -> None:
    alert = sent()
    assert plan([], ledger_of(alert), now=NOW, lookback=LOOKBACK, rules={EVENT: True}).due == []
    done = sent(kind="resolved")
    assert plan([], ledger_of(alert, done), now=NOW, lookback=LOOKBACK, rules={EVENT: False}).due == []
    assert plan([], ledger_of(alert), now=NOW, lookback=LOOKBACK).due == [], "no rules given: nothing closed"


def test_a_continued_incident_is_closed_once() -> None:
    first = sent("old", updated_at=NOW.replace(tzinfo=None) - timedelta(minutes=9))
    later = sent("new", dedup_key=first.dedup_key, updated_at=NOW.replace(tzinfo=None) - timedelta(minutes=2))
    result = plan([], ledger_of(first, later), now=NOW, lookback=LOOKBACK, rules={EVENT: False})
    assert [due.after for due in result.due] == [later]


# --- messages ---------------------------------------------------------------------------------------


def test_a_digest_lists_its_incidents_biggest_first_and_escapes_them() -> None:
    small = recent(incident_id="a", event_name="small", peak_count=7)
    big = recent(incident_id="b", event_name="<!channel> big", peak_count=500)
    message = digest_message("#alerts-errors", [small, big])
    body = "\n".join(block["text"]["text"] for block in message.blocks if block["type"] == "section")
    assert body.index("big") < body.index("small") and "<!channel>" not in body and "&lt;!channel&gt;" in body
    assert "2 new incidents" in message.text and "small" in message.text
    assert size(big) > size(small)


def test_a_digest_of_many_stays_within_block_kit_limits() -> None:
    many = [recent(incident_id=str(index), event_name=f"event_{index:03d}_" + "x" * 80) for index in range(300)]
    message = digest_message("#c", many)
    assert len(message.blocks) <= 50 and all(len(block["text"]["text"]) <= 3000 for block in message.blocks
                                            if block["type"] == "section")  # fmt: skip
    assert "… and 260 more" in str(message.blocks)


def test_pipeline_and_closing_messages_say_what_happened() -> None:
    message = pipeline_message(["collect has failed"], NOW)
    assert message.text.startswith(":warning: pipeline:") and "Drop alerts are held" in str(message.blocks)
    closed = closed_message("<b>", NOW, "its rule was disabled (enabled: false)")
    assert "resolved" in closed.text and "&lt;b&gt;" in closed.text and "disabled" in closed.text


# --- health -----------------------------------------------------------------------------------------


def run_at(minutes_ago: int, collect: str | None, error: str | None = None) -> RunRecord:
    started = NOW - timedelta(minutes=minutes_ago)
    return RunRecord(run_id=str(minutes_ago), command="run", started_at=started, ended_at=started,
                     collect_result=collect, error=error)  # fmt: skip


def judge(history: list[RunRecord], collect: str | None = "ok", **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "now": NOW, "stale": STALE, "collect_result": collect, "collect_error": None, "history": history,
        "newest_processed_at": NOW - timedelta(minutes=2), "traffic_expected_since": None, **overrides,
    }  # fmt: skip
    return assess(**values)


def test_a_failed_collect_is_unhealthy_only_once_collect_has_failed_for_the_stale_time() -> None:
    assert judge([run_at(10, "ok")], "failed").healthy
    assert judge([run_at(30, "failed"), run_at(70, "ok")], "failed").healthy
    health = judge([run_at(30, "failed", "Mixpanel answered 500"), run_at(61, "failed"), run_at(90, "ok")],
                   "failed", collect_error=None)  # fmt: skip
    assert not health.healthy and health.since == NOW - timedelta(minutes=61)
    assert "3 runs" in health.summary() and "Mixpanel answered 500" in health.summary()


def test_a_standalone_detect_sees_the_collects_of_other_runs() -> None:
    assert not judge([run_at(5, None), run_at(65, "failed"), run_at(120, "ok")], None).healthy
    assert judge([run_at(65, "ok")], None).healthy, "no collect since: the lag tells, not the history"
    assert judge([], None).healthy


def test_stale_data_is_unhealthy_only_while_the_rules_expect_traffic() -> None:
    old = NOW - timedelta(minutes=90)
    assert judge([], newest_processed_at=old).healthy, "nothing expected: a quiet night"
    health = judge([], newest_processed_at=old, traffic_expected_since=old + timedelta(minutes=1))
    assert not health.healthy and "90 min behind" in health.summary()
    assert judge([], newest_processed_at=old, traffic_expected_since=NOW - timedelta(minutes=5)).healthy


def test_minutes_reads_like_a_person_says_it() -> None:
    assert [minutes(timedelta(minutes=value)) for value in (0, 59, 120, 150, 3000)] == [
        "0 min", "59 min", "2 h", "2 h 30 min", "2 days",
    ]  # fmt: skip
    assert active_silences([], datetime.now(UTC)) == {}
