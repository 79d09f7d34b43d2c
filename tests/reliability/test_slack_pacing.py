"""Slack rate-limits the alert step: every Retry-After is waited out before that endpoint is asked
again, a run stops posting after three refusals in a row, a Retry-After past the step's time is
not waited for at all, and the next run sends each alert once (bot) or says it may repeat (webhook:
nothing of a 429 was posted, so nothing may repeat)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mixpanel_alerts.simulator import ExportSimulator
from tests.conftest import rule, write_events_config
from tests.reliability.support import Runner, firing_messages, fresh_spike, ledger_rows, repeated_dedup_keys, slack_env
from tests.slack_fake import WEBHOOK_PATH, SlackFake

RETRY_AFTER = 3


def retry_after_waits(fake: SlackFake, target: str, runs_started: list[float]) -> list[float]:
    """After each 429 to ``target``, how long the run waited before asking it again (a 429 after
    which the run asked no more is not a wait)."""
    timeline = [(at, outcome) for at, path, outcome in fake.timeline if path.endswith(target)]

    def run_of(moment: float) -> int:
        return sum(started <= moment for started in runs_started)

    return [
        later - at
        for (at, outcome), (later, _) in itertools.pairwise(timeline)
        if outcome == "429" and run_of(at) == run_of(later)
    ]


@pytest.mark.reliability
@pytest.mark.parametrize("mode", ["bot", "webhook"])
def test_a_429_storm_is_waited_out_then_left_for_the_next_run(
    mode: str,
    sim: ExportSimulator,
    make_env: Callable[..., dict[str, str]],
    slack_fake: SlackFake,
    tmp_path: Path,
    figure: Callable[[str], None],
) -> None:
    """Five 429s with Retry-After: 3 in a row on the posting endpoint; four alerts in one channel."""
    names = [f"storm_alert_{index}" for index in range(4)]
    write_events_config(tmp_path, {"events": [rule(name) for name in names]})
    sim.add_events(fresh_spike(names))
    env = make_env(sim, ALERT_DIGEST_THRESHOLD="10", **slack_env(mode, slack_fake))
    runner = Runner(tmp_path)
    target = "chat.postMessage" if mode == "bot" else WEBHOOK_PATH
    slack_fake.inject(*[f"429:{RETRY_AFTER}"] * 5, method="chat.postMessage" if mode == "bot" else "webhook")

    started = [time.monotonic()]
    first = runner.run(["run"], env)
    first_seconds = time.monotonic() - started[0]
    pending_after_first = sum(row["status"] == "pending" for row in ledger_rows(tmp_path / "mixpanel.duckdb"))
    started.append(time.monotonic())
    second = runner.run(["run"], env)
    waits = retry_after_waits(slack_fake, target, started)
    posted = {name: len(firing_messages(slack_fake, name)) for name in names}
    figure(
        f"slack 429 x5 with Retry-After {RETRY_AFTER} s ({mode}): alerts expected {len(names)}, posted "
        f"{sum(posted.values())} ({sum(count != 1 for count in posted.values())} not exactly once); Retry-After "
        f"honoured: waited {', '.join(f'{wait:.1f}' for wait in waits)} s against asked {RETRY_AFTER} s; first run "
        f"{first_seconds:.1f} s, {pending_after_first} left pending; exits [{first.code}, {second.code}]"
    )
    assert first.code == 1 and second.code == 0, second.output
    assert pending_after_first == len(names), "three refusals in a row: the run stopped posting"
    # two waits a run: the third refusal of the first run ends its posting, the second run's third try goes through
    assert len(waits) == 4 and all(RETRY_AFTER <= wait < RETRY_AFTER + 2 for wait in waits), waits
    assert posted == dict.fromkeys(names, 1)
    if mode == "bot":
        assert repeated_dedup_keys(slack_fake) == {}


@pytest.mark.reliability
@pytest.mark.parametrize("mode", ["bot", "webhook"])
def test_a_retry_after_past_the_steps_time_is_not_waited_for(
    mode: str,
    sim: ExportSimulator,
    make_env: Callable[..., dict[str, str]],
    slack_fake: SlackFake,
    tmp_path: Path,
    figure: Callable[[str], None],
) -> None:
    """Slack asks for an hour (Retry-After: 3600); the alert step has 20 s (ALERT_STEP_TIMEOUT_SECONDS)."""
    names = ["hour_alert_a", "hour_alert_b"]
    write_events_config(tmp_path, {"events": [rule(name) for name in names]})
    sim.add_events(fresh_spike(names))
    env = make_env(sim, ALERT_STEP_TIMEOUT_SECONDS="20", **slack_env(mode, slack_fake))
    runner = Runner(tmp_path)
    slack_fake.inject("429:3600", method="chat.postMessage" if mode == "bot" else "webhook")

    first = runner.run(["run"], env)
    ended = time.monotonic()
    refused_at = next(at for at, _, outcome in slack_fake.timeline if outcome == "429")
    after_refusal = ended - refused_at
    second = runner.run(["run"], env)
    posted = {name: len(firing_messages(slack_fake, name)) for name in names}
    figure(
        f"slack 429 with Retry-After 3600 s, step time 20 s ({mode}): the run ended {after_refusal:.1f} s after "
        f"the refusal; alerts expected {len(names)}, posted {sum(posted.values())} by the next run; exits "
        f"[{first.code}, {second.code}]"
    )
    assert first.code == 1 and second.code == 0, second.output
    assert after_refusal < 10, first.output
    assert posted == dict.fromkeys(names, 1)
