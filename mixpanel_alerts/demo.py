"""``mixpanel-alerts demo``: the whole pipeline against the built-in simulator, no credentials."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .core.config import ConfigError, Settings, load_settings
from .core.events_config import EventsConfig, parse_events_config
from .orchestration import Reporter, run
from .simulator import ExportSimulator, SimEvent, make_event

DEMO_DATABASE = Path("data/demo.duckdb")
SPIKE_EVENT = "impression_error_null_pointer_detected"
# the most events a minute the demo generates for one of the user's rules
MAX_PER_MINUTE = 200
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


def traffic_day(now: datetime) -> datetime:
    """Midnight (UTC) of the day the demo's traffic for a user's rules starts: today's, or
    yesterday's in the first hour of a day (so that there is an hour of traffic to see)."""
    return (now - timedelta(hours=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def rule_traffic(events_config: EventsConfig, now: datetime, seed: int = 11) -> tuple[list[SimEvent], str | None]:
    """The day's traffic (UTC, from midnight, see ``traffic_day``: the demo collects from that day,
    and a quiet minute of a collected day is a real zero, a drop for a ``min_events`` rule) for the
    enabled rules of a user's configuration, each inside its own band (between ``min_events`` and ``alert_threshold``
    per window; at most MAX_PER_MINUTE a minute), and a spike past the first threshold three minutes
    ago; the spiked rule's name (None when no rule has a threshold)."""
    rng = random.Random(seed)
    start = traffic_day(now)
    minutes = int((now - start).total_seconds() // 60)
    events: list[SimEvent] = []
    spiked = None
    for rule in events_config.events:
        if not rule.enabled:
            continue
        window = rule.time_window_minutes
        low, high = rule.min_events, rule.alert_threshold
        target = (low + high) / 2 if low and high else high / 2 if high else 2 * low if low else 10 * window
        per_minute = min(max(1, round(target / window)), MAX_PER_MINUTE)
        for minute in range(minutes):
            at = start + timedelta(minutes=minute)
            events += [make_event(rule.name, at + timedelta(seconds=rng.uniform(0, 59)), rng=rng)
                       for _ in range(per_minute)]  # fmt: skip
        if spiked is None and high:
            spiked = rule.name
            spike = now.replace(second=0, microsecond=0) - timedelta(minutes=3)
            events += [make_event(rule.name, spike + timedelta(seconds=rng.uniform(0, 59)), rng=rng)
                       for _ in range(high + 1)]  # fmt: skip
    return events, spiked


def run_demo(reporter: Reporter, config: Path | None = None) -> None:
    """collect → detect → alert against a simulator serving two hours of traffic with a spike:
    for the demo's own rules, or for those of the events configuration in ``config``."""
    try:
        user_settings = load_settings()
    except ConfigError:
        user_settings = Settings()
    now = datetime.now(UTC)
    spiked: str | None
    if config is None:
        events_config = parse_events_config(DEMO_CONFIG, "the demo configuration")
        traffic, spiked = demo_traffic(now), SPIKE_EVENT
    else:
        try:
            text = config.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--config {config}: cannot read it ({exc.strerror})") from None
        events_config = parse_events_config(text, str(config))
        if not events_config.enabled_names:
            raise ConfigError(f"{config} enables no event: the demo has nothing to serve")
        traffic, spiked = rule_traffic(events_config, now)
    with ExportSimulator() as simulator:
        assert simulator.service_account is not None
        simulator.add_events(traffic)
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
                start_date=(now - timedelta(days=1)).date() if config is None else traffic_day(now).date(),
                warehouse="duckdb",
                duckdb_path=database,
                dataset="mixpanel_data",
                table="mixpanel_events",
            )
        )
        what = f"the day's traffic for the rules of {config}" if config else "two hours of traffic for the demo's rules"
        reporter.info(f"demo: a Mixpanel export simulator serves {what} at {simulator.url}")
        if spiked is not None:
            reporter.info(f"demo: {spiked} spikes three minutes ago")
        else:
            reporter.note("no enabled rule has an alert_threshold: the traffic has no spike to find")
        run(settings, events_config, reporter)
    reporter.info(
        f"\ndemo done: the data is in {DEMO_DATABASE} (schema mixpanel_data: mixpanel_events, anomalies, "
        "incidents, alert_notifications).\nNext: copy .env.example to .env, set MIXPANEL_PROJECT_ID and a "
        "service account (MIXPANEL_SERVICE_ACCOUNT_USERNAME/SECRET), list your events in "
        "config/events_config.json, set SLACK_WEBHOOK_URL or SLACK_BOT_TOKEN, then `mixpanel-alerts check` "
        "and `just run`."
    )
