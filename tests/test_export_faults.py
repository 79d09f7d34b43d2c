"""Export traps: transient faults are retried and load everything exactly once; refusals are not."""

from __future__ import annotations

import pytest

from mixpanel_alerts.simulator import GZIP_MIN_BYTES
from tests.conftest import (
    EVENTS_TABLE,
    SA_SECRET,
    output_of,
    query,
    recent_traffic,
    summary_numbers,
    table_exists,
)

ROWS_SQL = f"""
select event_id, event_name, epoch_ms(event_timestamp), distinct_id, properties::varchar
from {EVENTS_TABLE} order by event_id
"""

# fault, status the simulator records for the faulty attempt
RETRIED_FAULTS = [
    pytest.param("429", 429, id="429-retry-after"),
    pytest.param("429-no-retry-after", 429, id="429-no-retry-after"),
    pytest.param("500", 500, id="500"),
    pytest.param("503", 503, id="503"),
    pytest.param("reset", 0, id="connection-reset"),
    pytest.param("cut", 200, id="cut-with-content-length"),
    pytest.param("cut-close", 200, id="cut-connection-close"),
    pytest.param("terminated-early", 200, id="export-terminated-early"),
]


@pytest.mark.parametrize(("fault", "faulty_status"), RETRIED_FAULTS)
def test_transient_fault_is_retried_and_loads_everything_once(sim, make_env, run_cli, db_path, fault, faulty_status):
    events = recent_traffic(200)
    sim.add_events(events)
    sim.inject(fault)

    result = run_cli(["collect"], make_env(sim))

    assert result.returncode == 0, output_of(result)
    assert [(r.fault, r.status) for r in sim.requests] == [(fault, faulty_status), (None, 200)]
    assert sim.requests[0].params == sim.requests[1].params
    assert len(sim.body_for(sim.requests[1].params)) > GZIP_MIN_BYTES  # large enough that the host gzips it
    rows = query(db_path, f"select count(*), count(distinct event_id), count(distinct insert_id) from {EVENTS_TABLE}")
    assert rows == [(len(events), len(events), len(events))]
    stored = {row[0] for row in query(db_path, f"select insert_id from {EVENTS_TABLE}")}
    assert stored == {event.properties["$insert_id"] for event in events}
    assert summary_numbers(output_of(result))["loaded"] == len(events)


@pytest.mark.parametrize("fault", ["cut", "cut-close"], ids=["cut-with-content-length", "cut-connection-close"])
def test_small_uncompressed_body_cut_mid_line_is_retried(sim, make_env, run_cli, db_path, fault):
    events = recent_traffic(1)
    sim.add_events(events)
    sim.inject(fault)

    result = run_cli(["collect"], make_env(sim))

    assert result.returncode == 0, output_of(result)
    assert [(r.fault, r.status) for r in sim.requests] == [(fault, 200), (None, 200)]
    assert len(sim.body_for(sim.requests[1].params)) <= GZIP_MIN_BYTES  # small enough that the host sends it plain
    assert query(db_path, f"select insert_id from {EVENTS_TABLE}") == [(events[0].properties["$insert_id"],)]


def test_terminated_early_leaks_no_partial_data(start_sim, make_env, run_cli, tmp_path, db_path):
    events = recent_traffic(300)
    faulty, clean = start_sim(), start_sim()
    faulty.add_events(events)
    clean.add_events(events)
    faulty.inject("terminated-early")

    faulty_run = run_cli(["collect"], make_env(faulty))
    clean_run = run_cli(["collect"], make_env(clean, DUCKDB_PATH="clean.duckdb"))

    assert faulty_run.returncode == 0, output_of(faulty_run)
    assert clean_run.returncode == 0, output_of(clean_run)
    assert [r.fault for r in faulty.requests] == ["terminated-early", None]
    assert query(db_path, f"select count(*), count(distinct event_id) from {EVENTS_TABLE}") == [(300, 300)]
    assert query(db_path, ROWS_SQL) == query(tmp_path / "clean.duckdb", ROWS_SQL)


def test_summary_counts_every_attempt(sim, make_env, run_cli):
    """A connection reset is an attempt too, though no response arrived."""
    sim.add_events(recent_traffic(20))
    sim.inject("reset")

    result = run_cli(["collect"], make_env(sim))

    assert result.returncode == 0, output_of(result)
    assert len(sim.requests) == 2
    assert "1 export request(s), 2 attempt(s)" in output_of(result)


REFUSALS = [
    pytest.param("400", ["400", "from_date="], id="400-bad-request"),
    pytest.param("401", ["401", "MIXPANEL_SERVICE_ACCOUNT_SECRET", "MIXPANEL_REGION"], id="401-credentials"),
    pytest.param("402", ["402", "plan"], id="402-plan"),
    pytest.param("403", ["403", "MIXPANEL_PROJECT_ID"], id="403-project"),
]


@pytest.mark.parametrize(("fault", "expected"), REFUSALS)
def test_refusal_is_not_retried_and_exits_1_naming_the_fix(sim, make_env, run_cli, db_path, fault, expected):
    sim.add_events(recent_traffic(20))
    sim.inject(fault)

    result = run_cli(["collect"], make_env(sim))

    output = output_of(result)
    assert result.returncode == 1, output
    assert len(sim.requests) == 1
    error_line = next(line for line in output.splitlines() if line.startswith("error:"))
    for text in expected:
        assert text in error_line
    assert "Traceback" not in output
    assert SA_SECRET not in output
    assert not table_exists(db_path, EVENTS_TABLE)


def test_retry_after_is_honoured(start_sim, make_env, run_cli, db_path):
    sim = start_sim(retry_after_seconds=1)
    sim.add_events(recent_traffic(20))
    sim.inject("429")

    result = run_cli(["collect"], make_env(sim))

    assert result.returncode == 0, output_of(result)
    assert [r.status for r in sim.requests] == [429, 200]
    assert sim.requests[1].at - sim.requests[0].at >= 0.95
    assert query(db_path, f"select count(*) from {EVENTS_TABLE}") == [(20,)]


@pytest.mark.parametrize("fault", ["503", "reset", "terminated-early"], ids=["503", "reset", "terminated-early"])
def test_fault_that_persists_exits_1_after_retries(sim, make_env, run_cli, db_path, fault):
    sim.add_events(recent_traffic(20))
    sim.inject(*[fault] * 8)

    result = run_cli(["collect"], make_env(sim))

    output = output_of(result)
    assert result.returncode == 1, output
    assert 2 <= len(sim.requests) <= 8
    assert all(r.fault == fault for r in sim.requests)
    assert "Traceback" not in output
    assert len([line for line in output.splitlines() if line.startswith("error:")]) == 1
    assert not table_exists(db_path, EVENTS_TABLE)
