"""The alert step against a local server speaking Slack's webhook and Web API: one message per
incident, retried through faults, never twice; rendering, escaping and Block Kit limits."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from mixpanel_alerts.alerts.ledger import COLUMNS as LEDGER_COLUMNS
from mixpanel_alerts.alerts.render import (
    MAX_BLOCKS,
    MAX_HEADER_TEXT,
    MAX_SECTION_TEXT,
    Incident,
    Investigation,
    escape,
    firing_message,
    resolved_message,
    sparkline,
)
from mixpanel_alerts.simulator import ExportSimulator, SimEvent, make_event
from tests.alert_runs import CHECKOUT, ERRORS, LEDGER, spike
from tests.conftest import CLI, output_of, query, rule, run_overlapping, write_events_config
from tests.slack_fake import BOT_TOKEN, SlackFake


@pytest.fixture
def setup(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], tmp_path: Path
) -> Callable[..., dict[str, str]]:
    """Configure two rules on separate channels; returns an environment factory."""
    write_events_config(
        tmp_path,
        {
            "events": [
                rule(ERRORS, alert_threshold=5, alert_channel="#alerts-errors"),
                rule(CHECKOUT, alert_threshold=5, alert_channel="#alerts-checkout"),
            ]
        },
    )

    def environment(**overrides: str | None) -> dict[str, str]:
        return make_env(sim, **overrides)

    return environment


def run_pipeline(run_cli: Callable[..., Any], env: dict[str, str], *extra: str) -> Any:
    return run_cli(["run", *extra], env)


def ledger(db_path: Path) -> list[tuple[Any, ...]]:
    return query(db_path, f"select event_name, kind, status, attempts, channel from {LEDGER} order by 1, 2")


def test_webhook_sends_one_message_per_incident_and_never_twice(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    sim.add_events(spike(ERRORS, 2, 12, error_message="<!channel> NPE & <https://evil.example|click>"))
    env = setup(SLACK_WEBHOOK_URL=slack_fake.webhook_url)
    first = run_pipeline(run_cli, env)
    assert first.returncode == 0, output_of(first)
    assert len(slack_fake.messages) == 1
    message = slack_fake.messages[0]
    assert ERRORS in message["text"]
    body = json.dumps(message["blocks"])
    assert "<!channel>" not in body and "&lt;!channel&gt;" in body
    assert "<https://evil.example" not in body
    assert "#alerts-errors" in body, "the webhook message names the rule's channel"
    assert ledger(db_path) == [(ERRORS, "firing", "sent", 1, "#alerts-errors")]

    second = run_pipeline(run_cli, env)
    assert second.returncode == 0, output_of(second)
    assert len(slack_fake.messages) == 1, "a rerun sends nothing"


@pytest.mark.parametrize(
    "faults",
    [["429"], ["500"], ["503", "500"], ["drop"]],
    ids=["429-retry-after", "500", "two-5xx", "connection-dropped"],
)
def test_webhook_faults_are_retried_and_delivered_once(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake, db_path: Path, faults: list[str],
) -> None:  # fmt: skip
    sim.add_events(spike(ERRORS, 2, 9))
    slack_fake.inject(*faults)
    result = run_pipeline(run_cli, setup(SLACK_WEBHOOK_URL=slack_fake.webhook_url))
    assert result.returncode == 0, output_of(result)
    assert len(slack_fake.messages) == 1
    assert [outcome for _, outcome in slack_fake.requests] == [*faults, "ok"]
    assert ledger(db_path)[0][2] == "sent"


# moved from `just test` to `just reliability` (CI runs both): a fault injection that takes minutes of waiting
@pytest.mark.reliability
def test_slack_down_then_back_delivers_once(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    sim.add_events(spike(ERRORS, 2, 9))
    env = setup(SLACK_WEBHOOK_URL=slack_fake.webhook_url)
    slack_fake.inject(*["500"] * 10)
    down = run_pipeline(run_cli, env)
    assert down.returncode == 1, output_of(down)
    assert "pending" in output_of(down)
    assert slack_fake.messages == []
    # attempts counts posts: a run makes up to three when Slack's answer is lost (a 5xx)
    assert ledger(db_path) == [(ERRORS, "firing", "pending", 3, "#alerts-errors")]

    slack_fake.faults.clear()
    back = run_pipeline(run_cli, env)
    assert back.returncode == 0, output_of(back)
    assert len(slack_fake.messages) == 1
    assert ledger(db_path) == [(ERRORS, "firing", "sent", 4, "#alerts-errors")]
    again = run_pipeline(run_cli, env)
    assert again.returncode == 0
    assert len(slack_fake.messages) == 1


def test_bot_token_posts_to_each_rules_channel(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake,
) -> None:  # fmt: skip
    sim.add_events([*spike(ERRORS, 2, 8), *spike(CHECKOUT, 2, 7)])
    env = setup(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack_fake.api_url)
    result = run_pipeline(run_cli, env)
    assert result.returncode == 0, output_of(result)
    channels = sorted(message["channel"] for message in slack_fake.messages)
    assert channels == ["C0CHECKOUT", "C0ERRORS"]
    assert all(message["via"] == "bot" for message in slack_fake.messages)


@pytest.mark.parametrize(
    ("env_change", "error"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb-wrong-token-Zx81"}, "invalid_auth"),
        ({}, "channel_not_found"),
    ],
    ids=["invalid-auth", "channel-not-found"],
)
def test_bot_errors_slack_repeats_are_failed_not_lost(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake, db_path: Path, env_change: dict[str, str], error: str,
) -> None:  # fmt: skip
    sim.add_events(spike(ERRORS, 2, 8))
    if error == "channel_not_found":
        slack_fake.channels.pop("#alerts-errors")
    env = setup(**{"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": slack_fake.api_url, **env_change})
    result = run_pipeline(run_cli, env)
    assert result.returncode == 1
    assert error in output_of(result)
    assert slack_fake.messages == []
    rows = query(db_path, f"select status, last_error from {LEDGER}")
    assert rows[0][0] == "failed" and error in rows[0][1]


def test_resolved_notice_replies_in_the_alerts_thread(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    sim.add_events(spike(ERRORS, 20, 10))  # over: more than the 5-minute cooldown ago
    env = setup(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack_fake.api_url)
    result = run_pipeline(run_cli, env)
    assert result.returncode == 0, output_of(result)
    firing, resolved = slack_fake.messages
    assert ERRORS in firing["text"] and "resolved" not in firing["text"]
    assert "resolved" in resolved["text"]
    assert resolved["thread_ts"] == firing["ts"]
    assert [row[1:3] for row in ledger(db_path)] == [("firing", "sent"), ("resolved", "sent")]
    run_pipeline(run_cli, env)
    assert len(slack_fake.messages) == 2


def test_late_events_before_an_alerted_incident_send_no_second_alert(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    """Late events make the minute before an alerted incident anomalous: its first minute, and
    so its id, change. It is still the same incident: no second message, and it keeps the thread."""
    sim.add_events(spike(ERRORS, 3, 9))
    env = setup(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack_fake.api_url)
    first = run_pipeline(run_cli, env)
    assert first.returncode == 0, output_of(first)
    assert len(slack_fake.messages) == 1

    sim.add_events(spike(ERRORS, 5, 9, processed_at=datetime.now(UTC)))
    second = run_pipeline(run_cli, env)
    assert second.returncode == 0, output_of(second)
    assert len(slack_fake.messages) == 1, "the incident that grew to an earlier minute was alerted again"
    rows = query(db_path, f"select incident_id, status, slack_ts from {LEDGER} where kind = 'firing' order by 1")
    assert len({row[0] for row in rows}) == 2, "the late events did not move the incident's first minute"
    assert [row[1:] for row in rows] == [("sent", slack_fake.messages[0]["ts"])] * 2


def test_late_events_before_a_resolved_incident_send_nothing_more(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    """An incident that is over, alerted and resolved, then starts earlier because of late events:
    neither its alert nor its resolved notice is sent again."""
    sim.add_events(spike(ERRORS, 20, 9))
    env = setup(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack_fake.api_url)
    first = run_pipeline(run_cli, env)
    assert first.returncode == 0, output_of(first)
    assert len(slack_fake.messages) == 2  # the alert and its resolved notice

    sim.add_events(spike(ERRORS, 22, 9, processed_at=datetime.now(UTC)))
    second = run_pipeline(run_cli, env)
    assert second.returncode == 0, output_of(second)
    assert len(slack_fake.messages) == 2
    rows = query(db_path, f"select kind, status from {LEDGER} order by incident_id, kind")
    assert sorted(rows) == [("firing", "sent")] * 2 + [("resolved", "sent")] * 2


# moved from `just test` to `just reliability` (CI runs both): a fault injection that takes minutes of waiting
@pytest.mark.reliability
def test_overlapping_runs_send_one_alert(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], slack_fake: SlackFake, tmp_path: Path, db_path: Path
) -> None:
    """Two cron runs that overlap: they take turns on the warehouse, and the incident is sent once."""
    sim.add_events(spike(ERRORS, 2, 9))
    env = setup(SLACK_WEBHOOK_URL=slack_fake.webhook_url)
    runs = run_overlapping(["run"], env, tmp_path)
    assert [code for code, _ in runs] == [0, 0], runs
    assert len(slack_fake.messages) == 1
    assert ledger(db_path) == [(ERRORS, "firing", "sent", 1, "#alerts-errors")]


def test_a_ledger_from_an_earlier_version_gains_the_new_column(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    """``alert_notifications`` without ``first_anomalous_minute`` (before it was added) is migrated."""
    old_columns = [name for name in LEDGER_COLUMNS if name != "first_anomalous_minute"]
    with duckdb.connect(str(db_path)) as con:
        con.execute("create schema mixpanel_data")
        con.execute(f"create table {LEDGER} ({', '.join(f'{name} {LEDGER_COLUMNS[name][0]}' for name in old_columns)})")
    sim.add_events(spike(ERRORS, 2, 9))
    result = run_pipeline(run_cli, setup(SLACK_WEBHOOK_URL=slack_fake.webhook_url))
    assert result.returncode == 0, output_of(result)
    assert len(slack_fake.messages) == 1
    assert query(db_path, f"select status, first_anomalous_minute is not null from {LEDGER}") == [("sent", True)]

    # a row written by the earlier version (no first minute) gets it on the next run
    with duckdb.connect(str(db_path)) as con:
        con.execute(f"update {LEDGER} set first_anomalous_minute = null")
    again = run_pipeline(run_cli, setup(SLACK_WEBHOOK_URL=slack_fake.webhook_url))
    assert again.returncode == 0, output_of(again)
    assert query(db_path, f"select status, first_anomalous_minute is not null from {LEDGER}") == [("sent", True)]
    assert len(slack_fake.messages) == 1


def test_dry_run_renders_and_sends_nothing(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    sim.add_events(spike(ERRORS, 2, 9))
    env = setup(SLACK_WEBHOOK_URL=slack_fake.webhook_url)
    dry = run_cli(["run", "--dry-run"], env)
    assert dry.returncode == 0, output_of(dry)
    assert ERRORS in output_of(dry) and "1 message(s) would be sent" in output_of(dry)
    assert slack_fake.requests == []
    assert query(
        db_path, "select count(*) from information_schema.tables where table_name = 'alert_notifications'"
    ) == [(0,)]
    real = run_cli(["detect"], env)
    assert real.returncode == 0, output_of(real)
    assert len(slack_fake.messages) == 1


def test_incidents_older_than_the_lookback_are_recorded_not_sent(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    sim.add_events([*spike(ERRORS, 90, 9), *spike(CHECKOUT, 2, 9)])
    env = setup(SLACK_WEBHOOK_URL=slack_fake.webhook_url, ALERT_LOOKBACK_MINUTES="60")
    result = run_pipeline(run_cli, env)
    assert result.returncode == 0, output_of(result)
    assert [CHECKOUT in message["text"] for message in slack_fake.messages] == [True]
    statuses = {row[0]: row[2] for row in ledger(db_path)}
    assert statuses == {ERRORS: "skipped", CHECKOUT: "sent"}


def test_without_slack_the_alert_is_shown_in_the_terminal(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
) -> None:  # fmt: skip
    sim.add_events(spike(ERRORS, 2, 9))
    result = run_pipeline(run_cli, setup())
    assert result.returncode == 0, output_of(result)
    assert ERRORS in result.stderr and "sent to the terminal" in result.stderr


def _incident(**overrides: Any) -> Incident:
    minute = datetime(2024, 1, 1, 12, 0)
    values: dict[str, Any] = {
        "incident_id": "abc",
        "event_name": ERRORS,
        "started_at": minute,
        "first_anomalous_minute": minute,
        "last_anomalous_minute": minute + timedelta(minutes=2),
        "ended_at": None,
        "status": "open",
        "peak_count": 12,
        "total_events": 30,
        "alert_threshold": 5,
        "time_window_minutes": 1,
        "alert_channel": "#alerts-errors",
        **overrides,
    }
    return Incident(**values)


def test_rendering_escapes_event_data() -> None:
    incident = _incident(event_name="<!here> & <@U123>")
    samples = [{"event_at": datetime(2024, 1, 1, 12, 0), "properties": {"error_message": "<!channel> boom"}}]
    message = firing_message(incident, minute_counts=[1, 2, 12], samples=samples, investigation=Investigation("x"))
    text = message.text + json.dumps([block for block in message.blocks if block["type"] != "header"])
    assert "<!here>" not in text and "<!channel>" not in text and "<@U123>" not in text
    assert "&lt;!channel&gt; boom" in text
    assert escape("a & b <c>") == "a &amp; b &lt;c&gt;"


def test_rendering_truncates_at_block_kit_limits() -> None:
    incident = _incident(event_name="e" * 400)
    samples = [{"event_at": "x", "properties": {f"prop_{index}": "v" * 5000 for index in range(50)}}] * 3
    message = firing_message(
        incident, minute_counts=list(range(60)), samples=samples, investigation=Investigation("select 1" * 1000)
    )
    assert len(message.blocks) <= MAX_BLOCKS
    header = next(block for block in message.blocks if block["type"] == "header")
    assert len(header["text"]["text"]) <= MAX_HEADER_TEXT
    for block in message.blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= MAX_SECTION_TEXT


def test_resolved_text_and_sparkline() -> None:
    assert "resolved" in resolved_message(_incident(status="over", ended_at=datetime(2024, 1, 1, 12, 3))).text
    assert sparkline([0, 0, 0]) == "▁▁▁"
    assert sparkline([0, 5, 10]) == "▁▅█"


def test_a_pending_alert_is_sent_late_however_long_slack_was_down(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    """Slack down for longer than ALERT_LOOKBACK_MINUTES: the alert recorded pending is delivered
    when Slack is back, saying it is late (it used to stay pending for ever, unsent, with exit 0)."""
    sim.add_events(spike(ERRORS, 3, 9))
    env = setup(SLACK_WEBHOOK_URL=slack_fake.webhook_url)
    slack_fake.inject(*["503"] * 3)
    down = run_pipeline(run_cli, env)
    assert down.returncode == 1, output_of(down)
    assert ledger(db_path)[0][2] == "pending"

    # the outage has outlasted the lookback: the incident's last minute is now older than it
    back = run_pipeline(run_cli, {**env, "ALERT_LOOKBACK_MINUTES": "1"})
    assert back.returncode == 0, output_of(back)
    assert len(slack_fake.messages) == 1
    assert "late" in slack_fake.messages[0]["text"]
    assert "Late" in json.dumps(slack_fake.messages[0]["blocks"])
    assert ledger(db_path)[0][2] == "sent"
    assert "(1 late)" in output_of(back)


def test_an_alert_whose_rule_was_removed_is_withdrawn_not_left_pending(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake, db_path: Path, tmp_path: Path,
) -> None:  # fmt: skip
    sim.add_events(spike(ERRORS, 3, 9))
    env = setup(SLACK_WEBHOOK_URL=slack_fake.webhook_url)
    slack_fake.inject(*["503"] * 3)
    assert run_pipeline(run_cli, env).returncode == 1
    write_events_config(tmp_path, {"events": [rule(CHECKOUT, alert_channel="#alerts-checkout")]})
    result = run_cli(["detect", "--full-refresh"], env)
    assert result.returncode == 0, output_of(result)
    assert slack_fake.messages == []
    assert [row[2] for row in ledger(db_path)] == ["withdrawn"]
    assert "1 withdrawn" in output_of(result)


def bot_env(setup: Callable[..., dict[str, str]], slack_fake: SlackFake, **overrides: str) -> dict[str, str]:
    return setup(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack_fake.api_url, **overrides)


def test_a_stalled_post_that_slack_processes_later_is_not_sent_twice(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    """Slack answers after the client gave up, but posts the message: the next run finds it in
    the channel by its metadata instead of posting again."""
    sim.add_events(spike(ERRORS, 2, 9))
    env = bot_env(setup, slack_fake, SLACK_TIMEOUT_SECONDS="1")
    slack_fake.inject("stall:3")
    first = run_pipeline(run_cli, env)
    assert first.returncode == 1, output_of(first)
    assert "may have arrived" in output_of(first)
    time.sleep(3)  # Slack finishes the post
    assert len(slack_fake.messages) == 1
    second = run_pipeline(run_cli, env)
    assert second.returncode == 0, output_of(second)
    assert len(slack_fake.messages) == 1
    rows = query(db_path, f"select status, slack_ts, maybe_sent from {LEDGER}")
    assert rows == [("sent", slack_fake.messages[0]["ts"], False)]
    assert slack_fake.messages[0]["metadata"]["event_payload"]["kind"] == "firing"


@pytest.mark.parametrize("fault", ["process-then-drop", "process-then-500"])
def test_a_post_whose_answer_is_lost_is_found_in_the_same_run(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake, db_path: Path, fault: str,
) -> None:  # fmt: skip
    sim.add_events(spike(ERRORS, 2, 9))
    slack_fake.inject(fault)
    result = run_pipeline(run_cli, bot_env(setup, slack_fake))
    assert result.returncode == 0, output_of(result)
    assert len(slack_fake.messages) == 1
    assert ledger(db_path)[0][2] == "sent"


def run_killed_mid_post(env: dict[str, str], cwd: Path, slack_fake: SlackFake) -> None:
    """Start `run`, and kill it (SIGKILL) while its post is in flight: Slack has the message."""
    slack_fake.inject("hold")
    process = subprocess.Popen(
        [CLI, "run"], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        assert slack_fake.held.wait(timeout=120), "the post never reached Slack"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        slack_fake.release()


# moved from `just test` to `just reliability` (CI runs both): a fault injection that takes minutes of waiting
@pytest.mark.reliability
def test_a_run_killed_mid_post_is_not_sent_twice_with_a_bot_token(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake, db_path: Path, tmp_path: Path,
) -> None:  # fmt: skip
    sim.add_events(spike(ERRORS, 2, 9))
    env = bot_env(setup, slack_fake)
    run_killed_mid_post(env, tmp_path, slack_fake)
    assert len(slack_fake.messages) == 1
    assert query(db_path, f"select status, maybe_sent from {LEDGER}") == [("pending", True)]
    again = run_pipeline(run_cli, env)
    assert again.returncode == 0, output_of(again)
    assert len(slack_fake.messages) == 1
    assert ledger(db_path)[0][2] == "sent"


# moved from `just test` to `just reliability` (CI runs both): a fault injection that takes minutes of waiting
@pytest.mark.reliability
def test_a_run_killed_mid_post_with_a_webhook_sends_again_saying_so(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake, tmp_path: Path,
) -> None:  # fmt: skip
    """The window a webhook leaves (it cannot read the channel back): the message goes out again,
    marked as a possible repeat."""
    sim.add_events(spike(ERRORS, 2, 9))
    env = setup(SLACK_WEBHOOK_URL=slack_fake.webhook_url)
    run_killed_mid_post(env, tmp_path, slack_fake)
    again = run_pipeline(run_cli, env)
    assert again.returncode == 0, output_of(again)
    assert len(slack_fake.messages) == 2
    assert "may have arrived" in json.dumps(slack_fake.messages[1]["blocks"])


def test_without_the_history_scope_a_maybe_sent_alert_goes_out_marked(
    sim: ExportSimulator, setup: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    slack_fake: SlackFake, tmp_path: Path,
) -> None:  # fmt: skip
    sim.add_events(spike(ERRORS, 2, 9))
    slack_fake.scopes.discard("channels:history")
    env = bot_env(setup, slack_fake)
    run_killed_mid_post(env, tmp_path, slack_fake)
    again = run_pipeline(run_cli, env)
    assert again.returncode == 0, output_of(again)
    assert "channels:history" in output_of(again)
    assert len(slack_fake.messages) == 2
    assert "may have arrived" in json.dumps(slack_fake.messages[1]["blocks"])


def test_alerts_say_what_was_expected_end_to_end(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    slack_fake: SlackFake,
) -> None:  # fmt: skip
    """A baseline rule's spike and a threshold rule's min_events drop, detected from eight days of
    history collected through the product: the terminal and Slack say what was expected, and the
    baseline rule without alert_threshold prints no "None"."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first, last = today - timedelta(days=8), today - timedelta(days=1)
    events: list[SimEvent] = []
    for offset in range(8):
        day = first + timedelta(days=offset)
        for minute in range(11 * 60, 16 * 60):
            at = day + timedelta(minutes=minute)
            events += [make_event(CHECKOUT, at + timedelta(seconds=1 + index * 10)) for index in range(5)]
            if not (day == last and 12 * 60 <= minute < 12 * 60 + 40):  # page views stop at 12:00 on the last day
                events += [make_event(ERRORS, at + timedelta(seconds=2 + index * 10)) for index in range(5)]
    events += [make_event(CHECKOUT, last + timedelta(hours=12, minutes=30, seconds=index / 10)) for index in range(200)]
    sim.add_events(events)
    write_events_config(
        tmp_path,
        {"events": [
            {"name": CHECKOUT, "enabled": True, "alert_channel": "#alerts-checkout", "time_window_minutes": 15,
             "detector": "baseline", "direction": "up", "description": "Checkouts ``` <!channel>"},
            {"name": ERRORS, "enabled": True, "alert_channel": "#alerts-errors", "time_window_minutes": 15,
             "alert_threshold": 10000, "min_events": 10},
        ]},
    )  # fmt: skip
    weekday = f"{last:%A}"
    now = (last + timedelta(hours=12, minutes=40)).strftime("%Y-%m-%dT%H:%M:%SZ")
    env = make_env(sim, MIXPANEL_START_DATE=first.date().isoformat(), DETECTION_NOW=now)
    assert run_cli(["collect"], env).returncode == 0
    shown = run_cli(["detect"], env)
    assert shown.returncode == 0, output_of(shown)
    terminal = " ".join(output_of(shown).replace("\u2502", " ").split())  # the panel's borders out
    spike = rf"`checkout_completed`: 2\d\d events in 15 min, expected 7\d \(at most 1\d\d\) at this time on a {weekday}"
    assert re.search(spike, terminal), terminal
    drop = r"`impression_error_null_pointer_detected`: 0 events in 15 min, fewer than the minimum of 10 "
    assert re.search(drop, terminal), terminal
    assert "Checkouts ``` <!channel>" in terminal, "the description, plain text, as Slack would show it"
    assert "None" not in terminal

    sent = run_cli(["detect", "--full-refresh"], {**env, "SLACK_WEBHOOK_URL": slack_fake.webhook_url})
    assert sent.returncode == 0, output_of(sent)
    assert slack_fake.messages == [], "each incident was shown once already (recorded as sent to the terminal)"


@pytest.mark.parametrize("scope", ["files:write", None], ids=["uploaded", "no-files-write-scope"])
def test_a_bot_alert_carries_a_png_chart_of_the_last_hours_or_says_why_not(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    slack_fake: SlackFake, scope: str | None,
) -> None:  # fmt: skip
    write_events_config(tmp_path, {"events": [rule(ERRORS), rule(CHECKOUT)]})
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=100)
    sim.add_events(make_event(ERRORS, start + timedelta(minutes=minute, seconds=7)) for minute in range(0, 95, 3))
    sim.add_events(spike(ERRORS, 2, 12))
    if scope is None:
        slack_fake.scopes.discard("files:write")
    result = run_cli(["run"], make_env(sim, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack_fake.api_url))
    assert result.returncode == 0, output_of(result)
    [alert] = slack_fake.messages
    images = [block for block in alert["blocks"] if block["type"] == "image"]
    context = json.dumps(alert["blocks"])
    if scope is None:
        assert images == [] and "Chart not attached: the bot token lacks the files:write scope" in context
        assert "Last 60 minutes" in context, "the sparkline stays"
        assert slack_fake.files == {}
        return
    [image] = images
    upload = slack_fake.files[image["slack_file"]["id"]]
    assert upload["complete"] and upload["bytes"].startswith(b"\x89PNG\r\n\x1a\n")
    assert ERRORS in image["alt_text"] and "threshold 5" in image["title"]["text"]
    assert "Last 60 minutes" not in context, "the image replaces the sparkline"
