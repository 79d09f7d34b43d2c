"""The one place where the contract's environment variables are read and validated.

Values come from the process environment and from a ``.env`` file in the working directory (the
process environment wins). Everything downstream receives typed arguments, never ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

REGIONS = ("us", "eu", "in")
WAREHOUSES = ("duckdb", "bigquery")


class ConfigError(Exception):
    """Bad configuration: the message names the setting and how to fix it (exit code 2)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    project_id: str | None = None
    service_account_username: str | None = dataclasses.field(default=None, repr=False)
    service_account_secret: str | None = dataclasses.field(default=None, repr=False)
    api_secret: str | None = dataclasses.field(default=None, repr=False)
    api_secret_name: str | None = None
    # where Secret Manager is reached; only for tests against a local server
    secret_manager_endpoint: str | None = None
    # a service-account key given to dlt as JSON (DESTINATION__BIGQUERY__CREDENTIALS); dbt and the
    # checks use it too, else Application Default Credentials
    gcp_service_account_info: dict[str, str] | None = dataclasses.field(default=None, repr=False)
    region: str = "us"
    export_url: str | None = None
    project_timezone: str = "UTC"
    late_arrival_days: int = 5
    start_date: date | None = None
    warehouse: str = "duckdb"
    duckdb_path: Path = Path("data/mixpanel.duckdb")
    gcp_project_id: str | None = None
    dataset: str = "mixpanel_data"
    table: str = "mixpanel_events"
    location: str = "US"
    slack_webhook_url: str | None = dataclasses.field(default=None, repr=False)
    slack_bot_token: str | None = dataclasses.field(default=None, repr=False)
    slack_api_url: str = "https://slack.com/api/"
    events_config: str | None = None
    events_config_gcs_path: str | None = None
    events_config_path: Path = Path("config/events_config.json")
    alert_lookback_minutes: int = 60
    # how long a run waits for another process (a notebook, the DuckDB CLI) to close the DuckDB file
    duckdb_busy_timeout_seconds: int = 60
    # how long a Slack request may take before its answer counts as lost
    slack_timeout_seconds: int = 30

    @property
    def uses_legacy_secret(self) -> bool:
        return not (self.service_account_username and self.service_account_secret) and bool(
            self.api_secret or self.api_secret_name
        )

    def secrets(self) -> list[str]:
        """Values that must never appear in output."""
        key = (self.gcp_service_account_info or {}).get("private_key")
        values = [
            key,
            self.service_account_secret,
            self.api_secret,
            self.slack_webhook_url,
            self.slack_bot_token,
        ]
        return [value for value in values if value]


def read_environment(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> dict[str, str]:
    """The process environment over the working directory's ``.env``."""
    cwd = cwd or Path.cwd()
    values: dict[str, str] = {}
    dotenv = cwd / ".env"
    if dotenv.is_file():
        values.update({key: value for key, value in dotenv_values(dotenv).items() if value is not None})
    values.update(os.environ if environ is None else environ)
    return values


def load_settings(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    cwd = cwd or Path.cwd()
    env = {key: value.strip() for key, value in read_environment(environ, cwd).items()}

    def text(name: str) -> str | None:
        return env.get(name) or None

    def positive_int(name: str, default: int) -> int:
        raw = text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number; set it to a positive integer") from None
        if value <= 0:
            raise ConfigError(f"{name}={raw!r} must be a positive integer")
        return value

    region = (text("MIXPANEL_REGION") or "us").lower()
    if region not in REGIONS:
        raise ConfigError(f"MIXPANEL_REGION={region!r} is not a Mixpanel region; use one of: {', '.join(REGIONS)}")
    project_timezone = text("MIXPANEL_PROJECT_TIMEZONE") or "UTC"
    try:
        ZoneInfo(project_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"MIXPANEL_PROJECT_TIMEZONE={project_timezone!r} is not an IANA timezone (e.g. UTC, America/Los_Angeles)"
        ) from None
    start_date = None
    if raw_start := text("MIXPANEL_START_DATE"):
        try:
            start_date = date.fromisoformat(raw_start)
        except ValueError:
            raise ConfigError(f"MIXPANEL_START_DATE={raw_start!r} is not a date; use YYYY-MM-DD") from None
    warehouse = (text("WAREHOUSE") or "duckdb").lower()
    if warehouse not in WAREHOUSES:
        raise ConfigError(f"WAREHOUSE={warehouse!r} is not supported; use duckdb or bigquery")
    if warehouse == "bigquery" and not text("GCP_PROJECT_ID"):
        raise ConfigError("GCP_PROJECT_ID is required when WAREHOUSE=bigquery")
    if (export_url := text("MIXPANEL_EXPORT_URL")) and not export_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"MIXPANEL_EXPORT_URL={export_url!r} must be an http(s) URL such as https://data.mixpanel.com"
        )
    username, secret = text("MIXPANEL_SERVICE_ACCOUNT_USERNAME"), text("MIXPANEL_SERVICE_ACCOUNT_SECRET")
    if bool(username) != bool(secret) and not (username and text("MIXPANEL_API_SECRET_NAME")):
        missing = "MIXPANEL_SERVICE_ACCOUNT_SECRET" if username else "MIXPANEL_SERVICE_ACCOUNT_USERNAME"
        raise ConfigError(f"{missing} is not set: a service account needs both its username and its secret")

    def path(name: str, default: str) -> Path:
        value = Path(text(name) or default).expanduser()
        return value if value.is_absolute() else cwd / value

    for name in ("BIGQUERY_DATASET", "BIGQUERY_TABLE"):
        value = text(name)
        if value and not value.replace("_", "").isalnum():
            raise ConfigError(f"{name}={value!r} may contain only letters, digits and underscores")

    return Settings(
        project_id=text("MIXPANEL_PROJECT_ID"),
        service_account_username=username,
        service_account_secret=secret,
        api_secret=text("MIXPANEL_API_SECRET"),
        api_secret_name=text("MIXPANEL_API_SECRET_NAME"),
        secret_manager_endpoint=text("SECRET_MANAGER_ENDPOINT"),
        gcp_service_account_info=_service_account_info(text("DESTINATION__BIGQUERY__CREDENTIALS")),
        region=region,
        export_url=export_url,
        project_timezone=project_timezone,
        late_arrival_days=positive_int("MIXPANEL_LATE_ARRIVAL_DAYS", 5),
        start_date=start_date,
        warehouse=warehouse,
        duckdb_path=path("DUCKDB_PATH", "data/mixpanel.duckdb"),
        gcp_project_id=text("GCP_PROJECT_ID"),
        dataset=text("BIGQUERY_DATASET") or "mixpanel_data",
        table=text("BIGQUERY_TABLE") or "mixpanel_events",
        location=text("BIGQUERY_LOCATION") or "US",
        slack_webhook_url=text("SLACK_WEBHOOK_URL"),
        slack_bot_token=text("SLACK_BOT_TOKEN"),
        slack_api_url=text("SLACK_API_URL") or "https://slack.com/api/",
        events_config=text("EVENTS_CONFIG"),
        events_config_gcs_path=text("EVENTS_CONFIG_GCS_PATH"),
        events_config_path=path("EVENTS_CONFIG_PATH", "config/events_config.json"),
        alert_lookback_minutes=positive_int("ALERT_LOOKBACK_MINUTES", 60),
        duckdb_busy_timeout_seconds=positive_int("DUCKDB_BUSY_TIMEOUT_SECONDS", 60),
        slack_timeout_seconds=positive_int("SLACK_TIMEOUT_SECONDS", 30),
    )


def _service_account_info(raw: str | None) -> dict[str, str] | None:
    if not raw or not raw.lstrip().startswith("{"):
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        raise ConfigError("DESTINATION__BIGQUERY__CREDENTIALS is not valid JSON (a service-account key)") from None
    return info if isinstance(info, dict) and info.get("type") == "service_account" else None
