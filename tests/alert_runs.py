"""What the end-to-end alert tests share: the events they spike (in the simulator, or straight into a
BigQuery dataset), the ledger and `status` they read."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mixpanel_alerts.simulator import SimEvent, make_event
from tests.conftest import output_of, query

ERRORS = "impression_error_null_pointer_detected"
CHECKOUT = "checkout_completed"
LEDGER = "mixpanel_data.alert_notifications"


def spike(name: str, minutes_ago: int, count: int, **properties: Any) -> list[SimEvent]:
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
    return [make_event(name, minute + timedelta(seconds=1 + index), **properties) for index in range(count)]


def raw_events(bigquery: Any, dataset: str, minute: datetime, count: int) -> None:
    """``count`` events of ``ERRORS`` in ``minute``, written into the dataset's raw table with SQL."""
    rows = [
        f"""select 'e{index}' as event_id, '{ERRORS}' as event_name,
            timestamp '{(minute + timedelta(seconds=index)).isoformat()}' as event_timestamp,
            'user-{index}' as distinct_id, 'i{index}' as insert_id,
            json '{{"error_message": "<!channel> NPE"}}' as properties,
            current_timestamp() as mp_processing_time, current_timestamp() as inserted_at"""
        for index in range(count)
    ]
    bigquery.query(f"create table {dataset}.mixpanel_events as " + " union all ".join(rows)).result()


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def ledger(db_path: Path) -> list[tuple[Any, ...]]:
    """The alert ledger's (event, kind, status) rows."""
    return query(db_path, f"select event_name, kind, status from {LEDGER} order by event_name, kind")


def status_of(run_cli: Callable[..., Any], env: dict[str, str]) -> dict[str, Any]:
    result = run_cli(["status", "--json"], env)
    assert result.returncode == 0, output_of(result)
    return json.loads(result.stdout)
