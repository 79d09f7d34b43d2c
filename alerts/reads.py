"""The warehouse reads of the alert step: the incidents, and what an alert shows of them (the last
hour's counts, the chart's windows and bands, sample events, the SQL to look further)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

from mixpanel_alerts.core.config import Settings
from mixpanel_alerts.core.sql import sql_string
from mixpanel_alerts.core.times import utc
from mixpanel_alerts.core.warehouse import columns_of

from .chart import ChartPoint
from .render import Incident, Investigation

SPARKLINE_MINUTES = 60
# the chart of a firing alert (bot token): these hours before the incident's last minute, and a few after
CHART_HOURS = 3
CHART_AFTER_MINUTES = 10
INCIDENT_COLUMNS = (
    "incident_id", "event_name", "started_at", "first_anomalous_minute", "last_anomalous_minute", "ended_at", "status",
    "peak_count", "total_events", "alert_threshold", "time_window_minutes", "alert_channel", "anomalous_minutes",
    "cooldown_minutes",
)  # fmt: skip
# what the alert says was expected; read when the models have them (older builds do not)
EXPECTATION_COLUMNS = (
    "kind", "expected_count", "lower_bound", "upper_bound", "repeated_bursts", "quiet_minutes",
    "quiet_first_minutes", "quiet_count", "quiet_expected", "rise_minutes", "rise_first_minutes", "rise_count",
    "rise_expected", "rule_id",
)  # fmt: skip


class Warehouse:
    """The reads the alert step needs, through the pipeline's SQL client."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def _table(self, name: str) -> str:
        return str(self.client.make_qualified_table_name(name))

    def incidents(self) -> list[Incident]:
        table = self._table("incidents")
        present = set(columns_of(self.client, table))
        columns = [*INCIDENT_COLUMNS, *(column for column in EXPECTATION_COLUMNS if column in present)]
        rows = self.client.execute_sql(f"select {', '.join(columns)} from {table}") or []
        incidents = []
        for row in rows:
            values = dict(zip(columns, row, strict=True))
            values["kind"] = values.get("kind") or "spike"
            for name in ("expected_count", "lower_bound", "upper_bound", "quiet_expected", "rise_expected"):
                values[name] = None if values.get(name) is None else float(values[name])
            spans = ("quiet_minutes", "quiet_first_minutes", "quiet_count", "rise_minutes", "rise_first_minutes")
            for name in ("repeated_bursts", *spans, "rise_count"):
                if values.get(name) is not None:
                    values[name] = int(values[name])
            incidents.append(Incident(**values))
        return incidents

    def minute_counts(self, incident: Incident) -> list[int]:
        """Each minute's count over the SPARKLINE_MINUTES before the last anomalous minute, and the
        W - 1 minutes before them: enough for that many whole windows."""
        end = incident.last_anomalous_minute
        minutes = SPARKLINE_MINUTES + max(int(incident.time_window_minutes or 1), 1) - 1
        rows = self.client.execute_sql(
            f"select event_count from {self._table('int_event_counts_per_minute')} "
            # the event first: BigQuery's blocks are clustered by it; then the rule's own rows
            "where event_name = %s and rule_id = %s and minute_at > %s and minute_at <= %s order by minute_at",
            incident.event_name,
            incident.rule_id,
            end - timedelta(minutes=minutes),
            end,
        )
        return [int(row[0]) for row in rows or []]

    def chart_points(self, incident: Incident) -> list[ChartPoint]:
        """Each minute's window count and band over the CHART_HOURS before the incident's last minute."""
        end = incident.last_anomalous_minute
        rows = self.client.execute_sql(
            "select minute_at, window_count, expected_count, lower_bound, upper_bound "
            f"from {self._table('int_event_window_bands')} "
            "where event_name = %s and rule_id = %s and minute_at > %s and minute_at <= %s order by minute_at",
            incident.event_name,
            incident.rule_id,
            end - timedelta(hours=CHART_HOURS),
            end + timedelta(minutes=CHART_AFTER_MINUTES),
        )
        return [
            ChartPoint(
                minute_at=row[0],
                count=int(row[1] or 0),
                expected=_number(row[2]),
                lower=_number(row[3]),
                upper=_number(row[4]),
            )
            for row in rows or []
        ]

    def samples(self, incident: Incident) -> list[dict[str, Any]]:
        start, end = utc(incident.started_at), utc(incident.last_anomalous_minute) + timedelta(minutes=1)
        rows = self.client.execute_sql(
            f"select event_timestamp, properties from {self._table(self.settings.table)} "
            "where event_name = %s and event_timestamp >= %s and event_timestamp < %s "
            "order by event_timestamp limit 3",
            incident.event_name,
            start,
            end,
        )
        return [{"event_at": row[0], "properties": row[1]} for row in rows or []]

    def investigation(self, incident: Incident) -> Investigation:
        start = incident.started_at.strftime("%Y-%m-%d %H:%M:%S")
        end = (incident.last_anomalous_minute + timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")
        table = f"{self.settings.dataset}.{self.settings.table}"
        if self.settings.warehouse == "bigquery":
            table = f"`{self.settings.gcp_project_id}.{table}`"
        sql = (
            f"select event_timestamp, distinct_id, properties from {table}\n"
            f"where event_name = {sql_string(incident.event_name)}\n"
            f"  and event_timestamp >= timestamp '{start}' and event_timestamp < timestamp '{end}'\n"
            "order by event_timestamp"
        )
        url = None
        if self.settings.warehouse == "bigquery":
            url = f"https://console.cloud.google.com/bigquery?project={quote(str(self.settings.gcp_project_id))}"
        return Investigation(sql=sql, url=url)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
