"""Bad configuration exits 2 with a message naming the event/setting and the key; nothing is requested."""

from __future__ import annotations

import json

import pytest

from tests.conftest import (
    DEFAULT_EVENTS_CONFIG,
    EVENTS_TABLE,
    SA_SECRET,
    SA_USERNAME,
    output_of,
    query,
    recent_traffic,
    rule,
    write_events_config,
)


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


INVALID_EVENTS_CONFIGS = [
    pytest.param({"events": [rule("page_view", threshold=5)]}, ["page_view", "threshold", "unknown"], id="unknown-key"),
    pytest.param(
        {"events": [rule("page_view", alert_threshold="5")]}, ["page_view", "alert_threshold"], id="threshold-string"
    ),
    pytest.param({"events": [rule("page_view", alert_threshold=5.5)]}, ["page_view", "alert_threshold"], id="float"),
    pytest.param({"events": [rule("page_view", alert_threshold=True)]}, ["page_view", "alert_threshold"], id="bool"),
    pytest.param({"events": [rule("page_view", enabled="yes")]}, ["page_view", "enabled"], id="enabled-string"),
    pytest.param(
        {"events": [rule("page_view"), rule("checkout"), rule("page_view")]},
        ["page_view", "duplicate", "events[2]"],
        id="duplicate-name",
    ),
    # rule ids: two rules of one event need ids of their own; an id is a non-empty string
    pytest.param(
        {"events": [rule("page_view"), {**rule("page_view", alert_threshold=50)}]},
        ["page_view", "'id'", "duplicate rule id 'page_view'", "events[1]", "events[0] has it"],
        id="two-rules-of-one-event-without-ids",
    ),
    pytest.param(
        {"events": [{**rule("page_view"), "id": "views"}, {**rule("checkout"), "id": "views"}]},
        ["checkout", "'id'", "duplicate rule id 'views'"],
        id="duplicate-id-across-events",
    ),
    pytest.param({"events": [{**rule("page_view"), "id": ""}]}, ["page_view", "'id'"], id="empty-id"),
    pytest.param({"events": [{**rule("page_view"), "id": " views"}]}, ["page_view", "'id'", "spaces"], id="id-spaces"),
    pytest.param({"events": [{**rule("page_view"), "id": 7}]}, ["page_view", "'id'", "string"], id="id-number"),
    pytest.param({"events": [{**rule("page_view"), "id": "a\u0000b"}]}, ["page_view", "'id'", "NUL"], id="id-nul"),
    pytest.param(
        {"events": [{**rule("page_view"), "id": "i" * 1001}]}, ["page_view", "'id'", "1000 characters"], id="long-id"
    ),
    pytest.param(
        {"events": [rule("page_view", alert_threshold=0)]}, ["page_view", "alert_threshold"], id="threshold-0"
    ),
    pytest.param(
        {"events": [rule("page_view", alert_threshold=-3)]}, ["page_view", "alert_threshold"], id="threshold-negative"
    ),
    pytest.param(
        {"events": [rule("page_view", time_window_minutes=0)]}, ["page_view", "time_window_minutes"], id="window-0"
    ),
    pytest.param(
        {"events": [rule("page_view", time_window_minutes=-1)]},
        ["page_view", "time_window_minutes"],
        id="window-negative",
    ),
    pytest.param(
        {"events": [{key: value for key, value in rule("page_view").items() if key != "alert_channel"}]},
        ["page_view", "alert_channel", "missing"],
        id="missing-key",
    ),
    pytest.param(
        {"events": [rule("page_view"), {key: value for key, value in rule("x").items() if key != "name"}]},
        ["events[1]", "name"],
        id="missing-name",
    ),
    pytest.param({"events": [rule("page_view", alert_channel=7)]}, ["page_view", "alert_channel"], id="channel-number"),
    pytest.param(
        {"events": [rule("page_view", cooldown_minutes=0)]}, ["page_view", "cooldown_minutes"], id="cooldown-0"
    ),
    # values JSON allows but the rules table cannot hold: they once broke the rules seed, and all detection
    pytest.param(
        {"events": [rule("page_view", alert_threshold=2**63)]}, ["page_view", "alert_threshold", "64-bit"], id="2^63"
    ),
    pytest.param({"events": [rule("page_view", cooldown_minutes=2**64)]}, ["page_view", "cooldown_minutes"], id="2^64"),
    pytest.param(
        {"events": [rule("page_view", description="d" * (1 << 20))]},
        ["page_view", "description", "1000 characters"],
        id="1MB-description",
    ),
    pytest.param({"events": [rule("x" * 1001)]}, ["events[0]", "name", "1000 characters"], id="long-name"),
    pytest.param({"events": [rule("nul\u0000name")]}, ["events[0]", "name", "NUL"], id="nul-in-name"),
    pytest.param(
        '{"events": [{"name": "lone \\ud800", "enabled": true, "alert_threshold": 5, '
        '"alert_channel": "#a", "time_window_minutes": 1}]}',
        ["events[0]", "name", "surrogate"],
        id="lone-surrogate",
    ),
    pytest.param(
        {"events": [rule("page_view", alert_channel="#alerts\n")]}, ["page_view", "alert_channel"], id="channel-newline"
    ),
]


@pytest.mark.parametrize(("document", "named"), INVALID_EVENTS_CONFIGS)
def test_invalid_events_config_file_exits_2_naming_event_and_key(
    sim, make_env, run_cli, tmp_path, db_path, document, named
):
    write_events_config(tmp_path, document)

    result = run_cli(["collect"], make_env(sim))

    assert result.returncode == 2, output_of(result)
    message = error_line(output_of(result))
    for text in named:
        assert text in message
    assert "events_config.json" in message
    assert sim.requests == []
    assert not db_path.exists()


def test_invalid_json_names_the_line(sim, make_env, run_cli, tmp_path):
    text = json.dumps(DEFAULT_EVENTS_CONFIG, indent=2).splitlines()
    text[4] = text[4] + ","  # a trailing comma on line 5
    write_events_config(tmp_path, "\n".join(text))

    result = run_cli(["collect"], make_env(sim))

    assert result.returncode == 2, output_of(result)
    message = error_line(output_of(result))
    assert "not valid JSON" in message
    assert "line 5" in message or "line 6" in message
    assert sim.requests == []


def test_events_config_variable_wins_over_the_file(sim, make_env, run_cli, tmp_path):
    write_events_config(tmp_path, {"events": [rule("page_view", alert_threshold="bad")]})
    inline = json.dumps({"events": [rule("signup_completed")]})

    result = run_cli(["collect"], make_env(sim, EVENTS_CONFIG=inline))

    assert result.returncode == 0, output_of(result)
    assert json.loads(sim.requests[0].params["event"]) == ["signup_completed"]


def test_invalid_events_config_variable_is_named(sim, make_env, run_cli):
    inline = json.dumps({"events": [rule("page_view", enabled="yes")]})

    result = run_cli(["collect"], make_env(sim, EVENTS_CONFIG=inline))

    assert result.returncode == 2, output_of(result)
    message = error_line(output_of(result))
    assert "EVENTS_CONFIG" in message
    assert "enabled" in message
    assert sim.requests == []


def test_missing_events_config_file_is_named(sim, make_env, run_cli):
    result = run_cli(["collect"], make_env(sim, EVENTS_CONFIG_PATH="nowhere/events.json"))

    assert result.returncode == 2, output_of(result)
    assert "EVENTS_CONFIG_PATH" in error_line(output_of(result))
    assert sim.requests == []


INVALID_SETTINGS = [
    pytest.param({"MIXPANEL_REGION": "mars"}, "MIXPANEL_REGION", id="region"),
    pytest.param({"MIXPANEL_LATE_ARRIVAL_DAYS": "0"}, "MIXPANEL_LATE_ARRIVAL_DAYS", id="late-days-zero"),
    pytest.param({"MIXPANEL_LATE_ARRIVAL_DAYS": "five"}, "MIXPANEL_LATE_ARRIVAL_DAYS", id="late-days-text"),
    pytest.param({"MIXPANEL_PROJECT_TIMEZONE": "Mars/Olympus"}, "MIXPANEL_PROJECT_TIMEZONE", id="timezone"),
    pytest.param({"DETECTION_TIMEZONE": "Mars/Olympus"}, "DETECTION_TIMEZONE", id="detection-timezone"),
    pytest.param({"DETECTION_TIMEZONE": "UTC'; drop table x; --"}, "DETECTION_TIMEZONE", id="detection-timezone-sql"),
    pytest.param({"MIXPANEL_START_DATE": "yesterday"}, "MIXPANEL_START_DATE", id="start-date"),
    pytest.param({"MIXPANEL_EXPORT_URL": "data.mixpanel.com"}, "MIXPANEL_EXPORT_URL", id="export-url"),
    pytest.param({"WAREHOUSE": "snowflake"}, "WAREHOUSE", id="warehouse"),
    pytest.param(
        {"MIXPANEL_SERVICE_ACCOUNT_USERNAME": None, "MIXPANEL_SERVICE_ACCOUNT_SECRET": None},
        "MIXPANEL_SERVICE_ACCOUNT_USERNAME",
        id="no-credentials",
    ),
    pytest.param(
        {"MIXPANEL_SERVICE_ACCOUNT_SECRET": None}, "MIXPANEL_SERVICE_ACCOUNT_SECRET", id="service-account-no-secret"
    ),
    pytest.param({"MIXPANEL_PROJECT_ID": None}, "MIXPANEL_PROJECT_ID", id="no-project-id"),
    pytest.param(
        {
            "MIXPANEL_SERVICE_ACCOUNT_USERNAME": None,
            "MIXPANEL_SERVICE_ACCOUNT_SECRET": None,
            "MIXPANEL_API_SECRET_NAME": "mixpanel-api-secret",
        },
        "MIXPANEL_API_SECRET_NAME",
        id="secret-name-without-gcp-project",
    ),
]


@pytest.mark.parametrize(("overrides", "variable"), INVALID_SETTINGS)
def test_invalid_setting_exits_2_naming_it(sim, make_env, run_cli, overrides, variable):
    result = run_cli(["collect"], make_env(sim, **overrides))

    output = output_of(result)
    assert result.returncode == 2, output
    assert variable in error_line(output)
    assert "Traceback" not in output
    assert sim.requests == []


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        pytest.param({"MIXPANEL_REGION": "mars"}, "MIXPANEL_REGION", id="region"),
        pytest.param(
            {"MIXPANEL_SERVICE_ACCOUNT_USERNAME": None, "MIXPANEL_SERVICE_ACCOUNT_SECRET": None},
            "MIXPANEL_SERVICE_ACCOUNT_USERNAME",
            id="no-credentials",
        ),
        pytest.param({"MIXPANEL_PROJECT_ID": None}, "MIXPANEL_PROJECT_ID", id="no-project-id"),
    ],
)
def test_check_reports_invalid_setting_with_exit_2(sim, make_env, run_cli, overrides, variable):
    result = run_cli(["check"], make_env(sim, **overrides))

    output = output_of(result)
    assert result.returncode == 2, output
    assert variable in output
    assert "Traceback" not in output
    assert sim.requests == []


def test_invalid_backfill_dates_are_usage_errors(sim, make_env, run_cli):
    env = make_env(sim)
    reversed_dates = run_cli(["backfill", "--start-date", "2026-01-10", "--end-date", "2026-01-01"], env)
    not_a_date = run_cli(["backfill", "--start-date", "2026-13-01", "--end-date", "2026-01-01"], env)

    assert reversed_dates.returncode == 2
    assert "--start-date" in output_of(reversed_dates)
    assert not_a_date.returncode == 2
    assert "YYYY-MM-DD" in output_of(not_a_date)
    assert sim.requests == []


def test_dlt_variables_in_dotenv_reach_dlt(sim, make_env, run_cli, tmp_path):
    """.env goes into the process environment at start, so dlt's own variables work there too (it
    was read for the product's settings only: a SOURCES__… knob in .env was silently ignored)."""
    sim.add_events(recent_traffic(10))
    (tmp_path / ".env").write_text("SOURCES__MIXPANEL__REQUEST_MAX_ATTEMPTS=1\n", encoding="utf-8")
    sim.inject("503")
    result = run_cli(["collect"], make_env(sim))
    assert result.returncode == 1, output_of(result)
    assert [request.status for request in sim.requests] == [503], "one attempt only, as .env says"


def test_dotenv_is_read_and_the_process_environment_wins(sim, make_env, run_cli, tmp_path, db_path):
    sim.add_events(recent_traffic(10))
    (tmp_path / ".env").write_text(
        f"MIXPANEL_SERVICE_ACCOUNT_USERNAME={SA_USERNAME}\n"
        f"MIXPANEL_SERVICE_ACCOUNT_SECRET={SA_SECRET}\n"
        "MIXPANEL_PROJECT_ID=99999\n"
        "MIXPANEL_REGION=mars\n",
        encoding="utf-8",
    )
    env = make_env(
        sim, MIXPANEL_SERVICE_ACCOUNT_USERNAME=None, MIXPANEL_SERVICE_ACCOUNT_SECRET=None, MIXPANEL_REGION="eu"
    )

    result = run_cli(["collect"], env)

    assert result.returncode == 0, output_of(result)
    assert SA_SECRET not in output_of(result)
    assert [(r.auth, r.params["project_id"]) for r in sim.requests] == [("service_account", "12345")]
    assert query(db_path, f"select count(*) from {EVENTS_TABLE}") == [(10,)]


@pytest.mark.parametrize(
    ("duckdb_path", "expected"),
    [
        pytest.param("out/warehouse.duckdb", "out/warehouse.duckdb", id="relative-in-new-folder"),
        pytest.param(None, "data/mixpanel.duckdb", id="default"),
    ],
)
def test_paths_are_relative_to_the_working_directory(sim, make_env, run_cli, tmp_path, duckdb_path, expected):
    workdir = tmp_path / "job"
    (workdir / "conf").mkdir(parents=True)
    write_events_config(workdir / "conf", {"events": [rule("page_view")]}, name="events.json")
    sim.add_events(recent_traffic(10, names=["page_view"]))
    env = make_env(sim, DUCKDB_PATH=duckdb_path, EVENTS_CONFIG_PATH="conf/events.json")

    result = run_cli(["collect"], env, cwd=workdir)

    assert result.returncode == 0, output_of(result)
    assert query(workdir / expected, f"select count(*) from {EVENTS_TABLE}") == [(10,)]
    assert not list(workdir.glob("**/.dlt"))


def test_a_rules_id_defaults_to_its_name_and_an_event_of_several_rules_is_collected_once():
    from mixpanel_alerts.core.events_config import parse_events_config

    document = {"events": [rule("page_view"), {**rule("page_view", alert_threshold=50), "id": "views_burst"},
                           rule("checkout"), {**rule("signup", enabled=False), "id": "signups"}]}  # fmt: skip
    parsed = parse_events_config(json.dumps(document), "test")
    assert [item.rule_id for item in parsed.events] == ["page_view", "views_burst", "checkout", "signups"]
    assert parsed.enabled_names == ["page_view", "checkout"]
    assert [item.rule_id for item in parsed.rules_of_event("page_view")] == ["page_view", "views_burst"]


def test_the_shipped_json_schema_matches_the_model():
    """config/events_config.schema.json is generated from the model (`just schema`); editors use it."""
    from pathlib import Path

    from mixpanel_alerts.core.events_config import events_config_schema, parse_events_config

    root = Path(__file__).resolve().parents[1]
    assert json.loads((root / "config" / "events_config.schema.json").read_text()) == events_config_schema()
    example = root / "config" / "events_config.json"
    assert json.loads(example.read_text())["$schema"] == "./events_config.schema.json"
    assert parse_events_config(example.read_text(), str(example)).events


def test_the_dbt_project_keeps_the_configurations_channel_rule():
    """One channel rule: the dbt test's default pattern is the validation's (the product passes its
    own; a plain `dbt test` reads dbt_project.yml's)."""
    from pathlib import Path

    import yaml

    from mixpanel_alerts.core.events_config import CHANNEL_PATTERN

    project = yaml.safe_load((Path(__file__).resolve().parents[1] / "dbt_project" / "dbt_project.yml").read_text())
    assert project["vars"]["slack_channel_pattern"] == CHANNEL_PATTERN.pattern
