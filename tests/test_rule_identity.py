"""Several rules on one event (issue 22, rule identity): each rule has its id (`id`, default its
event's name), counts, judges and alerts on its own, and is named by `rule_id` in the incidents,
the ledger, `status`, the backtest and silences. Through the CLI, the simulator's export and a
real DuckDB file."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mixpanel_alerts.simulator import ExportSimulator
from tests.alert_runs import CHECKOUT, spike, status_of
from tests.conftest import DB_FILE, output_of, query, rule, write_events_config

BURST = "checkout_burst"


def two_rules(burst_threshold: int = 50) -> dict[str, Any]:
    """The event's default rule (threshold 5 a minute) and a second one, with its own id."""
    return {"events": [
        rule(CHECKOUT, alert_threshold=5, time_window_minutes=1),
        {**rule(CHECKOUT, alert_threshold=burst_threshold, time_window_minutes=1), "id": BURST},
    ]}  # fmt: skip


def test_two_rules_of_one_event_judge_alert_and_are_silenced_on_their_own(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    sim.add_events(spike(CHECKOUT, 3, 20))
    write_events_config(tmp_path, two_rules())
    env = make_env(sim)
    first = run_cli(["run"], env)
    assert first.returncode == 0, output_of(first)
    database = tmp_path / DB_FILE
    # 20 in a minute: over the default rule's 5, under the burst rule's 50
    assert query(database, "select rule_id, event_name, peak_count from mixpanel_data.incidents") == [
        (CHECKOUT, CHECKOUT, 20)
    ]
    assert query(database, "select rule_id, kind, status from mixpanel_data.alert_notifications") == [
        (CHECKOUT, "firing", "sent")
    ]
    counted = query(
        database,
        "select rule_id, sum(event_count) from mixpanel_data.int_event_counts_per_minute group by 1 order by 1",
    )
    assert counted == [(BURST, 20), (CHECKOUT, 20)], "each rule counts the event"
    asked = [json.loads(request.params["event"]) for request in sim.export_requests if "event" in request.params]
    assert asked and all(events == [CHECKOUT] for events in asked), f"the event is asked for once: {asked}"

    rules = {item["rule_id"]: item for item in status_of(run_cli, env)["rules"]}
    assert {rule_id: (item["event_name"], item["state"]) for rule_id, item in rules.items()} == {
        CHECKOUT: (CHECKOUT, "firing"),
        BURST: (CHECKOUT, "ok"),
    }

    # the burst rule's own incident: a lower threshold now, the default rule's alert not taken over
    write_events_config(tmp_path, two_rules(burst_threshold=10))
    second = run_cli(["run"], env)
    assert second.returncode == 0, output_of(second)
    assert "1 sent to the terminal" in second.stderr, output_of(second)
    assert query(database, "select rule_id, status from mixpanel_data.alert_notifications order by 1") == [
        (BURST, "sent"),
        (CHECKOUT, "sent"),
    ]

    # silences: by rule id (that rule), by event (every rule of it); an unknown name lists both kinds
    made = run_cli(["silence", BURST, "--for", "1h", "--reason", "noisy"], env)
    assert made.returncode == 0 and f"silenced rule {BURST} of {CHECKOUT}" in output_of(made), output_of(made)
    rules = {item["rule_id"]: item["state"] for item in status_of(run_cli, env)["rules"]}
    assert rules == {CHECKOUT: "firing", BURST: "silenced"}
    listed = run_cli(["silences"], env)
    assert BURST in listed.stdout, listed.stdout
    refused = run_cli(["silence", "nope", "--for", "1h", "--reason", "x"], env)
    assert refused.returncode == 2, output_of(refused)
    assert f"its events: {CHECKOUT}; its rule ids: {BURST}" in output_of(refused), output_of(refused)
    ended = run_cli(["unsilence", BURST], env)
    assert ended.returncode == 0 and "1 silence ended" in output_of(ended), output_of(ended)
    event_wide = run_cli(["silence", CHECKOUT, "--for", "1h", "--reason", "launch"], env)
    assert event_wide.returncode == 0, output_of(event_wide)
    rules = {item["rule_id"]: item["state"] for item in status_of(run_cli, env)["rules"]}
    assert rules == {CHECKOUT: "silenced", BURST: "silenced"}


def test_the_backtest_names_each_rule(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    sim.add_events(spike(CHECKOUT, 30, 20))
    write_events_config(tmp_path, two_rules(burst_threshold=10))
    env = make_env(sim)
    collected = run_cli(["collect"], env)
    assert collected.returncode == 0, output_of(collected)
    today = datetime.now(UTC).date()
    period = ["--start-date", (today - timedelta(days=1)).isoformat(), "--end-date", today.isoformat()]
    result = run_cli(["backtest", *period, "--json", "out.json"], env)
    assert result.returncode == 0, output_of(result)
    incidents = json.loads((tmp_path / "out.json").read_text())["incidents"]
    assert sorted((item["rule_id"], item["event_name"], item["segment"]) for item in incidents) == [
        (BURST, CHECKOUT, ""),
        (CHECKOUT, CHECKOUT, ""),
    ]
    assert f"'{CHECKOUT}' rule '{BURST}'" in result.stdout, result.stdout
