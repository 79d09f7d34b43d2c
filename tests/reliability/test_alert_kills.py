"""kill -9 in the alert step, while a post is in flight: with a bot token the next run finds the
message in the channel (its metadata) and sends nothing more; with a webhook it cannot look, so the
message is sent again marked "may have arrived" (the window the README states)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mixpanel_alerts.simulator import ExportSimulator
from tests.conftest import rule, write_events_config
from tests.reliability.support import (
    Runner,
    firing_messages,
    ledger_rows,
    ledger_statuses,
    message_counts,
    repeated_dedup_keys,
    says_may_have_arrived,
    slack_env,
    spike,
)
from tests.slack_fake import BOT_TOKEN, SlackFake


@pytest.mark.reliability
@pytest.mark.parametrize("mode", ["bot", "webhook"])
def test_post_in_flight_killed(
    mode: str,
    sim: ExportSimulator,
    make_env: Callable[..., dict[str, str]],
    slack_fake: SlackFake,
    tmp_path: Path,
    figure: Callable[[str], None],
) -> None:
    """Slack processes the post and holds its answer; the run is killed meanwhile, the answer
    released, and the next run decides."""
    name = "post_in_flight"
    write_events_config(tmp_path, {"events": [rule(name)]})
    sim.add_events(spike(name, 2))
    env = make_env(sim, **slack_env(mode, slack_fake))
    runner = Runner(tmp_path)

    slack_fake.inject("hold")
    spawned = runner.spawn(["run"], env)
    held = slack_fake.held.wait(180)
    killed = spawned.kill()
    slack_fake.release()
    rerun = runner.run(["run"], env)

    messages = firing_messages(slack_fake, name)
    expected = 1 if mode == "bot" else 2
    window = " (the stated webhook window)" if mode == "webhook" else ""
    marked = [says_may_have_arrived(message) for message in messages]
    figure(
        f"post in flight killed ({mode}): alerts expected 1, posted {len(messages)}{window}; "
        f"'may have arrived' notes {marked}; exits [killed, {rerun.code}]"
    )
    assert held, "the post never reached Slack"
    assert killed.killed, killed.output
    assert rerun.code == 0, rerun.output
    assert len(messages) == expected, messages
    if mode == "webhook":
        assert marked == [False, True], "the second copy does not say the first may have arrived"
    else:
        assert repeated_dedup_keys(slack_fake) == {}
    assert [row["status"] for row in ledger_rows(tmp_path / "mixpanel.duckdb")] == ["sent"]


# after a message shows up in Slack, how long to wait before the kill: posts take 0.6 s of each
# paced second, so some kills land mid-post and some between posts
KILL_OFFSETS = (0.6, 1.5, 0.2, 2.7, 1.1, 0.7, 1.9, 0.4)


@pytest.mark.reliability
def test_kill_9_while_alerts_are_posted(
    sim: ExportSimulator,
    make_env: Callable[..., dict[str, str]],
    slack_fake: SlackFake,
    tmp_path: Path,
    figure: Callable[[str], None],
) -> None:
    """Ten alerts go out one per second, each post taking 0.6 s (a stall at Slack); detect is
    killed a little after each time a message appears, and run again, until one finishes."""
    names = [f"paced_alert_{index:02d}" for index in range(10)]
    write_events_config(tmp_path, {"events": [rule(name) for name in names]})
    sim.add_events([event for name in names for event in spike(name, 2)])
    # one message per alert, not a digest: the kills land between and during posts
    env = make_env(sim, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack_fake.api_url, ALERT_DIGEST_THRESHOLD="100")
    runner = Runner(tmp_path)
    assert runner.run(["collect"], env).code == 0

    slack_fake.inject(*["stall:0.6"] * 60)
    exits: list[int | str] = []
    during: list[str] = []
    for offset in KILL_OFFSETS:
        before = len(slack_fake.messages)
        spawned = runner.spawn(["detect"], env)
        while spawned.running() and len(slack_fake.messages) == before:
            time.sleep(0.02)
        time.sleep(offset)
        if not spawned.running():
            exits.append(spawned.wait().code)
            break
        in_flight = sum(1 for _, outcome in list(slack_fake.requests) if outcome.startswith("stall"))
        killed = spawned.kill()
        exits.append("killed")
        time.sleep(1.0)  # a post in flight lands meanwhile
        posted = sum(1 for _, outcome in list(slack_fake.requests) if outcome.startswith("stall"))
        during.append("mid-post" if posted > in_flight else "between posts")
        assert killed.killed
    slack_fake.faults.clear()
    final = runner.run(["detect"], env)
    exits.append(final.code)

    counts = message_counts(slack_fake, names)
    repeated = repeated_dedup_keys(slack_fake)
    statuses = ledger_statuses(tmp_path / "mixpanel.duckdb")
    figure(
        f"kill -9 while 10 alerts are posted (bot), {len(during)} kills "
        f"({during.count('mid-post')} mid-post, {during.count('between posts')} between posts): "
        f"alerts expected {len(names)}, posted {sum(counts.values())}, {len(repeated)} repeated; "
        f"ledger {dict(statuses)}; exits {exits}"
    )
    assert {name: count for name, count in counts.items() if count != 1} == {}
    assert repeated == {}
    assert set(statuses) == {"sent"}, statuses
    assert final.code == 0, final.output
