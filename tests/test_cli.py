"""The console script's help: every command is listed and described."""

from __future__ import annotations

import pytest

from tests.conftest import output_of


def test_top_level_help_lists_the_commands(make_env, run_cli):
    result = run_cli(["--help"], make_env())

    assert result.returncode == 0, output_of(result)
    assert "Usage: mixpanel-alerts" in result.stdout
    for command in ("collect", "backfill", "check"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("command", "described"),
    [
        pytest.param("collect", ["Extract/load", "MIXPANEL_LATE_ARRIVAL_DAYS"], id="collect"),
        pytest.param("backfill", ["--start-date", "--end-date", "never alerts"], id="backfill"),
        pytest.param("check", ["Validate the configuration"], id="check"),
    ],
)
def test_command_help_describes_the_command(make_env, run_cli, command, described):
    result = run_cli([command, "--help"], make_env())

    assert result.returncode == 0, output_of(result)
    text_of_help = " ".join(result.stdout.split())  # help is wrapped to the terminal width
    assert f"Usage: mixpanel-alerts {command}" in text_of_help
    for text in described:
        assert text in text_of_help


def test_unknown_command_is_a_usage_error(make_env, run_cli):
    result = run_cli(["colect"], make_env())

    assert result.returncode == 2
    assert "No such command" in output_of(result)
