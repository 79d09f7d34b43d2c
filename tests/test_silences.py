"""Silences: the `silence`, `silences` and `unsilence` commands, a silenced incident recorded and not
sent (and sent if still open when its silence ends), a :no_bell: reaction in Slack; the plan's rules
for silenced events, durations and reactions as plain function calls."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mixpanel_alerts.alerts.plan import plan
from mixpanel_alerts.alerts.silences import Silence, active_silences, parse_duration, reaction_silence
from mixpanel_alerts.simulator import ExportSimulator
from tests.alert_plan_builders import EVENT, LOOKBACK, NOW, OTHER_EVENT, ledger_of, notification, recent, sent
from tests.alert_runs import CHECKOUT, ERRORS, iso, ledger, spike, status_of
from tests.conftest import output_of, query, rule, write_events_config
from tests.slack_fake import BOT_TOKEN, SlackFake


def silence(event: str = EVENT, *, ends_in: timedelta = timedelta(hours=2), **overrides: Any) -> Silence:
    values: dict[str, Any] = {
        "silence_id": "s-1", "event_name": event, "starts_at": NOW - timedelta(minutes=10), "ends_at": NOW + ends_in,
        "reason": "planned launch", "created_by": "ana", "created_at": NOW - timedelta(minutes=10), **overrides,
    }  # fmt: skip
    return Silence(**values)


# --- end to end -----------------------------------------------------------------------------------


def test_silence_commands_list_end_and_refuse_bad_input(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    write_events_config(tmp_path, {"events": [rule(ERRORS), rule(CHECKOUT, enabled=False)]})
    env = make_env(sim)
    made = run_cli(["silence", ERRORS, "--for", "1h30m", "--reason", "deploy <b> & co"], env)
    assert made.returncode == 0, output_of(made)
    assert re.search(
        rf"silenced {ERRORS} until \d{{4}}-\d\d-\d\d \d\d:\d\d UTC \(90 min\): deploy <b> & co",
        made.stdout + made.stderr,
    )
    listed = run_cli(["silences"], env)
    assert ERRORS in listed.stdout and "deploy <b> & co" in listed.stdout
    # a disabled rule may be silenced ahead of its enabling; an unknown event may not
    assert run_cli(["silence", CHECKOUT, "--until", "2099-01-01", "--reason", "later"], env).returncode == 0
    for args, named in [
        (["silence", "Impression_error", "--for", "2h", "--reason", "x"], "'Impression_error' has no rule"),
        (["silence", ERRORS, "--for", "2 hours", "--reason", "x"], "--for '2 hours' is not a duration"),
        (["silence", ERRORS, "--reason", "x"], "give one of --for"),
        (["silence", ERRORS, "--for", "2h", "--until", "2099-01-01", "--reason", "x"], "give one of --for"),
        (["silence", ERRORS, "--until", "2001-01-01", "--reason", "x"], "is not in the future"),
        (["silence", ERRORS, "--until", "soon", "--reason", "x"], "--until 'soon' is not a time"),
        (["silence", ERRORS, "--for", "2h", "--reason", " "], "--reason is empty"),
    ]:
        refused = run_cli(args, env)
        assert refused.returncode == 2 and named in output_of(refused), (args, output_of(refused))
    ended = run_cli(["unsilence", ERRORS], env)
    assert ended.returncode == 0 and f"unsilenced {ERRORS} (1 silence ended)" in output_of(ended)
    assert "has no active silence" in output_of(run_cli(["unsilence", ERRORS], env))
    assert run_cli(["unsilence", "nope"], env).returncode == 2
    active = run_cli(["silences"], env).stdout
    assert ERRORS not in active and CHECKOUT in active
    assert "ended" in run_cli(["silences", "--all"], env).stdout
    rows = query(
        tmp_path / "mixpanel.duckdb",
        "select event_name, ended_early_at is not null from mixpanel_data.alert_silences order by 1",
    )
    assert rows == [(CHECKOUT, False), (ERRORS, True)]


def test_a_silenced_incident_is_recorded_not_sent_and_sent_if_still_open_when_the_silence_ends(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    slack_fake: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    write_events_config(tmp_path, {"events": [rule(ERRORS, cooldown_minutes=15), rule(CHECKOUT)]})
    now = datetime.now(UTC)
    sim.add_events(spike(ERRORS, 2, 12))
    env = make_env(sim, SLACK_WEBHOOK_URL=slack_fake.webhook_url, DETECTION_NOW=iso(now))
    assert run_cli(["silence", ERRORS, "--for", "2m", "--reason", "known: deploy"], env).returncode == 0

    muted = run_cli(["run"], env)
    assert muted.returncode == 0, output_of(muted)
    assert slack_fake.messages == []
    assert ledger(db_path) == [(ERRORS, "firing", "silenced")]
    assert "1 silenced" in output_of(muted)
    report = status_of(run_cli, env)
    states = {item["event_name"]: item["state"] for item in report["rules"]}
    assert states == {ERRORS: "silenced", CHECKOUT: "ok"}
    assert [item["reason"] for item in report["silences"]] == ["known: deploy"]

    # three minutes on, the silence is over and the incident still open (cooldown 15): it is sent
    later = run_cli(["run"], make_env(sim, SLACK_WEBHOOK_URL=slack_fake.webhook_url,
                                      DETECTION_NOW=iso(now + timedelta(minutes=3))))  # fmt: skip
    assert later.returncode == 0, output_of(later)
    assert len(slack_fake.messages) == 1 and ERRORS in slack_fake.messages[0]["text"]
    assert ledger(db_path) == [(ERRORS, "firing", "sent")]


def test_a_no_bell_reaction_on_an_alert_silences_its_event_for_a_day(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    slack_fake: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    write_events_config(tmp_path, {"events": [rule(ERRORS), rule(CHECKOUT, alert_channel="#alerts-checkout")]})
    sim.add_events(spike(ERRORS, 15, 12))
    env = make_env(sim, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack_fake.api_url)
    first = run_cli(["run"], env)
    assert first.returncode == 0, output_of(first)
    alert = next(message for message in slack_fake.messages if "resolved" not in message["text"])
    slack_fake.react(alert["channel"], alert["ts"], "no_bell", user="U0ONCALL")

    sim.add_events(spike(ERRORS, 2, 12))
    second = run_cli(["run"], env)
    assert second.returncode == 0, output_of(second)
    assert f"{ERRORS} silenced until" in output_of(second) and "slack:U0ONCALL" in output_of(second)
    assert len([message for message in slack_fake.messages if "resolved" not in message["text"]]) == 1
    statuses = sorted(row[2] for row in ledger(db_path) if row[1] == "firing")
    assert statuses == ["sent", "silenced"]
    rows = query(db_path, "select event_name, created_by, ends_at - starts_at from mixpanel_data.alert_silences")
    assert rows == [(ERRORS, "slack:U0ONCALL", timedelta(hours=24))]


def test_a_reaction_is_read_once_and_without_the_scope_the_run_says_so(slack_fake: SlackFake) -> None:
    """``reaction_silences`` against the Slack fake: a reaction already made into a silence adds
    nothing; a digest's reaction silences each of its events; no reactions:read, one line."""
    from mixpanel_alerts.alerts.ledger import Notification
    from mixpanel_alerts.alerts.mute import reaction_silences
    from mixpanel_alerts.alerts.slack import BotSender, Pacer

    sender = BotSender(BOT_TOKEN, slack_fake.api_url, pacer=Pacer(0))
    now = datetime.now(UTC)
    posted = [sender.post(_text(f"alert {index}"), "#alerts-errors", _stamp(index)) for index in range(2)]
    sent = {"status": "sent", "sent_at": now - timedelta(minutes=5), "slack_channel": "C0ERRORS"}
    alert = Notification("a:firing", "a", "firing", ERRORS, "#alerts-errors", slack_ts=posted[0].ts, **sent)
    digest = Notification("d", "d", "digest", "2 events", "#alerts-errors", slack_ts=posted[1].ts, **sent)
    members = [Notification(f"{name}:firing", name, "firing", name, "#alerts-errors", digest_id="d", **sent)
               for name in ("x_event", "y_event")]  # fmt: skip
    known = {item.notification_id: item for item in (alert, digest, *members)}
    said: list[str] = []
    assert reaction_silences(sender, known, [], now, said.append) == []
    slack_fake.react("C0ERRORS", posted[0].ts, "no_bell", user="U1")
    slack_fake.react("C0ERRORS", posted[1].ts, "no_bell", user="U2")
    made = reaction_silences(sender, known, [], now, said.append)
    assert sorted((item.event_name, item.created_by) for item in made) == [
        (ERRORS, "slack:U1"), ("x_event", "slack:U2"), ("y_event", "slack:U2"),
    ]  # fmt: skip
    assert reaction_silences(sender, known, made, now, said.append) == [], "read once"
    slack_fake.scopes.discard("reactions:read")
    assert reaction_silences(sender, known, [], now, said.append) == []
    assert len([line for line in said if "reactions:read" in line]) == 1


def _text(text: str) -> Any:
    from mixpanel_alerts.alerts.render import Message

    return Message(text=text, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])


def _stamp(index: int) -> Any:
    from mixpanel_alerts.alerts.slack import Stamp

    return Stamp(dedup_key=f"k{index}", kind="firing", incident_id=str(index))


# --- silences in the plan -------------------------------------------------------------------------


def test_a_new_incident_of_a_silenced_event_is_recorded_silenced_and_not_sent() -> None:
    result = plan([recent()], {}, now=NOW, lookback=LOOKBACK, silences=active_silences([silence()], NOW))
    assert [item.status for item in result.inserts] == ["silenced"]
    assert "planned launch" in (result.inserts[0].last_error or "")
    assert result.due == [] and result.silenced == 1


def test_a_silence_of_another_event_changes_nothing() -> None:
    result = plan([recent()], {}, now=NOW, lookback=LOOKBACK, silences=active_silences([silence(OTHER_EVENT)], NOW))
    assert [item.status for item in result.inserts] == ["pending"] and len(result.due) == 1


def test_an_undelivered_alert_is_silenced_when_its_event_is() -> None:
    pending = notification(attempts=2, maybe_sent=False, first_anomalous_minute=recent().first_anomalous_minute)
    result = plan(
        [recent()], ledger_of(pending), now=NOW, lookback=LOOKBACK, silences=active_silences([silence()], NOW)
    )
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
                  lookback=LOOKBACK, silences=active_silences([silence()], NOW))  # fmt: skip
    assert [due.notification.kind for due in result.due] == ["resolved"]


def test_a_rule_silence_mutes_that_rule_and_an_event_silence_every_rule_of_the_event() -> None:
    """Two rules watch one event: a silence of one rule (by its id) leaves the other's incident to
    be sent; a silence of the event mutes both."""
    default, burst = recent(incident_id="a"), recent(incident_id="b", rule_id="checkout_burst")
    ruled = active_silences([silence(rule_id="checkout_burst")], NOW)
    result = plan([default, burst], {}, now=NOW, lookback=LOOKBACK, silences=ruled)
    assert {item.rule_id: item.status for item in result.inserts} == {EVENT: "pending", "checkout_burst": "silenced"}
    everything = active_silences([silence()], NOW)
    result = plan([default, burst], {}, now=NOW, lookback=LOOKBACK, silences=everything)
    assert {item.rule_id: item.status for item in result.inserts} == {EVENT: "silenced", "checkout_burst": "silenced"}


def test_an_incident_of_another_rule_of_the_event_does_not_continue_an_alert() -> None:
    """A sent alert continues an incident of its own rule only: another rule of the same event
    with an incident at the same minutes gets an alert of its own."""
    other = recent(incident_id="b", rule_id="checkout_burst")
    alert = sent(incident_id="a", first_anomalous_minute=other.first_anomalous_minute)
    result = plan([other], ledger_of(alert), now=NOW, lookback=LOOKBACK)
    assert [(item.rule_id, item.status) for item in result.inserts] == [("checkout_burst", "pending")]
    assert alert.status == "sent"


def test_a_ledger_row_from_before_rule_ids_is_its_events_rule() -> None:
    assert notification().rule_id == EVENT and recent().rule_id == EVENT


def test_active_silences_keep_the_longest_and_drop_ended_ones() -> None:
    short, long = silence(ends_in=timedelta(hours=1)), silence(ends_in=timedelta(hours=5), silence_id="s-2")
    ended = silence(OTHER_EVENT, ends_in=timedelta(hours=3), ended_early_at=NOW - timedelta(minutes=1))
    future = silence("later", starts_at=NOW + timedelta(hours=1))
    assert active_silences([short, long, ended, future], NOW) == {(EVENT, None): long}
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
