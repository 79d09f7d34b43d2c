"""What a run prints: every log line timestamped, LOG_FORMAT checked, and the terminal's note where
a Slack alert's chart would be."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mixpanel_alerts.simulator import ExportSimulator
from tests.alert_runs import CHECKOUT, ERRORS, spike
from tests.conftest import output_of, rule, write_events_config


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
