"""Detection and alerting with WAREHOUSE=bigquery, against the BigQuery emulator (bqemulator).

`.ci/run` and `just test` start the emulator (scripts/bq_emulator.sh) and set BIGQUERY_EMULATOR_HOST;
locally, `eval "$(scripts/bq_emulator.sh start)"` first. Its fixtures (a service-account key whose
token_uri points at a local token endpoint, so the real google-auth flow runs) are in conftest.py.

The emulator runs BigQuery SQL on DuckDB: it proves the dbt models compile for BigQuery and run
through the real client libraries, not every BigQuery typing rule. The raw table is created with
SQL here; loading it with dlt on BigQuery comes with the Google Cloud work.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mixpanel_alerts.alerts.ledger import COLUMNS as LEDGER_COLUMNS
from tests.alert_runs import ERRORS, iso, raw_events
from tests.conftest import EMULATOR, output_of, rule, write_events_config
from tests.raw_traffic import stamp, write_minutes

pytestmark = pytest.mark.skipif(
    not EMULATOR, reason='BIGQUERY_EMULATOR_HOST is not set: run `eval "$(scripts/bq_emulator.sh start)"` first'
)


def test_detect_and_alert_on_bigquery(
    bigquery: Any, dataset: str, tmp_path: Path,
    bigquery_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
) -> None:  # fmt: skip
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    raw_events(bigquery, dataset, minute, 9)
    # a long cooldown: the emulator is slow, and the incident must stay open across the runs below
    write_events_config(tmp_path, {"events": [rule(ERRORS, alert_threshold=5, cooldown_minutes=60)]})
    env = bigquery_env(dataset)
    first = run_cli(["detect"], env)
    assert first.returncode == 0, output_of(first)
    assert "1 sent to the terminal" in first.stderr
    assert "<!channel> NPE" in first.stderr  # the terminal shows the text as Slack would, escapes undone

    incidents = [dict(row) for row in bigquery.query(f"select event_name, peak_count from {dataset}.incidents")]
    assert incidents == [{"event_name": ERRORS, "peak_count": 9}]
    ledger = [tuple(row) for row in bigquery.query(f"select kind, status from {dataset}.alert_notifications")]
    assert ledger == [("firing", "sent")]

    second = run_cli(["detect"], env)
    assert second.returncode == 0, output_of(second)
    assert "0 sent to the terminal" in second.stderr
    counts = list(bigquery.query(f"select count(*) from {dataset}.int_event_counts_per_minute where event_count > 0"))
    assert counts[0][0] == 1


def test_check_reaches_bigquery(
    tmp_path: Path, bigquery_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    start_sim: Callable[..., Any],
) -> None:  # fmt: skip
    write_events_config(tmp_path, {"events": [rule(ERRORS)]})
    env = bigquery_env("not_created_yet", start_sim())
    result = run_cli(["check"], env)
    assert result.returncode == 0, output_of(result)
    assert "will be created by the first collect" in output_of(result)

    no_credentials = run_cli(["check"], {**env, "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "missing.json")})
    assert no_credentials.returncode == 2, output_of(no_credentials)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in output_of(no_credentials)


def test_collect_on_bigquery_resumes_from_the_warehouse(
    bigquery: Any, tmp_path: Path, bigquery_env: Callable[..., dict[str, str]],
    run_cli: Callable[..., Any], start_sim: Callable[..., Any],
) -> None:  # fmt: skip
    """A second collect from a fresh working directory and HOME finds its cursor in BigQuery."""
    from mixpanel_alerts.simulator import make_event

    sim = start_sim()
    now = datetime.now(UTC)
    sim.add_events([make_event(ERRORS, now - timedelta(minutes=minutes)) for minutes in range(5, 25)])
    dataset = f"t_{uuid.uuid4().hex[:10]}"
    write_events_config(tmp_path, {"events": [rule(ERRORS)]})
    env = bigquery_env(dataset, sim)
    first = run_cli(["collect"], env)
    assert first.returncode == 0, output_of(first)
    assert "loaded 20," in output_of(first)

    elsewhere = tmp_path / "fresh-runtime"
    elsewhere.mkdir()
    write_events_config(elsewhere, {"events": [rule(ERRORS)]})
    second = run_cli(["collect"], {**env, "HOME": str(elsewhere)}, cwd=elsewhere)
    assert second.returncode == 0, output_of(second)
    assert "loaded 0," in output_of(second)
    assert "where" in sim.requests[-1].params, "the second run resumed from the cursor stored in BigQuery"
    rows = list(bigquery.query(f"select count(*), count(distinct event_id) from {dataset}.mixpanel_events"))
    assert tuple(rows[0]) == (20, 20)


def test_a_run_waits_for_the_lease_another_run_holds_on_bigquery(
    bigquery: Any, tmp_path: Path, bigquery_env: Callable[..., dict[str, str]],
    run_cli: Callable[..., Any], start_sim: Callable[..., Any],
) -> None:  # fmt: skip
    """Runs against one dataset take turns: while another run's lease is valid, collect waits;
    once it lapses (a run that died), collect takes it, loads, and gives it back."""
    from mixpanel_alerts.core.warehouse import LEASE_TABLE
    from mixpanel_alerts.simulator import make_event

    sim = start_sim()
    now = datetime.now(UTC)
    sim.add_events([make_event(ERRORS, now - timedelta(minutes=minutes)) for minutes in range(5, 15)])
    dataset = f"t_{uuid.uuid4().hex[:10]}"
    bigquery.query(f"create schema {dataset}").result()
    bigquery.query(f"create table {dataset}.{LEASE_TABLE} (name STRING, owner STRING, expires_at TIMESTAMP)").result()
    bigquery.query(
        f"insert into {dataset}.{LEASE_TABLE} (name, owner, expires_at) "
        "values ('run', 'a-run-that-died', timestamp_add(current_timestamp(), interval 8 second))"
    ).result()
    write_events_config(tmp_path, {"events": [rule(ERRORS)]})

    started = time.monotonic()
    result = run_cli(["collect"], bigquery_env(dataset, sim))
    waited = time.monotonic() - started
    assert result.returncode == 0, output_of(result)
    assert "another run (a-run-that-died) holds the lease" in output_of(result)
    assert waited >= 5, "collect did not wait for the lease"
    assert "loaded 10," in output_of(result)
    rows = bigquery.query(f"select name, owner from {dataset}.{LEASE_TABLE}")
    assert [tuple(row) for row in rows] == [("run", None)], "the lease was not given back"


def test_the_lease_holder_renews_it_while_it_works(bigquery: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The renewing thread moves the lease's expiry forward, and only the holder's."""
    import threading

    from mixpanel_alerts.core import warehouse
    from mixpanel_alerts.core.warehouse import LEASE_TABLE, _renew_lease

    dataset = f"t_{uuid.uuid4().hex[:10]}"
    bigquery.query(f"create schema {dataset}").result()
    table = f"{dataset}.{LEASE_TABLE}"
    bigquery.query(f"create table {table} (name STRING, owner STRING, expires_at TIMESTAMP)").result()
    bigquery.query(
        f"insert into {table} values ('run', 'me', timestamp_add(current_timestamp(), interval 2 second))"
    ).result()
    monkeypatch.setattr(warehouse, "LEASE_RENEW_SECONDS", 0.2)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew_lease, args=(bigquery, table, "me", stop))
    renewer.start()
    time.sleep(3)
    stop.set()
    renewer.join()
    seconds_left = bigquery.query(
        f"select timestamp_diff(expires_at, current_timestamp(), second) from {table} where owner = 'me'"
    )
    assert [row[0] for row in seconds_left] > [60], "the lease was not renewed"


@pytest.mark.parametrize("credentials", ["application-default", "dlt-variable"])
def test_pipeline_end_to_end_on_bigquery_with_a_late_event(
    bigquery: Any, keyfile: Path, tmp_path: Path, bigquery_env: Callable[..., dict[str, str]],
    run_cli: Callable[..., Any], start_sim: Callable[..., Any], credentials: str,
) -> None:  # fmt: skip
    """collect → detect → alert, a rerun that sends nothing, then a late event that recounts its
    minute: the same flow as on DuckDB."""
    from mixpanel_alerts.simulator import make_event
    from tests.slack_fake import SlackFake

    slack = SlackFake()
    try:
        sim = start_sim()
        minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=4)
        sim.add_events([make_event(ERRORS, minute + timedelta(seconds=second)) for second in range(1, 7)])
        sim.add_events([make_event(ERRORS, minute + timedelta(minutes=2, seconds=second)) for second in range(1, 6)])
        dataset = f"t_{uuid.uuid4().hex[:10]}"
        # a ledger written before `first_anomalous_minute` existed: the first run adds the column
        bigquery.query(f"create schema {dataset}").result()
        old = ", ".join(
            f"{name} {types[1]}" for name, types in LEDGER_COLUMNS.items() if name != "first_anomalous_minute"
        )
        bigquery.query(f"create table {dataset}.alert_notifications ({old})").result()
        # a long cooldown: the emulator is slow, and the incident must stay open across the runs below
        write_events_config(tmp_path, {"events": [rule(ERRORS, alert_threshold=5, cooldown_minutes=60)]})
        env = bigquery_env(dataset, sim, SLACK_WEBHOOK_URL=slack.webhook_url)
        if credentials == "dlt-variable":  # the key as dlt's variable only: dbt and the alert step use it too
            env.pop("GOOGLE_APPLICATION_CREDENTIALS")
            env["DESTINATION__BIGQUERY__CREDENTIALS"] = keyfile.read_text()
        first = run_cli(["run"], env)
        assert first.returncode == 0, output_of(first)
        assert len(slack.messages) == 1 and ERRORS in slack.messages[0]["text"]
        if credentials == "dlt-variable":
            return  # the credentials served dlt, dbt and the alert step; what follows is the same flow

        again = run_cli(["run"], env)
        assert again.returncode == 0, output_of(again)
        assert len(slack.messages) == 1, "a rerun sends nothing"

        # a late event: its minute (5 events, quiet) now holds 6 and becomes anomalous
        late_minute = minute + timedelta(minutes=2)
        sim.add_events([make_event(ERRORS, late_minute + timedelta(seconds=30), processed_at=datetime.now(UTC))])
        late = run_cli(["run"], env)
        assert late.returncode == 0, output_of(late)
        rows = bigquery.query(f"select window_end_minute, event_count from {dataset}.anomalies order by 1")
        assert [(row[0].replace(tzinfo=None), row[1]) for row in rows] == [
            (minute.replace(tzinfo=None), 6),
            (late_minute.replace(tzinfo=None), 6),
        ]
        assert len(slack.messages) == 1, "the late minute joins the open incident: no second message"

        # late events before its first minute: the incident starts earlier and its id changes; it
        # is still the one incident, with the one alert
        earlier = minute - timedelta(minutes=2)
        processed = datetime.now(UTC)
        sim.add_events(
            [make_event(ERRORS, earlier + timedelta(seconds=s), processed_at=processed) for s in range(1, 7)]
        )
        earlier_run = run_cli(["run"], env)
        assert earlier_run.returncode == 0, output_of(earlier_run)
        rows = bigquery.query(
            f"select incident_id, status, first_anomalous_minute from {dataset}.alert_notifications "
            "where kind = 'firing' order by first_anomalous_minute"
        )
        assert [(row[1], row[2].replace(tzinfo=None)) for row in rows] == [
            ("sent", earlier.replace(tzinfo=None)),
            ("sent", minute.replace(tzinfo=None)),
        ]
        assert len(slack.messages) == 1, "the incident that starts earlier is not alerted again"
    finally:
        slack.stop()


def test_first_run_and_hostile_rule_names_on_bigquery(
    bigquery: Any, tmp_path: Path, bigquery_env: Callable[..., dict[str, str]],
    run_cli: Callable[..., Any], start_sim: Callable[..., Any],
) -> None:  # fmt: skip
    """Runs where no configured event has happened yet succeed; the rules seed reads back exactly
    what was validated (quoted newlines, quotes, backticks…)."""
    from tests.hostile import HOSTILE_NAMES

    sim = start_sim()
    dataset = f"t_{uuid.uuid4().hex[:10]}"
    document = {
        "events": [
            rule(name, alert_threshold=index + 1, description=HOSTILE_NAMES[(index + 1) % len(HOSTILE_NAMES)])
            for index, name in enumerate(HOSTILE_NAMES)
        ]
    }
    write_events_config(tmp_path, document)
    result = run_cli(["run"], bigquery_env(dataset, sim))
    assert result.returncode == 0, output_of(result)
    stored = bigquery.query(
        f"select event_name, alert_threshold, alert_channel, description, enabled from {dataset}.alert_rules"
    )
    expected = [
        (entry["name"], entry["alert_threshold"], entry["alert_channel"], entry["description"], True)
        for entry in document["events"]
    ]
    assert sorted(tuple(row) for row in stored) == sorted(expected)
    # no configured event has happened: on BigQuery the raw table waits for the first one (no empty
    # load), and detection reads it as empty meanwhile
    tables = {table.table_id for table in bigquery.list_tables(dataset)}
    assert {"alert_rules", "incidents", "alert_notifications"} <= tables
    assert "mixpanel_events" not in tables
    again = run_cli(["run"], bigquery_env(dataset, sim))
    assert again.returncode == 0, output_of(again)


@pytest.mark.parametrize("timezone", [None, "America/New_York", "Asia/Kolkata"])
def test_baseline_spike_and_drop_on_bigquery(
    bigquery: Any, dataset: str, tmp_path: Path,
    bigquery_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], timezone: str | None,
) -> None:  # fmt: skip
    """The baseline's maths on BigQuery SQL: eight days of a daily rhythm (4 a minute by day, 2 at
    night), a spike yesterday at 03:10 and an outage at noon, found as on DuckDB
    (tests/test_baseline.py), with the event's coverage from its first day. Learned by the hours of
    another DETECTION_TIMEZONE (a whole-hour and a half-hour offset, no clock change in these
    days), the same rhythm gives the same incidents."""
    now_minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    today = now_minute.replace(hour=0, minute=0)
    start, yesterday = today - timedelta(days=8), today - timedelta(days=1)
    spike, outage = yesterday.replace(hour=3, minute=10), yesterday.replace(hour=12)

    write_minutes(
        bigquery,
        dataset,
        start,
        now_minute,
        f"""case
        when minute_at >= {stamp(spike)} and minute_at < {stamp(spike + timedelta(minutes=3))} then 32
        when minute_at >= {stamp(outage)} and minute_at < {stamp(outage + timedelta(minutes=15))} then 0
        when extract(hour from minute_at) between 8 and 19 then 4
        else 2
    end""",
    )
    baseline = {"detector": "baseline", "direction": "both", "alert_threshold": None, "time_window_minutes": 10}
    write_events_config(tmp_path, {"events": [rule(ERRORS, **baseline)]})
    env = bigquery_env(dataset, DETECTION_NOW=(now_minute + timedelta(seconds=59)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    if timezone:
        env["DETECTION_TIMEZONE"] = timezone
    result = run_cli(["detect"], env)
    assert result.returncode == 0, output_of(result)

    rows = bigquery.query(
        f"""select kind, first_anomalous_minute, last_anomalous_minute, peak_count, expected_count,
                   lower_bound, upper_bound
            from {dataset}.incidents order by first_anomalous_minute"""
    )
    found = [(row[0], row[1], row[2], row[3], row[4], row[5], row[6]) for row in rows]
    expected = [
        ("spike", spike + timedelta(minutes=1), spike + timedelta(minutes=11), 110, 20.0, 5, 55),
        ("drop", outage + timedelta(minutes=6), outage + timedelta(minutes=23), 0, 40.0, 15, 90),
    ]
    if timezone == "America/New_York":
        # the spike (22:10 in New York) falls on the day before the outage's: that day's surprise
        # raises the next day's spike bar, so the drop's upper bound differs, and nothing else
        assert [row[:6] for row in found] == [row[:6] for row in expected]
        assert found[1][6] > 90
    else:
        assert found == expected
    again = run_cli(["detect"], env)  # the incremental branches: the same incidents
    assert again.returncode == 0, output_of(again)
    rerun = bigquery.query(
        f"""select kind, first_anomalous_minute, last_anomalous_minute, peak_count, expected_count,
                   lower_bound, upper_bound
            from {dataset}.incidents order by first_anomalous_minute"""
    )
    assert [tuple(row) for row in rerun] == found
    learning = [
        tuple(row)
        for row in bigquery.query(
            f"select event_name, history_days, needed_days, is_learning from {dataset}.baseline_learning"
        )
    ]
    assert learning == [(ERRORS, 7, 7, False)]
    first = list(bigquery.query(f"select min(minute_at) from {dataset}.int_event_counts_per_minute"))
    assert first[0][0] == start


def test_a_sustained_rise_on_bigquery(
    bigquery: Any, dataset: str, tmp_path: Path,
    bigquery_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
) -> None:  # fmt: skip
    """A sustained rise on BigQuery SQL (the hour sums, their dispersion, the spans): a steady event,
    2 a minute for twelve days (10 a window, its spike bar 35), gets 5 a minute for the last half
    hour. No window leaves its band; 15 minutes of them hold 2.5 times the events expected, more
    above them than the bar's spread times the root of 3 windows, so a spike says so. Twelve days,
    not eight: with a few days of baselines, a rise that crosses midnight UTC is the largest
    surprise of the day before, whose median over so few days raises the new day's bar to 37 (CI
    ran it at 00:25 and saw the rise at 30 minutes)."""
    now_minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    start, louder = now_minute - timedelta(days=12), now_minute - timedelta(minutes=30)

    write_minutes(bigquery, dataset, start, now_minute, f"case when minute_at >= {stamp(louder)} then 5 else 2 end")
    baseline = {"detector": "baseline", "direction": "up", "alert_threshold": None, "time_window_minutes": 5}
    write_events_config(tmp_path, {"events": [rule(ERRORS, **baseline)]})
    env = bigquery_env(dataset, DETECTION_NOW=(now_minute + timedelta(seconds=59)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    result = run_cli(["detect"], env)
    assert result.returncode == 0, output_of(result)

    rows = [
        tuple(row)
        for row in bigquery.query(
            f"""select kind, peak_count, upper_bound, rise_first_minutes, rise_count, rise_expected
                from {dataset}.incidents"""
        )
    ]
    assert len(rows) == 1, rows
    [(kind, peak, upper, minutes, count, expected)] = rows
    assert (kind, minutes, expected) == ("spike", 15, 30.0), rows
    assert peak <= upper and count >= 2 * expected, rows
    flat = " ".join(output_of(result).replace("\u2502", " ").split())  # the terminal's box, unwrapped
    assert f"{count} events in the last 15 min, expected about 30" in flat, flat


def test_day_two_on_bigquery(
    bigquery: Any, dataset: str, tmp_path: Path, bigquery_env: Callable[..., dict[str, str]],
    run_cli: Callable[..., Any], start_sim: Callable[..., Any],
) -> None:  # fmt: skip
    """Silences (command line and reaction), the digest, charts, `status`, run history, the
    heartbeat and the pipeline's own alert, with every state table in BigQuery."""
    from mixpanel_alerts.simulator import make_event
    from tests.heartbeat import Heartbeat
    from tests.slack_fake import BOT_TOKEN, SlackFake

    sim = start_sim()
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    burst = ["burst_a", "burst_b", "burst_c"]
    muted = "checkout_completed"
    for count, name in enumerate([*burst, ERRORS, muted]):
        sim.add_events([make_event(name, minute + timedelta(seconds=second)) for second in range(1, 8 + count)])
    # a steady event with a minimum: the rules expect its traffic every minute
    this_minute = minute + timedelta(minutes=2)
    sim.add_events([make_event("signup", this_minute - timedelta(minutes=back, seconds=-1)) for back in range(40)])
    write_events_config(tmp_path, {"events": [
        *(rule(name, cooldown_minutes=60) for name in burst),
        rule(ERRORS, alert_channel="#alerts-checkout", cooldown_minutes=60), rule(muted, cooldown_minutes=60),
        rule("signup", alert_channel="#alerts-checkout", alert_threshold=100, min_events=1),
    ]})  # fmt: skip
    slack = SlackFake({"#alerts-errors": "C0ERRORS", "#alerts-checkout": "C0CHECKOUT", "#ops": "C0OPS"})
    heartbeat = Heartbeat()
    try:
        env = bigquery_env(
            dataset, sim, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack.api_url, OPS_ALERT_CHANNEL="#ops",
            HEARTBEAT_URL=heartbeat.url, ALERT_DIGEST_THRESHOLD="2",
            ALERT_LOOKBACK_MINUTES="30",
        )  # fmt: skip
        silenced = run_cli(["silence", muted, "--for", "1h", "--reason", "launch"], env)
        assert silenced.returncode == 0, output_of(silenced)
        first = run_cli(["run"], env)
        assert first.returncode == 0, output_of(first)
        by_channel: dict[str, list[dict[str, Any]]] = {}
        for message in slack.messages:
            by_channel.setdefault(message["channel"], []).append(message)
        [digest] = by_channel["C0ERRORS"]
        assert "3 new incidents" in digest["text"] and all(name in digest["text"] for name in burst)
        [alert] = by_channel["C0CHECKOUT"]
        [image] = [block for block in alert["blocks"] if block["type"] == "image"]
        assert slack.files[image["slack_file"]["id"]]["bytes"].startswith(b"\x89PNG")
        ledger = {
            tuple(row) for row in bigquery.query(f"select event_name, kind, status from {dataset}.alert_notifications")
        }
        assert (muted, "firing", "silenced") in ledger and (ERRORS, "firing", "sent") in ledger
        assert len(heartbeat.pings) == 1

        slack.react("C0CHECKOUT", alert["ts"], "no_bell", user="U0ONCALL")
        # collect failing for longer than PIPELINE_STALE_MINUTES: one pipeline alert to #ops; those
        # runs still read the reaction (the alert step runs for the pipeline's health)
        broken = {**env, "MIXPANEL_EXPORT_URL": "http://127.0.0.1:9/", "PIPELINE_STALE_MINUTES": "1"}
        first_failure = run_cli(["run"], broken)
        assert first_failure.returncode == 1 and f"{ERRORS} silenced until" in output_of(first_failure)
        report = json.loads(run_cli(["status", "--json"], env).stdout)
        states = {item["event_name"]: item["state"] for item in report["rules"]}
        assert states == {**dict.fromkeys(burst, "firing"), ERRORS: "silenced", muted: "silenced", "signup": "ok"}
        # a failed collect is unhealthy at once; the pipeline alert waits for PIPELINE_STALE_MINUTES
        assert [run["collect_result"] for run in report["runs"]] == ["failed", "ok"]
        assert report["health"]["healthy"] is False and [item["channel"] for item in slack.messages].count("C0OPS") == 0
        makers = sorted(item["created_by"] for item in report["silences"])
        assert len(makers) == 2 and "slack:U0ONCALL" in makers
        later = iso(datetime.now(UTC) + timedelta(minutes=3))
        failed = run_cli(["run"], {**broken, "DETECTION_NOW": later})
        assert failed.returncode == 1, output_of(failed)
        [ops] = [message for message in slack.messages if message["channel"] == "C0OPS"]
        assert "collect has failed in every run since" in ops["text"]
        assert len(heartbeat.pings) == 1, "failed runs do not call it"

        # half an hour on, nothing collected since (the last collect failed): signup's silence lies
        # past the data collected, so no drop is judged on it (nor before its first event)
        later = iso(datetime.now(UTC) + timedelta(minutes=30))
        held = run_cli(["detect"], {**env, "PIPELINE_STALE_MINUTES": "10", "DETECTION_NOW": later})
        assert held.returncode == 0, output_of(held)
        assert "collect has failed" in output_of(held)
        assert len([message for message in slack.messages if message["channel"] == "C0OPS"]) == 1, "still one"
        drops = bigquery.query(f"select count(*) from {dataset}.alert_notifications where event_name = 'signup'")
        assert [tuple(row) for row in drops] == [(0,)], "no drop past the data"
        report = json.loads(run_cli(["status", "--json"], {**env, "DETECTION_NOW": later}).stdout)
        assert report["collection"]["drops_held_from"] is not None
        assert len(heartbeat.pings) == 2
        runs = bigquery.query(
            f"select command, collect_result, healthy, alerts_held from {dataset}.pipeline_runs order by started_at"
        )
        assert [tuple(row) for row in runs] == [
            ("run", "ok", True, 0), ("run", "failed", False, 0), ("run", "failed", False, 0),
            ("detect", None, False, 0),
        ]  # fmt: skip
    finally:
        slack.stop()
        heartbeat.server.shutdown()


INCREMENTAL_MODELS = {  # model: its partition column
    "int_event_counts_per_minute": "minute_at",
    "int_event_window_counts": "minute_at",
    "int_event_hour_windows": "window_day",
    "int_event_baselines": "window_day",
    "int_event_daily_surprise": "window_day",
    "anomalies": "window_end_minute",
    "incidents": "first_anomalous_minute",
}


def test_a_run_on_bigquery_reads_and_writes_the_partitions_it_changes(
    bigquery: Any, dataset: str, tmp_path: Path,
    bigquery_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
) -> None:  # fmt: skip
    """Cost on BigQuery is the SQL a run issues (the emulator neither bills nor prunes): after a
    first build, an incremental run with a late event merges into every incremental model with its
    partition column bounded by a literal, reads the raw table by inserted_at after a literal
    watermark, and every incremental model is partitioned by day and clustered by event."""
    import re

    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    raw_events(bigquery, dataset, minute, 9)
    write_events_config(tmp_path, {"events": [rule(ERRORS, alert_threshold=5, cooldown_minutes=60)]})
    env = bigquery_env(dataset)
    assert (first := run_cli(["detect"], env)).returncode == 0, output_of(first)
    created = {path.stem: path.read_text() for path in (tmp_path / ".cache").rglob("target/run/**/*.sql")}
    late = minute + timedelta(minutes=1)  # a late event into a minute counted (quiet) by the first run
    bigquery.query(
        f"insert into {dataset}.mixpanel_events select 'late', '{ERRORS}', timestamp '{late.isoformat()}', 'u', "
        "'late', json '{}', current_timestamp(), current_timestamp()"
    ).result()
    assert (second := run_cli(["detect"], env)).returncode == 0, output_of(second)

    run_sql = {path.stem: path.read_text() for path in (tmp_path / ".cache").rglob("target/run/**/*.sql")}
    literal = r"(?:cast\('[0-9: .-]+' as\s+timestamp\s*\)|date '[0-9-]+')"
    for model, column in INCREMENTAL_MODELS.items():
        sql = run_sql[model]
        assert re.search(rf"merge into .*{model}", sql, re.S | re.I), f"{model}: not merged\n{sql[:400]}"
        assert re.search(rf"DBT_INTERNAL_DEST\.{column} >= {literal}", sql), f"{model}: merge not bounded\n{sql}"
        # created partitioned by day and clustered by event (the emulator keeps neither in its metadata)
        ddl = " ".join(created[model].split())
        assert re.search(rf"partition by (?:timestamp_trunc\({column}, day\)|{column})", ddl), f"{model}\n{ddl[:600]}"
        assert f"cluster by event_name, {column}" in ddl, f"{model}\n{ddl[:600]}"
    # the raw table is read by what arrived: inserted_at after the last run's watermark (a literal)
    changes = run_sql["int_detection_changes"]
    assert re.search(rf"inserted_at > {literal}", changes), changes
    # the run records what its dbt jobs cost, as BigQuery's job statistics say, per node and in all
    runs = [dict(row) for row in bigquery.query(
        f"select bytes_processed, bytes_billed, rows_affected, dbt_nodes from {dataset}.pipeline_runs "
        "order by started_at"
    )]  # fmt: skip
    assert len(runs) == 2
    nodes = {node["node"]: node for node in json.loads(runs[-1]["dbt_nodes"])}
    assert set(INCREMENTAL_MODELS) <= set(nodes) and nodes["int_event_counts_per_minute"]["status"] == "success"
    assert runs[-1]["rows_affected"] == sum(node["rows_affected"] or 0 for node in nodes.values())
    assert runs[-1]["bytes_processed"] == sum(node["bytes_processed"] or 0 for node in nodes.values())
    assert f"{runs[-1]['bytes_processed'] / 1e6:,.1f} MB processed" in second.stderr
    counts = bigquery.query(
        f"select minute_at, event_count from {dataset}.int_event_counts_per_minute where event_count > 0 order by 1"
    )
    assert [(row[0].replace(tzinfo=None), row[1]) for row in counts] == [
        (minute.replace(tzinfo=None), 9),
        (late.replace(tzinfo=None), 1),
    ]
