"""Rules that stop being monitored (disabled or removed): an open incident's alert gets one closing
notice that says why, end to end and in the plan."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mixpanel_alerts.alerts.plan import VANISHED, plan
from mixpanel_alerts.simulator import ExportSimulator
from tests.alert_plan_builders import EVENT, LOOKBACK, NOW, OTHER_EVENT, incident, ledger_of, sent
from tests.alert_runs import CHECKOUT, ERRORS, ledger, spike, status_of
from tests.conftest import output_of, rule, write_events_config
from tests.slack_fake import SlackFake

# --- end to end -----------------------------------------------------------------------------------


def test_disabling_a_rule_closes_its_open_incident_with_a_notice_that_says_why(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    slack_fake: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    write_events_config(tmp_path, {"events": [rule(ERRORS, cooldown_minutes=30), rule(CHECKOUT)]})
    sim.add_events(spike(ERRORS, 2, 12))
    env = make_env(sim, SLACK_WEBHOOK_URL=slack_fake.webhook_url, LOG_FORMAT="json")
    first = run_cli(["run"], env)
    assert first.returncode == 0, output_of(first)
    lines = [json.loads(line) for line in first.raw_stderr.splitlines() if line.strip()]
    assert lines and all({"time", "severity", "message"} <= set(line) for line in lines)
    assert any(line["message"].startswith("alerts: 1 sent") for line in lines)

    write_events_config(tmp_path, {"events": [rule(ERRORS, enabled=False, cooldown_minutes=30), rule(CHECKOUT)]})
    closed = run_cli(["run"], env)
    assert closed.returncode == 0, output_of(closed)
    assert len(slack_fake.messages) == 2
    notice = slack_fake.messages[1]["text"]
    assert "resolved" in notice and ERRORS in notice and "disabled" in notice
    assert ledger(db_path) == [(ERRORS, "firing", "sent"), (ERRORS, "resolved", "sent")]
    assert run_cli(["run"], env).returncode == 0 and len(slack_fake.messages) == 2
    states = {item["event_name"]: item["state"] for item in status_of(run_cli, env)["rules"]}
    assert states[ERRORS] == "disabled"


# --- in the plan ----------------------------------------------------------------------------------


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


def test_no_closing_notice_while_the_incident_is_there_or_after_a_resolved_notice() -> None:
    alert = sent()
    assert plan([incident()], ledger_of(alert), now=NOW, lookback=LOOKBACK, rules={EVENT: True}).due == []
    done = sent(kind="resolved")
    assert plan([], ledger_of(alert, done), now=NOW, lookback=LOOKBACK, rules={EVENT: True}).due == []
    assert plan([], ledger_of(alert, done), now=NOW, lookback=LOOKBACK, rules={EVENT: False}).due == []
    assert plan([], ledger_of(alert), now=NOW, lookback=LOOKBACK).due == [], "no rules given: nothing closed"


def test_a_sent_alert_whose_incident_the_data_no_longer_shows_is_resolved_in_its_thread() -> None:
    """Late events filled a drop in (or its rule changed): the rule is monitored, the incident is
    gone. Its alert gets a resolved notice that says so, once; not a silent withdrawal."""
    alert = sent()
    result = plan([], ledger_of(alert), now=NOW, lookback=LOOKBACK, rules={EVENT: True})
    assert len(result.due) == 1 and result.withdrawn == 0
    due = result.due[0]
    assert due.notification.kind == "resolved" and due.after is alert and due.closed == VANISHED
    due.notification.status = "sent"
    assert plan([], ledger_of(alert, due.notification), now=NOW, lookback=LOOKBACK, rules={EVENT: True}).due == []


def test_a_continued_incident_is_closed_once() -> None:
    first = sent("old", updated_at=NOW.replace(tzinfo=None) - timedelta(minutes=9))
    later = sent("new", dedup_key=first.dedup_key, updated_at=NOW.replace(tzinfo=None) - timedelta(minutes=2))
    result = plan([], ledger_of(first, later), now=NOW, lookback=LOOKBACK, rules={EVENT: False})
    assert [due.after for due in result.due] == [later]
