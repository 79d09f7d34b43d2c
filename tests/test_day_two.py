"""Day-two operations end to end, against the simulator, the Slack fake and a DuckDB file:
silences (command line and reaction), the digest, rules that stop being monitored, the pipeline's
own alert and held drops, the heartbeat, run history and `status`, timestamped and JSON logs."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mixpanel_alerts.simulator import ExportSimulator, make_event
from tests.conftest import output_of, query, rule, write_events_config
from tests.slack_fake import BOT_TOKEN, SlackFake
from tests.test_alerts import CHECKOUT, ERRORS, spike

LEDGER = "mixpanel_data.alert_notifications"
RUNS = "mixpanel_data.pipeline_runs"
OPS = "#ops"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def ledger(db_path: Path) -> list[tuple[Any, ...]]:
    return query(db_path, f"select event_name, kind, status from {LEDGER} order by event_name, kind")


def status_of(run_cli: Callable[..., Any], env: dict[str, str]) -> dict[str, Any]:
    result = run_cli(["status", "--json"], env)
    assert result.returncode == 0, output_of(result)
    return json.loads(result.stdout)


class Heartbeat:
    """An outside monitor's ping URL: counts the GETs it receives."""

    def __init__(self) -> None:
        self.pings: list[str] = []
        monitor = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                monitor.pings.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/ping/5f2c-secret-uuid"


@pytest.fixture
def heartbeat() -> Iterator[Heartbeat]:
    monitor = Heartbeat()
    yield monitor
    monitor.server.shutdown()
    monitor.server.server_close()


@pytest.fixture
def ops_slack() -> Iterator[SlackFake]:
    fake = SlackFake({"#alerts-errors": "C0ERRORS", "#alerts-checkout": "C0CHECKOUT", OPS: "C0OPS"})
    yield fake
    fake.stop()


# --- silences ---------------------------------------------------------------------------------------


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
    from mixpanel_alerts.alerts.slack import BotSender, Pacer
    from mixpanel_alerts.alerts.step import reaction_silences

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


# --- flood control ----------------------------------------------------------------------------------


def test_more_new_incidents_than_the_digest_threshold_go_out_as_one_digest_and_none_is_lost(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    slack_fake: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    names = [f"error_{index}" for index in range(7)]
    write_events_config(
        tmp_path, {"events": [*(rule(name) for name in names), rule(CHECKOUT, alert_channel="#alerts-checkout")]}
    )
    for index, name in enumerate(names):
        sim.add_events(spike(name, 2, 8 + 3 * index))
    sim.add_events(spike(CHECKOUT, 2, 9))
    env = make_env(sim, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack_fake.api_url)
    slack_fake.inject("503", "503", "503", method="chat.postMessage")  # the digest's three posts of the first run

    down = run_cli(["run"], env)
    assert down.returncode == 1, output_of(down)
    statuses = dict(query(db_path, f"select kind, count(*) from {LEDGER} where status = 'pending' group by kind"))
    assert statuses == {"firing": 7, "digest": 1}, "the digest and its incidents stay pending, bound together"

    back = run_cli(["run"], env)
    assert back.returncode == 0, output_of(back)
    digests = [message for message in slack_fake.messages if message["channel"] == "C0ERRORS"]
    assert len(digests) == 1, [message["text"] for message in slack_fake.messages]
    text = json.dumps(digests[0]["blocks"])
    assert "7 new incidents" in digests[0]["text"]
    assert [name for name in reversed(names) if name in text] == list(reversed(names))
    assert text.index("error_6") < text.index("error_0"), "biggest first"
    assert len([message for message in slack_fake.messages if message["channel"] == "C0CHECKOUT"]) == 1
    rows = query(db_path, f"select status, slack_ts, digest_id from {LEDGER} where event_name like 'error_%'")
    assert {row[0] for row in rows} == {"sent"} and {row[1] for row in rows} == {digests[0]["ts"]}
    assert len({row[2] for row in rows}) == 1
    # ten minutes on, all are over: each resolved notice goes into its alert's thread, and those of
    # the digest's incidents stay there (not broadcast to the channel: the flood would come back)
    later = run_cli(["run"], {**env, "DETECTION_NOW": iso(datetime.now(UTC) + timedelta(minutes=10))})
    assert later.returncode == 0, output_of(later)
    notices = slack_fake.messages[2:]
    assert len(notices) == 8 and all("resolved" in message["text"] for message in notices), "no alert again"
    in_digest = [message for message in notices if message.get("thread_ts") == digests[0]["ts"]]
    assert len(in_digest) == 7 and not any(message["reply_broadcast"] for message in in_digest)
    [checkout] = [message for message in notices if message["channel"] == "C0CHECKOUT"]
    assert checkout["reply_broadcast"], "a single alert's notice is shown in the channel too"


# --- rules no longer monitored ----------------------------------------------------------------------


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


# --- the pipeline's health --------------------------------------------------------------------------


def test_collect_failing_for_the_stale_time_raises_one_pipeline_alert_resolved_when_it_recovers(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    ops_slack: SlackFake, db_path: Path, heartbeat: Heartbeat,
) -> None:  # fmt: skip
    write_events_config(tmp_path, {"events": [rule(ERRORS), rule(CHECKOUT, alert_channel="#alerts-checkout")]})
    sim.add_events(make_event(CHECKOUT, datetime.now(UTC) - timedelta(minutes=3)) for _ in range(2))
    now = datetime.now(UTC)

    def env(minutes: int, *, reachable: bool = True) -> dict[str, str]:
        values = make_env(sim, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=ops_slack.api_url, OPS_ALERT_CHANNEL=OPS,
                          PIPELINE_STALE_MINUTES="2", HEARTBEAT_URL=heartbeat.url,
                          DETECTION_NOW=iso(now + timedelta(minutes=minutes)))  # fmt: skip
        if not reachable:
            values["MIXPANEL_EXPORT_URL"] = "http://127.0.0.1:9/"  # nothing listens there
        return values

    first = run_cli(["run"], env(0, reachable=False))
    assert first.returncode == 1, output_of(first)
    assert ops_slack.messages == [] and heartbeat.pings == []
    second = run_cli(["run"], env(1, reachable=False))
    assert second.returncode == 1 and ops_slack.messages == [], "failing for 1 minute of 2: not yet"
    third = run_cli(["run"], env(3, reachable=False))
    assert third.returncode == 1, output_of(third)
    assert [message["channel"] for message in ops_slack.messages] == ["C0OPS"]
    alert = ops_slack.messages[0]
    assert alert["text"].startswith(":warning: pipeline:") and "collect has failed in every run since" in alert["text"]
    assert "3 runs" in alert["text"] and "5f2c-secret-uuid" not in json.dumps(ops_slack.messages)
    assert run_cli(["run"], env(4, reachable=False)).returncode == 1 and len(ops_slack.messages) == 1, "once"
    report = status_of(run_cli, env(4))
    assert report["health"]["healthy"] is False and [run["collect_result"] for run in report["runs"]] == ["failed"] * 4

    recovered = run_cli(["run"], env(5))
    assert recovered.returncode == 0, output_of(recovered)
    assert len(ops_slack.messages) == 2
    notice = ops_slack.messages[1]
    assert "resolved" in notice["text"] and notice.get("thread_ts") == alert["ts"]
    assert len(heartbeat.pings) == 1 and heartbeat.pings[0].endswith("5f2c-secret-uuid"), "after the success only"
    assert "5f2c-secret-uuid" not in output_of(recovered)
    rows = query(db_path, f"select collect_result, healthy, error is not null from {RUNS} order by started_at")
    assert rows == [("failed", True, True), ("failed", True, True), ("failed", False, True), ("failed", False, True),
                    ("ok", True, False)]  # fmt: skip


def test_stale_data_while_rules_expect_traffic_holds_drop_alerts_and_alerts_the_pipeline(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    ops_slack: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    write_events_config(tmp_path, {"events": [rule(CHECKOUT, alert_channel="#alerts-checkout", min_events=1,
                                                   alert_threshold=100)]})  # fmt: skip
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=90)
    sim.add_events(make_event(CHECKOUT, start + timedelta(minutes=minute, seconds=5)) for minute in range(90))
    env = make_env(sim, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=ops_slack.api_url, OPS_ALERT_CHANNEL=OPS,
                   PIPELINE_STALE_MINUTES="20", HEARTBEAT_URL="http://127.0.0.1:9/ping",
                   DETECTION_NOW=iso(datetime.now(UTC) + timedelta(minutes=45)))  # fmt: skip
    result = run_cli(["run"], env)
    assert result.returncode == 0, output_of(result)
    assert [message["channel"] for message in ops_slack.messages] == ["C0OPS"], "the drop is held"
    assert "the data is" in ops_slack.messages[0]["text"] and "behind" in ops_slack.messages[0]["text"]
    assert "drop alert(s) held" in output_of(result)
    assert "heartbeat: HEARTBEAT_URL did not answer" in output_of(result), "the run itself succeeded"
    report = status_of(run_cli, env)
    assert [item["status"] for item in report["notifications"]] == ["held"]
    assert report["runs"][0]["alerts_held"] == 1 and report["health"]["healthy"] is False


def test_every_line_of_run_output_starts_with_a_timestamp_and_the_terminal_says_where_the_chart_would_be(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    write_events_config(tmp_path, {"events": [rule(ERRORS), rule(CHECKOUT)]})
    sim.add_events(spike(ERRORS, 2, 12))
    result = run_cli(["run"], make_env(sim))
    assert result.returncode == 0, output_of(result)
    lines = [line for line in result.raw_stderr.splitlines() if line.strip()]
    # an alert shown in the terminal is a panel: its lines are the message, not log lines
    logged = [line for line in lines if not line.startswith(("╭", "│", "╰"))]
    assert len(logged) > 5 and all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", line) for line in logged), logged
    assert "A chart of the last 3 hours goes here in Slack (with a bot token)" in output_of(result)
    refused = run_cli(["collect"], make_env(sim, LOG_FORMAT="xml"))
    assert refused.returncode == 2 and "LOG_FORMAT='xml' is not supported; use text or json" in output_of(refused)


# --- charts -----------------------------------------------------------------------------------------


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


def test_without_ops_alert_channel_the_pipeline_alert_goes_to_the_webhooks_channel_beside_a_bot(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    slack_fake: SlackFake,
) -> None:  # fmt: skip
    write_events_config(tmp_path, {"events": [rule(ERRORS), rule(CHECKOUT)]})
    now = datetime.now(UTC)
    env = make_env(sim, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack_fake.api_url,
                   SLACK_WEBHOOK_URL=slack_fake.webhook_url, PIPELINE_STALE_MINUTES="1",
                   MIXPANEL_EXPORT_URL="http://127.0.0.1:9/")  # fmt: skip
    assert run_cli(["run"], {**env, "DETECTION_NOW": iso(now)}).returncode == 1
    assert run_cli(["run"], {**env, "DETECTION_NOW": iso(now + timedelta(minutes=2))}).returncode == 1
    assert [(message["via"], message["text"][:20]) for message in slack_fake.messages] == [
        ("webhook", ":warning: pipeline: ")
    ]
