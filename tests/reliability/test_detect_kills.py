"""kill -9 during detect (the dbt build, then the alert step) with incidents present: after the
recovery runs every incident is alerted exactly once and the ledger says sent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from mixpanel_alerts.simulator import ExportSimulator
from tests.conftest import recent_traffic, rule, write_events_config
from tests.reliability.support import (
    RESOLVED_PREFIX,
    Runner,
    detect_stage,
    ledger_statuses,
    message_counts,
    repeated_dedup_keys,
    spike,
)
from tests.slack_fake import BOT_TOKEN, SlackFake

POINTS = 5
SPIKES_PER_ROUND = 3


@pytest.mark.reliability
def test_kill_9_during_detect(
    sim: ExportSimulator,
    make_env: Callable[..., dict[str, str]],
    slack_fake: SlackFake,
    tmp_path: Path,
    scratch_tmp: Path,
    figure: Callable[[str], None],
) -> None:
    """Round 0 times a normal detect. Each later round collects three new spikes, kills detect at
    an evenly spread fraction of that time (10 %, 30 %, ... 90 %), then runs detect again."""
    rounds = [[f"detect_kill_{index:02d}_{n}" for n in range(SPIKES_PER_ROUND)] for index in range(POINTS + 1)]
    names = [name for names in rounds for name in names]
    write_events_config(
        tmp_path,
        {
            "events": [
                rule("page_view", alert_threshold=10_000),
                *(rule(name, alert_channel="#alerts-errors") for name in names),
            ]
        },
    )
    sim.add_events(recent_traffic(2_000, names=["page_view"], seed=31))
    env = make_env(sim, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack_fake.api_url, TMPDIR=str(scratch_tmp))
    runner = Runner(tmp_path)

    sim.add_events([event for name in rounds[0] for event in spike(name, 2)])
    assert runner.run(["collect"], env).code == 0
    timed = runner.run(["detect"], env)
    assert timed.code == 0, timed.output
    duration = timed.seconds

    stages: list[str] = []
    exits: list[int] = []
    for point in range(POINTS):
        sim.add_events([event for name in rounds[point + 1] for event in spike(name, 2)])
        collected = runner.run(["collect"], env)
        assert collected.code == 0, collected.output
        killed = runner.kill_after(["detect"], env, duration * (point + 0.5) / POINTS)
        stages.append(detect_stage(killed.output) if killed.killed else "finished")
        exits.append(runner.run(["detect"], env).code)
    final = runner.run(["detect"], env)
    exits.append(final.code)

    firing = message_counts(slack_fake, names)
    resolved = message_counts(slack_fake, names, RESOLVED_PREFIX)
    repeated = repeated_dedup_keys(slack_fake)
    statuses = ledger_statuses(tmp_path / "mixpanel.duckdb")
    posted = sum(firing.values())
    landed = ", ".join(f"{stage} {count}" for stage, count in Counter(stages).items())
    figure(
        f"kill -9 in detect, {POINTS} points over {duration:.1f} s (killed in: {landed}) (bot): "
        f"alerts expected {len(names)}, posted {posted} ({sum(resolved.values())} resolved notices, "
        f"{len(repeated)} repeated); ledger {dict(statuses)}; recovery exits {exits}"
    )
    assert {name: count for name, count in firing.items() if count != 1} == {}, "an incident not alerted once"
    assert all(count <= 1 for count in resolved.values()), resolved
    assert repeated == {}, f"messages posted twice: {repeated}"
    assert set(statuses) == {"sent"}, statuses
    assert exits == [0] * (POINTS + 1), final.output
