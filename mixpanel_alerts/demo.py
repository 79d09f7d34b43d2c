"""``mixpanel-alerts demo``: the whole pipeline against the built-in simulator, no credentials."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .core.config import ConfigError, Settings, load_settings
from .core.events_config import parse_events_config
from .orchestration import Reporter, run
from .simulator import ExportSimulator, SimEvent, make_event

DEMO_DATABASE = Path("data/demo.duckdb")
SPIKE_EVENT = "impression_error_null_pointer_detected"
DEMO_CONFIG = """{"events": [
  {"name": "impression_error_null_pointer_detected", "enabled": true, "alert_threshold": 5,
   "alert_channel": "#alerts-errors", "time_window_minutes": 1},
  {"name": "checkout_completed", "enabled": true, "alert_threshold": 120,
   "alert_channel": "#alerts-checkout", "time_window_minutes": 5},
  {"name": "page_view", "enabled": false, "alert_threshold": 1000,
   "alert_channel": "#alerts-general", "time_window_minutes": 1}
]}"""


def demo_traffic(now: datetime, seed: int = 11) -> list[SimEvent]:
    """Two quiet hours (a few errors, steady checkouts and page views) and an error spike
    three minutes ago."""
    rng = random.Random(seed)
    start = now.replace(second=0, microsecond=0) - timedelta(hours=2)
    events: list[SimEvent] = []
    for minute in range(120):
        at = start + timedelta(minutes=minute)
        for name, per_minute in (("checkout_completed", 12), ("page_view", 30), (SPIKE_EVENT, 1)):
            for _ in range(rng.randint(0, per_minute)):
                events.append(make_event(name, at + timedelta(seconds=rng.uniform(0, 59)), rng=rng))
    spike = now.replace(second=0, microsecond=0) - timedelta(minutes=3)
    for _ in range(37):
        at = spike + timedelta(seconds=rng.uniform(0, 59))
        message = "NullPointerException at ImpressionRenderer.render"
        events.append(make_event(SPIKE_EVENT, at, rng=rng, error_message=message, ad_slot="feed-top"))
    return events


def run_demo(reporter: Reporter) -> None:
    """collect → detect → alert against a simulator serving two hours of traffic with a spike."""
    try:
        user_settings = load_settings()
    except ConfigError:
        user_settings = Settings()
    now = datetime.now(UTC)
    with ExportSimulator() as simulator:
        assert simulator.service_account is not None
        simulator.add_events(demo_traffic(now))
        database = Path.cwd() / DEMO_DATABASE
        for stale in (database, database.with_name(database.name + ".wal")):
            stale.unlink(missing_ok=True)
        settings = user_settings.model_copy(
            update=dict(
                project_id=simulator.project_id,
                service_account_username=simulator.service_account[0],
                service_account_secret=simulator.service_account[1],
                api_secret=None,
                api_secret_name=None,
                export_url=simulator.url,
                project_timezone="UTC",
                start_date=(now - timedelta(days=1)).date(),
                warehouse="duckdb",
                duckdb_path=database,
                dataset="mixpanel_data",
                table="mixpanel_events",
            )
        )
        events_config = parse_events_config(DEMO_CONFIG, "the demo configuration")
        reporter.info(f"demo: a Mixpanel export simulator serves two hours of traffic at {simulator.url}")
        run(settings, events_config, reporter)
    reporter.info(
        f"\ndemo done: the data is in {DEMO_DATABASE} (schema mixpanel_data: mixpanel_events, anomalies, "
        "incidents, alert_notifications).\nNext: copy .env.example to .env, set MIXPANEL_PROJECT_ID and a "
        "service account (MIXPANEL_SERVICE_ACCOUNT_USERNAME/SECRET), list your events in "
        "config/events_config.json, set SLACK_WEBHOOK_URL or SLACK_BOT_TOKEN, then `mixpanel-alerts check` "
        "and `just run`."
    )
