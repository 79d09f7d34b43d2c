"""A plain `dbt build` in dbt_project/ (an analyst's, not the CLI's) uses the rules the CLI last wrote
to the same warehouse, whatever another command wrote elsewhere; against a warehouse the CLI never
ran on, it stops and says why."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mixpanel_alerts.detection import shipped_project_dir
from mixpanel_alerts.simulator import ExportSimulator
from tests.conftest import output_of, query, recent_traffic, rule, write_events_config

DBT = str(Path(sys.executable).with_name("dbt"))


def plain_dbt_build(database: Path, scratch: Path) -> subprocess.CompletedProcess[str]:
    """``dbt build`` in the shipped project folder with its own profile, as an analyst runs it (the
    profile's variables exported; dbt's own files kept out of the checkout)."""
    project = shipped_project_dir()
    env = {
        "PATH": os.environ["PATH"], "HOME": str(scratch), "DUCKDB_PATH": str(database),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }  # fmt: skip
    arguments = ["build", "--profiles-dir", ".", "--target-path", str(scratch / "target"), "--log-path",
                 str(scratch / "logs")]  # fmt: skip
    return subprocess.run(
        [DBT, *arguments], cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_a_plain_dbt_build_uses_the_rules_the_cli_wrote_to_that_warehouse(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
) -> None:  # fmt: skip
    sim.add_events(recent_traffic(200))
    ours = tmp_path / "ours"
    ours.mkdir()
    write_events_config(ours, {"events": [rule("checkout_completed"), rule("page_view"), rule("signup"),
                                          rule("debug_ping", enabled=False)]})  # fmt: skip
    assert run_cli(["run"], make_env(sim), cwd=ours).returncode == 0
    demo = tmp_path / "demo"
    demo.mkdir()
    write_events_config(demo, {"events": [rule("page_view", alert_threshold=99)]})
    assert run_cli(["run"], make_env(sim), cwd=demo).returncode == 0, "another warehouse, other rules, since"

    built = plain_dbt_build(ours / "mixpanel.duckdb", tmp_path / "dbt")
    assert built.returncode == 0, built.stdout[-3000:]
    rules = query(ours / "mixpanel.duckdb", "select event_name, alert_threshold from mixpanel_data.alert_rules")
    assert sorted(rules) == [("checkout_completed", 5), ("debug_ping", 5), ("page_view", 5), ("signup", 5)]


@pytest.mark.slow
def test_a_plain_dbt_build_on_a_warehouse_the_cli_never_ran_on_says_why_it_stops(tmp_path: Path) -> None:
    import duckdb

    database = tmp_path / "analyst.duckdb"
    duckdb.connect(str(database)).close()
    built = plain_dbt_build(database, tmp_path / "dbt")
    assert built.returncode != 0
    message = output_of(built)
    assert "No rules in mixpanel_data.alert_rules_config" in message, message[-3000:]
    assert "mixpanel-alerts dbt -- build" in message
