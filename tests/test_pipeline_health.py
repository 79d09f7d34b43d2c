"""The pipeline's own health: the ops alert when collect keeps failing or the data goes stale (and its
resolved notice), drop alerts held meanwhile, the heartbeat, run history and `status`; the health
rules, the pipeline message and durations as plain function calls."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mixpanel_alerts.alerts.notices import closed_message, pipeline_message
from mixpanel_alerts.alerts.silences import active_silences
from mixpanel_alerts.runs import RunRecord, assess, minutes, typical
from mixpanel_alerts.simulator import ExportSimulator, make_event
from tests.alert_plan_builders import NOW
from tests.alert_runs import CHECKOUT, ERRORS, iso, status_of
from tests.conftest import output_of, query, rule, write_events_config
from tests.heartbeat import Heartbeat
from tests.slack_fake import BOT_TOKEN, SlackFake

RUNS = "mixpanel_data.pipeline_runs"
OPS = "#ops"
STALE = timedelta(minutes=60)


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


# --- end to end -----------------------------------------------------------------------------------


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
    assert rows == [("failed", False, True)] * 4 + [("ok", True, False)], "unhealthy at once; it paged at 2 min"


def traffic_with_history(name: str, now: datetime, *, days: int = 4, minutes: int = 90) -> list[Any]:
    """One event a minute for ``minutes`` up to ``now``, and in the same span of time of the ``days``
    days before, and their next 90 minutes (what the event usually does at this time of day)."""
    today = [now - timedelta(minutes=minute, seconds=55) for minute in range(minutes)]
    earlier = [
        now - timedelta(days=day) + timedelta(minutes=minute, seconds=5)
        for day in range(1, days + 1)
        for minute in range(-minutes, 90)
    ]
    return [make_event(name, moment) for moment in [*today, *earlier]]


def test_stale_data_while_the_history_expects_traffic_holds_drop_alerts_and_alerts_the_pipeline(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    ops_slack: SlackFake,
) -> None:  # fmt: skip
    write_events_config(tmp_path, {"events": [rule(CHECKOUT, alert_channel="#alerts-checkout", min_events=1,
                                                   alert_threshold=100)]})  # fmt: skip
    now = datetime.now(UTC)
    sim.add_events(traffic_with_history(CHECKOUT, now))
    env = make_env(sim, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=ops_slack.api_url, OPS_ALERT_CHANNEL=OPS,
                   PIPELINE_STALE_MINUTES="20", HEARTBEAT_URL="http://127.0.0.1:9/ping",
                   MIXPANEL_START_DATE=(now - timedelta(days=5)).date().isoformat(),
                   DETECTION_NOW=iso(now + timedelta(minutes=45)))  # fmt: skip
    result = run_cli(["run"], env)
    assert result.returncode == 0, output_of(result)
    assert [message["channel"] for message in ops_slack.messages] == ["C0OPS"], "the drop is held"
    assert "the data stopped advancing" in ops_slack.messages[0]["text"]
    assert "heartbeat: HEARTBEAT_URL did not answer" in output_of(result), "the run itself succeeded"
    # the silence lies past the data collected: no drop is judged on it, and status says from when
    report = status_of(run_cli, env)
    assert report["notifications"] == [] and report["runs"][0]["alerts_held"] == 0
    assert report["collection"]["drops_held_from"] is not None and report["health"]["healthy"] is False


def test_a_threshold_only_project_whose_data_stops_is_unhealthy_at_once_and_pages_after_the_stale_time(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    ops_slack: SlackFake,
) -> None:  # fmt: skip
    write_events_config(tmp_path, {"events": [rule(CHECKOUT, alert_threshold=100)]})
    now = datetime.now(UTC)
    sim.add_events(traffic_with_history(CHECKOUT, now))
    env = make_env(sim, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=ops_slack.api_url, OPS_ALERT_CHANNEL=OPS,
                   PIPELINE_STALE_MINUTES="30",
                   MIXPANEL_START_DATE=(now - timedelta(days=5)).date().isoformat())  # fmt: skip
    fresh = run_cli(["run"], {**env, "DETECTION_NOW": iso(now + timedelta(minutes=2))})
    assert fresh.returncode == 0 and "pipeline: ok" in output_of(fresh), output_of(fresh)
    stalled = run_cli(["run"], {**env, "DETECTION_NOW": iso(now + timedelta(minutes=25))})
    assert stalled.returncode == 0, output_of(stalled)
    assert "the data stopped advancing" in output_of(stalled) and ops_slack.messages == [], "not for 30 minutes"
    assert status_of(run_cli, {**env, "DETECTION_NOW": iso(now + timedelta(minutes=25))})["health"]["healthy"] is False
    paged = run_cli(["run"], {**env, "DETECTION_NOW": iso(now + timedelta(minutes=35))})
    assert paged.returncode == 0, output_of(paged)
    assert [message["channel"] for message in ops_slack.messages] == ["C0OPS"]


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


# --- messages -------------------------------------------------------------------------------------


def test_pipeline_and_closing_messages_say_what_happened() -> None:
    message = pipeline_message(["collect has failed"], NOW)
    assert message.text.startswith(":warning: pipeline:") and "Drop alerts are held" in str(message.blocks)
    closed = closed_message("<b>", NOW, "its rule was disabled (enabled: false)")
    assert "resolved" in closed.text and "&lt;b&gt;" in closed.text and "disabled" in closed.text


# --- health ---------------------------------------------------------------------------------------


def run_at(minutes_ago: int, collect: str | None, error: str | None = None) -> RunRecord:
    started = NOW - timedelta(minutes=minutes_ago)
    return RunRecord(run_id=str(minutes_ago), command="run", started_at=started, ended_at=started,
                     collect_result=collect, error=error)  # fmt: skip


def judge(history: list[RunRecord], collect: str | None = "ok", **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "now": NOW, "stale": STALE, "collect_result": collect, "collect_error": None, "history": history,
        "newest_processed_at": NOW - timedelta(minutes=2), "expected_since_newest": None, **overrides,
    }  # fmt: skip
    return assess(**values)


def test_a_failed_collect_is_unhealthy_at_once_and_pages_once_collect_has_failed_for_the_stale_time() -> None:
    blip = judge([run_at(10, "ok")], "failed")
    assert not blip.healthy and not blip.pages and blip.since == NOW
    assert not judge([run_at(30, "failed"), run_at(70, "ok")], "failed").pages
    health = judge([run_at(30, "failed", "Mixpanel answered 500"), run_at(61, "failed"), run_at(90, "ok")],
                   "failed", collect_error=None)  # fmt: skip
    assert not health.healthy and health.pages and health.since == NOW - timedelta(minutes=61)
    assert "3 runs" in health.summary() and "Mixpanel answered 500" in health.summary()


def test_a_standalone_detect_sees_the_collects_of_other_runs() -> None:
    assert judge([run_at(5, None), run_at(65, "failed"), run_at(120, "ok")], None).pages
    assert judge([run_at(65, "ok")], None).healthy, "no collect since: the lag tells, not the history"
    assert judge([], None).healthy


def test_stale_data_is_unhealthy_only_when_the_history_expected_events_since() -> None:
    old = NOW - timedelta(minutes=90)
    assert judge([], newest_processed_at=old).healthy, "no history to say: a new project"
    assert judge([], newest_processed_at=old, expected_since_newest=12).healthy, "a quiet night: few expected"
    health = judge([], newest_processed_at=old, expected_since_newest=45)
    assert not health.healthy and health.pages and "90 min ago" in health.summary()
    assert "about 45 events arrive in that time of day" in health.summary()
    recent = judge([], newest_processed_at=NOW - timedelta(minutes=10), expected_since_newest=25)
    assert not recent.healthy and not recent.pages, "unhealthy at once, paging after the stale time"
    assert judge([], newest_processed_at=NOW - timedelta(minutes=3), expected_since_newest=25).healthy, "fresh"


def test_what_the_history_expects_is_the_median_day_and_no_more_than_a_week_ago() -> None:
    assert typical([40, 42, None, None, None, None, None]) is None, "two days say too little"
    assert typical([40, 0, 44, 46, None, None, None]) == 42, "one odd day does not decide"
    weekdays_then_weekend = [50, 52, 0, 0, 55, 49, 0]  # a Saturday: last Saturday was quiet
    assert typical(weekdays_then_weekend) == 0
    assert typical([50, 52, 0, 0, 55, 49, 51]) == 50, "a Tuesday: last Tuesday was busy"


def test_minutes_reads_like_a_person_says_it() -> None:
    assert [minutes(timedelta(minutes=value)) for value in (0, 59, 120, 150, 3000)] == [
        "0 min", "59 min", "2 h", "2 h 30 min", "2 days",
    ]  # fmt: skip
    assert active_silences([], datetime.now(UTC)) == {}
