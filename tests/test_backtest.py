"""`mixpanel-alerts backtest`: the rules replayed over stored history through the product, against a
real DuckDB file loaded by `collect`; nothing sent, nothing recorded, the live tables untouched."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mixpanel_alerts.backtest import Period, series_step
from mixpanel_alerts.simulator import ExportSimulator, SimEvent, make_event
from tests.alert_runs import ERRORS, raw_events
from tests.conftest import (
    DB_FILE,
    EMULATOR,
    cli_runner,
    env_maker,
    output_of,
    query,
    rule,
    start_simulator,
    stop_in_background,
    write_events_config,
)  # fmt: skip
from tests.slack_fake import SlackFake

CHECKOUT = "checkout `` <!channel> ```"
LIVE_TABLES = ("anomalies", "incidents", "int_event_window_counts", "int_event_counts_per_minute")
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00Z$")


def burst(name: str, minute: datetime, count: int) -> list[SimEvent]:
    return [make_event(name, minute + timedelta(seconds=1 + index * 50 / count)) for index in range(count)]


def three_days_ago() -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=3)  # the period it begins ends a day before any "now - 20 minutes"


@dataclasses.dataclass
class Loaded:
    """The module's warehouse: where it lives, the CLI's environment, its Slack, its first day."""

    directory: Path
    env: dict[str, str]
    slack: SlackFake
    day: datetime

    @property
    def db_path(self) -> Path:
        return self.directory / DB_FILE


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, stopping_servers: list[threading.Thread]) -> Iterator[Loaded]:
    """Two days of history collected and detected once (its alert sent, so the ledger has a row):
    once for the module, whose backtests must leave it as it is."""
    directory = tmp_path_factory.mktemp("backtest")
    sim, slack = start_simulator(), SlackFake()
    config = {
        "events": [
            rule(ERRORS, alert_threshold=5, cooldown_minutes=5, description="NPEs <!here> ```"),
            rule(CHECKOUT, alert_threshold=10, time_window_minutes=3),
        ]
    }
    write_events_config(directory, config)
    day = three_days_ago()
    sim.add_events(
        [
            *burst(ERRORS, day + timedelta(hours=10), 9),  # one incident on day 1
            *burst(ERRORS, day + timedelta(hours=10, minutes=2), 7),  # the same one (cooldown 5)
            *burst(ERRORS, day + timedelta(days=1, hours=3), 6),  # one on day 2
            *burst(CHECKOUT, day + timedelta(hours=12), 4),
            *burst(CHECKOUT, day + timedelta(hours=12, minutes=1), 8),  # 12 in 3 minutes
            *burst(
                ERRORS, datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20), 8
            ),  # today: outside the period
        ]
    )
    env = env_maker(directory)(sim, MIXPANEL_START_DATE=day.date().isoformat(), SLACK_WEBHOOK_URL=slack.webhook_url)
    run_cli = cli_runner(directory)
    try:
        for command in ("collect", "detect"):
            result = run_cli([command], env)
            assert result.returncode == 0, output_of(result)
        assert slack.messages, "the live run sent its alert\n" + output_of(result)
        yield Loaded(directory, env, slack, day)
    finally:
        slack.stop()
        stop_in_background(sim, stopping_servers)


def snapshot(db_path: Path) -> dict[str, list[str]]:
    tables = [f"mixpanel_data.{name}" for name in LIVE_TABLES]
    tables += [
        f"{schema}.{name}"
        for schema, name in query(
            db_path, "select schema_name, table_name from duckdb_tables() where table_name like '%notification%'"
        )
    ]
    return {table: sorted(repr(row) for row in query(db_path, f"select * from {table}")) for table in tables}


def test_backtest_replays_the_period_and_touches_nothing(loaded: Loaded, tmp_path: Path) -> None:
    db_path, slack_fake = loaded.db_path, loaded.slack
    before, requests_before = snapshot(db_path), len(slack_fake.requests)
    assert any("notification" in table for table in before), "the ledger is compared too"
    day = loaded.day
    period = ["--start-date", day.date().isoformat(), "--end-date", (day + timedelta(days=1)).date().isoformat()]
    run_cli = cli_runner(loaded.directory)
    result = run_cli(
        ["backtest", *period, "--json", str(tmp_path / "out.json"), "--html", str(tmp_path / "report.html")], loaded.env
    )
    assert result.returncode == 0, output_of(result)

    document = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert list(document) == ["incidents"]
    incidents = document["incidents"]
    fields = [
        "rule_id", "event_name", "segment", "kind", "first_anomalous_minute", "last_anomalous_minute", "peak_count",
        "expected_count",
    ]  # fmt: skip
    assert all(list(incident) == fields for incident in incidents)
    assert all(ISO_UTC.match(incident["first_anomalous_minute"]) for incident in incidents)
    minute = lambda delta: (day + delta).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    summary = [(i["event_name"], i["kind"], i["first_anomalous_minute"], i["last_anomalous_minute"], i["peak_count"])
               for i in incidents]  # fmt: skip
    assert summary == [
        (ERRORS, "spike", minute(timedelta(hours=10)), minute(timedelta(hours=10, minutes=2)), 9),
        (CHECKOUT, "spike", minute(timedelta(hours=12, minutes=1)), minute(timedelta(hours=12, minutes=2)), 12),
        (ERRORS, "spike", minute(timedelta(days=1, hours=3)), minute(timedelta(days=1, hours=3)), 6),
    ], "today's incident lies after the period"
    assert all(incident["expected_count"] is None for incident in incidents), "threshold rules expect nothing"

    assert snapshot(db_path) == before, "the live tables and the ledger are unchanged"
    assert len(slack_fake.requests) == requests_before, "no Slack request"
    assert f"{ERRORS!r} (threshold): 2 incident(s), 7.0 per week" in result.stdout
    # the highest window count (9) gives none; any lower threshold gives more than 1 a week x 2 days
    assert "suggested alert_threshold for at most 1 incident(s) a week: 9 (0 incident(s)" in result.stdout
    assert "backtest: " in result.stderr, "progress on stderr"

    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") or page.lower().startswith("<!doctype html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE), "self-contained"
    assert "<!channel>" not in page and "<!here>" not in page, "configuration text is escaped"
    assert "<svg" in page
    assert page.count("<figure>") == 3, "a chart of the hours around each incident"


def test_a_period_without_events_says_so_and_exits_1(loaded: Loaded, tmp_path: Path) -> None:
    """Before, it printed "0 incident(s)" for every rule and exited 0."""
    day = loaded.day - timedelta(days=60)
    period = ["--start-date", day.date().isoformat(), "--end-date", (day + timedelta(days=6)).date().isoformat()]
    result = cli_runner(loaded.directory)(["backtest", *period, "--json", str(tmp_path / "out.json")], loaded.env)
    assert result.returncode == 1, output_of(result)
    assert f"no event of the 2 enabled rule(s) from {day.date()}" in result.stderr
    assert "mixpanel-alerts backfill --start-date" in result.stderr
    assert "0 incident(s)" not in result.stdout and not (tmp_path / "out.json").exists()


def test_a_backtest_twice_gives_the_same_incidents(loaded: Loaded, tmp_path: Path) -> None:
    run_cli = cli_runner(loaded.directory)
    period = [
        "--start-date",
        loaded.day.date().isoformat(),
        "--end-date",
        datetime.now(UTC).date().isoformat(),
    ]
    outputs = []
    for name in ("first.json", "second.json"):
        result = run_cli(["backtest", *period, "--json", str(tmp_path / name)], loaded.env)
        assert result.returncode == 0, output_of(result)
        outputs.append((tmp_path / name).read_text())
    assert outputs[0] == outputs[1]
    assert len(json.loads(outputs[0])["incidents"]) == 4, "a period that ends today ends now"


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-10-02", "2026-10-01", "before --start-date"),
        ("2026-13-01", "2026-10-01", "YYYY-MM-DD"),
        ("yesterday", "2026-10-01", "YYYY-MM-DD"),
        ("2999-01-01", "2999-01-02", "in the future"),
    ],
    ids=["end-before-start", "no-month-13", "not-a-date", "future"],
)
def test_bad_periods_exit_2_and_say_why(
    make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], start: str, end: str, message: str
) -> None:
    result = run_cli(["backtest", "--start-date", start, "--end-date", end], make_env())
    assert result.returncode == 2, output_of(result)
    assert message in output_of(result)


def test_backtest_help_explains_the_options(
    make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any]
) -> None:
    result = run_cli(["backtest", "--help"], make_env())
    assert result.returncode == 0
    for option in ("--start-date", "--end-date", "--json", "--html", "--target-per-week"):
        assert option in result.stdout
    assert "sends nothing" in result.stdout.lower()


CHECKOUT_FLOW = "checkout_completed"


def steady(name: str, day: datetime, per_minute: int, hours: range, skip: range = range(0)) -> list[SimEvent]:
    """``per_minute`` events in every minute of ``hours`` of ``day``, but the minutes in ``skip``."""
    events = []
    for hour in hours:
        for minute in range(60):
            if hour * 60 + minute not in skip:
                events += burst(name, day + timedelta(hours=hour, minutes=minute), per_minute)
    return events


def test_a_baseline_rule_replays_spikes_and_drops_with_what_was_expected(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    slack_fake: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    """Nine days of the same rhythm (5 a minute from 11:00 to 16:00 UTC), then on the last day a
    spike at 12:00 and a 45-minute outage at 14:00: a spike and a drop, each with the expected
    count learned from the days before; on the first days the rule is still learning."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first, last = today - timedelta(days=9), today - timedelta(days=1)
    events: list[SimEvent] = []
    for offset in range(9):
        day = first + timedelta(days=offset)
        outage = range(14 * 60, 14 * 60 + 45) if day == last else range(0)
        events += steady(CHECKOUT_FLOW, day, 5, range(11, 16), skip=outage)
    events += burst(CHECKOUT_FLOW, last + timedelta(hours=12, minutes=30), 200)
    sim.add_events(events)
    write_events_config(
        tmp_path,
        {"events": [{"name": CHECKOUT_FLOW, "enabled": True, "alert_channel": "#alerts-checkout",
                     "time_window_minutes": 15, "detector": "baseline", "direction": "both",
                     "description": "Checkouts <!channel>"}]},
    )  # fmt: skip
    env = make_env(sim, MIXPANEL_START_DATE=first.date().isoformat(), SLACK_WEBHOOK_URL=slack_fake.webhook_url)
    collected = run_cli(["collect"], env)
    assert collected.returncode == 0, output_of(collected)
    period = ["--start-date", first.date().isoformat(), "--end-date", last.date().isoformat()]
    result = run_cli(["backtest", *period, "--json", "out.json", "--html", "report.html"], env)
    assert result.returncode == 0, output_of(result)

    incidents = json.loads((tmp_path / "out.json").read_text())["incidents"]
    kinds = [(incident["kind"], incident["first_anomalous_minute"][:13]) for incident in incidents]
    assert kinds == [("spike", f"{last:%Y-%m-%d}T12"), ("drop", f"{last:%Y-%m-%d}T14")], incidents
    spike, drop = incidents
    assert spike["peak_count"] >= 200 and spike["expected_count"] == pytest.approx(75, abs=5)
    assert drop["peak_count"] == 0 and drop["expected_count"] == pytest.approx(75, abs=5)
    outage_start = last + timedelta(hours=14)
    found_after = datetime.fromisoformat(drop["first_anomalous_minute"].replace("Z", "+00:00")) - outage_start
    assert found_after <= timedelta(minutes=15), f"the outage was found {found_after} after it began"
    assert "(baseline, both): 2 incident(s)" in result.stdout
    assert "learning until" in result.stdout, "the first days of the period had no baseline yet"
    assert not table_has_rows(db_path, "mixpanel_data.incidents"), "the live tables were not built"
    assert slack_fake.requests == []
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<!channel>" not in page and "learning" in page


def test_a_period_in_which_every_rule_learns_says_so_and_exits_1(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    """Three days of a baseline rule's event, replayed: no hour has its 7 days of history yet."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=4)
    sim.add_events([event for offset in range(3) for event in steady(CHECKOUT_FLOW, first + timedelta(days=offset), 2,
                                                                         range(11, 13))])  # fmt: skip
    write_events_config(tmp_path, {"events": [{"name": CHECKOUT_FLOW, "enabled": True, "alert_channel": "#alerts",
                                               "time_window_minutes": 15, "detector": "baseline"}]})  # fmt: skip
    env = make_env(sim, MIXPANEL_START_DATE=first.date().isoformat())
    collected = run_cli(["collect"], env)
    assert collected.returncode == 0, output_of(collected)
    period = ["--start-date", first.date().isoformat(), "--end-date", (first + timedelta(days=2)).date().isoformat()]
    result = run_cli(["backtest", *period, "--json", "out.json", "--html", "report.html"], env)
    assert result.returncode == 1, output_of(result)
    assert "every rule was still learning for the whole of" in result.stderr
    assert f"'{CHECKOUT_FLOW}' (baseline, up): 0 incident(s)" in result.stdout
    assert "no baseline alerts in the whole period" in result.stdout, "the rule's own note"
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "report.html").exists()


ERROR_BURSTS = "api_error"
BURST_SIZES = [20, 35, 8, 50, 12, 27, 41, 15, 30, 9, 44, 22, 18, 38]  # one a day, two weeks


def test_the_suggested_threshold_gives_the_target_when_replayed(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    """A burst a day for two weeks; for one incident a week (two in the period) the backtest
    suggests 41, computed from its window counts. Replayed through dbt with 41 the rule gives 2
    incidents, with 40 it gives 3: the suggestion is the lowest threshold within the target."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=len(BURST_SIZES) + 1)
    sim.add_events([event for day, size in enumerate(BURST_SIZES)
                    for event in burst(ERROR_BURSTS, first + timedelta(days=day, hours=12), size)])  # fmt: skip

    def configure(threshold: int) -> None:
        config = {"events": [rule(ERROR_BURSTS, alert_threshold=threshold, time_window_minutes=5)]}
        write_events_config(tmp_path, config)

    configure(10)
    env = make_env(sim, MIXPANEL_START_DATE=first.date().isoformat())
    collected = run_cli(["collect"], env)
    assert collected.returncode == 0, output_of(collected)
    period = ["--start-date", first.date().isoformat(),
              "--end-date", (first + timedelta(days=len(BURST_SIZES) - 1)).date().isoformat()]  # fmt: skip

    def replay(threshold: int, *options: str) -> str:
        configure(threshold)
        result = run_cli(["backtest", *period, *options], env)
        assert result.returncode == 0, output_of(result)
        return result.stdout

    first_replay = replay(10, "--html", "report.html")
    assert f"{ERROR_BURSTS!r} (threshold): 12 incident(s), 6.0 per week" in first_replay
    suggestion = "suggested alert_threshold for at most 1 incident(s) a week: 41 (2 incident(s) in the period, 1.0 per"
    assert suggestion in first_replay
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "41 (2 incidents, 1.0/week)" in page and "suggested (41)" in page
    assert f"{ERROR_BURSTS!r} (threshold): 2 incident(s)" in replay(41)
    assert f"{ERROR_BURSTS!r} (threshold): 3 incident(s)" in replay(40)
    assert "a week: 35 (4 incident(s)" in replay(41, "--target-per-week", "2")


def table_has_rows(db_path: Path, table: str) -> bool:
    if not db_path.exists():
        return False
    found = query(db_path, "select count(*) from duckdb_tables() where schema_name || '.' || table_name = ?", [table])
    return bool(found[0][0]) and bool(query(db_path, f"select count(*) from {table}")[0][0])


@pytest.mark.skipif(not EMULATOR, reason="BIGQUERY_EMULATOR_HOST is not set: see tests/test_bigquery.py")
def test_backtest_on_bigquery_builds_into_its_own_dataset(
    bigquery: Any, dataset: str, tmp_path: Path,
    bigquery_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
) -> None:  # fmt: skip
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    raw_events(bigquery, dataset, minute, 9)
    write_events_config(tmp_path, {"events": [rule(ERRORS, alert_threshold=5, cooldown_minutes=60)]})
    env = bigquery_env(dataset)
    live = run_cli(["detect"], env)
    assert live.returncode == 0, output_of(live)

    def live_rows() -> list[Any]:
        tables = ("incidents", "anomalies", "alert_notifications")
        return [sorted(map(repr, bigquery.query(f"select * from {dataset}.{table}"))) for table in tables]

    before = live_rows()
    day = minute.date().isoformat()
    result = run_cli(
        ["backtest", "--start-date", day, "--end-date", day, "--json", "out.json", "--html", "r.html"], env
    )
    assert result.returncode == 0, output_of(result)
    incidents = json.loads((tmp_path / "out.json").read_text())["incidents"]
    assert [(i["event_name"], i["kind"], i["peak_count"]) for i in incidents] == [(ERRORS, "spike", 9)]
    assert incidents[0]["first_anomalous_minute"] == minute.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert live_rows() == before, "the live dataset is untouched"
    built = [row[0] for row in bigquery.query(f"select count(*) from {dataset}_backtest.incidents")]
    assert built == [1], "the replay was built in <dataset>_backtest"
    assert "<svg" in (tmp_path / "r.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(("days", "step"), [(1, 1), (2, 1), (3, 2), (60, 22)])
def test_long_periods_reach_the_report_in_buckets(days: int, step: int) -> None:
    start = datetime(2026, 10, 1).date()
    assert series_step(Period(start, start + timedelta(days=days - 1))) == step
