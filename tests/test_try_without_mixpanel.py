"""Trying your own rules without Mixpanel: `demo --config FILE` and the simulator as a tool."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import output_of, query, rule, summary_numbers, write_events_config


def test_the_demo_runs_the_users_rules_and_finds_the_spike(
    make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    config = write_events_config(
        tmp_path,
        {
            "events": [
                rule("signup_started", alert_threshold=None, min_events=20, time_window_minutes=5),
                rule("payment_failed", alert_threshold=30, time_window_minutes=5, alert_channel="#payments"),
                rule("debug_ping", enabled=False),
            ]
        },
        name="mine.json",
    )
    env = make_env(None, MIXPANEL_PROJECT_ID=None, MIXPANEL_SERVICE_ACCOUNT_USERNAME=None,
                   MIXPANEL_SERVICE_ACCOUNT_SECRET=None)  # fmt: skip
    result = run_cli(["demo", "--config", str(config)], env)
    output = output_of(result)
    assert result.returncode == 0, output
    assert f"traffic for the rules of {config}" in output and "payment_failed spikes three minutes ago" in output
    assert re.search(r"payment_failed.*→ #payments", output), "its alert, in the terminal, to its channel"
    incidents = query(tmp_path / "data" / "demo.duckdb", "select event_name, kind from mixpanel_data.incidents")
    assert incidents == [("payment_failed", "spike")], "signup_started stayed above its minimum: no drop"
    assert summary_numbers(output)["loaded"] > 0

    missing = run_cli(["demo", "--config", str(tmp_path / "nope.json")], env)
    assert missing.returncode == 2 and "nope.json" in output_of(missing)


def test_the_simulator_prints_what_points_the_cli_at_it(
    make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    config = write_events_config(tmp_path, {"events": [rule("checkout_completed"), rule("off", enabled=False)]})
    server = subprocess.Popen(
        [sys.executable, "-m", "mixpanel_alerts.simulator", "--config", str(config), "--events", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(7)]
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", "".join(lines), re.MULTILINE))
        assert set(exports) == {
            "MIXPANEL_EXPORT_URL", "MIXPANEL_PROJECT_ID", "MIXPANEL_SERVICE_ACCOUNT_USERNAME",
            "MIXPANEL_SERVICE_ACCOUNT_SECRET", "MIXPANEL_START_DATE",
        }  # fmt: skip
        assert "mixpanel-alerts backfill --start-date" in lines[-1]
        env = make_env(None, **exports)
        result = run_cli(["collect"], env)
        assert result.returncode == 0, output_of(result)
        assert summary_numbers(output_of(result))["loaded"] == 300, "every event of the enabled rule, nothing else"
    finally:
        server.terminate()
        server.wait(timeout=10)
