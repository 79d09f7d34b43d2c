"""Slack down for many runs, and Slack stalled past the request timeout: nothing is lost, nothing is
sent twice with a bot token, and a webhook's possible repeat says so."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mixpanel_alerts.simulator import ExportSimulator
from tests.conftest import rule, write_events_config
from tests.reliability.support import (
    Runner,
    SlackOutage,
    firing_messages,
    fresh_spike,
    ledger_rows,
    repeated_dedup_keys,
    says_may_have_arrived,
    slack_env,
    spike,
)
from tests.slack_fake import SlackFake

DOWN_RUNS = 5
LOOKBACK_MINUTES = 1


@pytest.mark.reliability
@pytest.mark.parametrize("mode", ["bot", "webhook"])
def test_slack_down_for_runs_then_back(
    mode: str,
    sim: ExportSimulator,
    make_env: Callable[..., dict[str, str]],
    slack_fake: SlackFake,
    tmp_path: Path,
    figure: Callable[[str], None],
) -> None:
    """Three incidents; Slack answers 500 to everything for the first run, then is unreachable (its
    server stopped) for the next ones, longer in all than ALERT_LOOKBACK_MINUTES=1; then it is back."""
    names = [f"outage_alert_{index}" for index in range(3)]
    write_events_config(tmp_path, {"events": [rule(name) for name in names]})
    env = make_env(sim, ALERT_LOOKBACK_MINUTES=str(LOOKBACK_MINUTES), **slack_env(mode, slack_fake))
    runner = Runner(tmp_path)
    outage = SlackOutage(slack_fake)

    sim.add_events(fresh_spike(names))
    started = time.monotonic()
    exits: list[int] = []
    slack_fake.inject(*["500"] * 500)
    exits.append(runner.run(["run"], env).code)
    slack_fake.faults.clear()
    # the alerts whose post got a 500 (Slack may have processed it); after three in a row the run
    # stopped posting, so the others were never posted and cannot have arrived
    maybe_posted = {row["event_name"] for row in ledger_rows(tmp_path / "mixpanel.duckdb") if row["maybe_sent"]}
    outage.start()
    try:
        while len(exits) < DOWN_RUNS or time.monotonic() - started < LOOKBACK_MINUTES * 60 + 5:
            exits.append(runner.run(["run"], env).code)
    finally:
        outage.end()
    down_seconds = time.monotonic() - started
    during = list(slack_fake.messages)
    back = runner.run(["run"], env)
    exits.append(back.code)

    delivered = {name: firing_messages(slack_fake, name) for name in names}
    posted = sum(len(messages) for messages in delivered.values())
    late = sum(1 for messages in delivered.values() for m in messages if "late" in str(m.get("text", "")).lower())
    marked = sum(1 for messages in delivered.values() for m in messages if says_may_have_arrived(m))
    rows = [row for row in ledger_rows(tmp_path / "mixpanel.duckdb") if row["kind"] == "firing"]
    note = (
        f", {marked} say 'may have arrived' of {len(maybe_posted)} posted during the 500s" if mode == "webhook" else ""
    )
    figure(
        f"slack down {len(exits) - 1} runs ({down_seconds:.0f} s, lookback {LOOKBACK_MINUTES} min) then back "
        f"({mode}): alerts expected {len(names)}, posted {posted}, late {late}{note}; exits {exits}"
    )
    assert during == [], "a message got through while Slack was down"
    assert {name: len(messages) for name, messages in delivered.items()} == dict.fromkeys(names, 1)
    assert late == len(names), "a late alert does not say it is late"
    assert exits == [1] * (len(exits) - 1) + [0], back.output
    assert [row["status"] for row in rows] == ["sent"] * len(names), rows
    if mode == "bot":
        assert repeated_dedup_keys(slack_fake) == {}
    else:
        # a post that got a 500 may have been processed: a webhook cannot look, so each of those
        # messages, sent again, carries the note; one never posted does not
        assert maybe_posted, "no post got a 500"
        assert marked == len(maybe_posted), "a message whose earlier post may have arrived lacks the note"
        for name in names:
            [message] = delivered[name]
            assert says_may_have_arrived(message) == (name in maybe_posted), name


@pytest.mark.reliability
@pytest.mark.parametrize("mode", ["bot", "webhook"])
def test_slack_stalled_past_the_timeout(
    mode: str,
    sim: ExportSimulator,
    make_env: Callable[..., dict[str, str]],
    slack_fake: SlackFake,
    tmp_path: Path,
    figure: Callable[[str], None],
) -> None:
    """Slack takes 4 s to process the post, the client gives up after 1 s (SLACK_TIMEOUT_SECONDS)."""
    name = "stalled_alert"
    write_events_config(tmp_path, {"events": [rule(name)]})
    sim.add_events(spike(name, 2))
    env = make_env(sim, SLACK_TIMEOUT_SECONDS="1", **slack_env(mode, slack_fake))
    runner = Runner(tmp_path)

    slack_fake.inject("stall:4")
    first = runner.run(["run"], env)
    second = runner.run(["run"], env)

    messages = firing_messages(slack_fake, name)
    marked = [says_may_have_arrived(message) for message in messages]
    if mode == "bot":
        outcome = "exactly once" if len(messages) == 1 else "NOT exactly once"
    else:
        outcome = "the stated webhook window" if marked == [False, True] else "the first post only"
    figure(
        f"slack stalled 4 s, timeout 1 s ({mode}): alerts expected 1, posted {len(messages)} ({outcome}); "
        f"'may have arrived' notes {marked}; exits [{first.code}, {second.code}]"
    )
    assert first.code == 1, first.output
    assert second.code == 0, second.output
    assert [row["status"] for row in ledger_rows(tmp_path / "mixpanel.duckdb")] == ["sent"]
    if mode == "bot":
        assert len(messages) == 1, messages
    else:
        assert 1 <= len(messages) <= 2
        assert marked[1:] == [True] * (len(messages) - 1), "a second copy lacks the 'may have arrived' note"
