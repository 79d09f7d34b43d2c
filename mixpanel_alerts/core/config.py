"""The settings: one declarative model of the environment variables, the one place they are read.

Values come from the process environment and from a ``.env`` file in the working directory (the
process environment wins). ``load_dotenv`` puts the file's values into the process environment at
start, so dlt's own ``SOURCES__…``/``DESTINATION__…`` variables and dbt's ``env_var()`` see them
too. Everything downstream receives typed arguments, never ``os.environ``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dotenv
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic import model_validator as model_check

from .times import utc

REGIONS = ("us", "eu", "in")
WAREHOUSES = ("duckdb", "bigquery")


class ConfigError(Exception):
    """Bad configuration: the message names the setting and how to fix it (exit code 2)."""


def _positive_int(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, str):
        return value
    name = _alias(info)
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a whole number; set it to a positive integer") from None
    if number <= 0:
        raise ValueError(f"{name}={value!r} must be a positive integer")
    return number


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


PositiveInt = Annotated[int, BeforeValidator(_positive_int)]


def _alias(info: ValidationInfo) -> str:
    field = Settings.model_fields[info.field_name] if info.field_name else None
    return str(field.alias) if field and field.alias else str(info.field_name)


class Settings(BaseModel):
    """Every setting, named by its environment variable (the alias); ``load_settings`` fills it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    project_id: str | None = Field(None, alias="MIXPANEL_PROJECT_ID")
    service_account_username: str | None = Field(None, alias="MIXPANEL_SERVICE_ACCOUNT_USERNAME", repr=False)
    service_account_secret: str | None = Field(None, alias="MIXPANEL_SERVICE_ACCOUNT_SECRET", repr=False)
    api_secret: str | None = Field(None, alias="MIXPANEL_API_SECRET", repr=False)
    api_secret_name: str | None = Field(None, alias="MIXPANEL_API_SECRET_NAME")
    # where Secret Manager is reached; only for tests against a local server
    secret_manager_endpoint: str | None = Field(None, alias="SECRET_MANAGER_ENDPOINT")
    # a service-account key given to dlt as JSON (DESTINATION__BIGQUERY__CREDENTIALS); dbt and the
    # checks use it too, else Application Default Credentials
    gcp_service_account_info: dict[str, Any] | None = Field(
        None, alias="DESTINATION__BIGQUERY__CREDENTIALS", repr=False
    )
    region: Annotated[Literal["us", "eu", "in"], BeforeValidator(_lower)] = Field("us", alias="MIXPANEL_REGION")
    export_url: str | None = Field(None, alias="MIXPANEL_EXPORT_URL")
    project_timezone: str = Field("UTC", alias="MIXPANEL_PROJECT_TIMEZONE")
    # the clock baselines learn by (hour of day, weekday or weekend) and alerts speak in; unset:
    # the project's (see detection_timezone)
    detection_timezone_setting: str | None = Field(None, alias="DETECTION_TIMEZONE")
    late_arrival_days: PositiveInt = Field(5, alias="MIXPANEL_LATE_ARRIVAL_DAYS")
    start_date: date | None = Field(None, alias="MIXPANEL_START_DATE")
    warehouse: Annotated[Literal["duckdb", "bigquery"], BeforeValidator(_lower)] = Field("duckdb", alias="WAREHOUSE")
    duckdb_path: Path = Field(Path("data/mixpanel.duckdb"), alias="DUCKDB_PATH")
    gcp_project_id: str | None = Field(None, alias="GCP_PROJECT_ID")
    dataset: str = Field("mixpanel_data", alias="BIGQUERY_DATASET", pattern=r"^[A-Za-z0-9_]+$")
    table: str = Field("mixpanel_events", alias="BIGQUERY_TABLE", pattern=r"^[A-Za-z0-9_]+$")
    location: str = Field("US", alias="BIGQUERY_LOCATION")
    slack_webhook_url: str | None = Field(None, alias="SLACK_WEBHOOK_URL", repr=False)
    slack_bot_token: str | None = Field(None, alias="SLACK_BOT_TOKEN", repr=False)
    slack_api_url: str = Field("https://slack.com/api/", alias="SLACK_API_URL")
    events_config: str | None = Field(None, alias="EVENTS_CONFIG")
    events_config_gcs_path: str | None = Field(None, alias="EVENTS_CONFIG_GCS_PATH")
    events_config_path: Path = Field(Path("config/events_config.json"), alias="EVENTS_CONFIG_PATH")
    alert_lookback_minutes: PositiveInt = Field(60, alias="ALERT_LOOKBACK_MINUTES")
    # how long a run waits for another process (a notebook, the DuckDB CLI) to close the DuckDB file
    duckdb_busy_timeout_seconds: PositiveInt = Field(60, alias="DUCKDB_BUSY_TIMEOUT_SECONDS")
    # how long a Slack request may take before its answer counts as lost
    slack_timeout_seconds: PositiveInt = Field(30, alias="SLACK_TIMEOUT_SECONDS")
    # the most the alert step spends on Slack in one run (waits for Retry-After included); no message
    # starts after it, and what is left stays pending for the next run
    alert_step_timeout_seconds: PositiveInt = Field(120, alias="ALERT_STEP_TIMEOUT_SECONDS")
    # the moment detection and the alert step run as of (ISO 8601, UTC unless it says): tests pin it
    # so that "a spike 2 minutes ago" stays 2 minutes ago however slow the machine; unset: now
    detection_now: datetime | None = Field(None, alias="DETECTION_NOW")
    # where the bot posts alerts about the pipeline itself; unset: the webhook's channel (through the
    # webhook), or with a bot token alone the first enabled rule's channel
    ops_alert_channel: str | None = Field(None, alias="OPS_ALERT_CHANNEL")
    # called (GET) after every successful run or detect: a dead-man's switch for an outside monitor
    heartbeat_url: str | None = Field(None, alias="HEARTBEAT_URL", repr=False)
    log_format: Annotated[Literal["text", "json"], BeforeValidator(_lower)] = Field("text", alias="LOG_FORMAT")
    # more new alerts than this for one channel in one run become one digest message
    alert_digest_threshold: PositiveInt = Field(5, alias="ALERT_DIGEST_THRESHOLD")
    # the pipeline is unhealthy when collect has not succeeded for this long, or the newest collected
    # event was processed this long ago while the rules expect traffic
    pipeline_stale_minutes: PositiveInt = Field(60, alias="PIPELINE_STALE_MINUTES")

    @field_validator("project_timezone", "detection_timezone_setting")
    @classmethod
    def _timezone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        name = "DETECTION_TIMEZONE" if info.field_name == "detection_timezone_setting" else "MIXPANEL_PROJECT_TIMEZONE"
        try:
            ZoneInfo(value)
            valid = re.fullmatch(r"[A-Za-z][A-Za-z0-9_+/-]*", value) is not None  # SQL quotes it as is
        except (ZoneInfoNotFoundError, ValueError):
            valid = False
        if not valid:
            raise ValueError(f"{name}={value!r} is not an IANA timezone (e.g. UTC, America/Los_Angeles)")
        return value

    @property
    def detection_timezone(self) -> str:
        """DETECTION_TIMEZONE, else MIXPANEL_PROJECT_TIMEZONE (UTC by default)."""
        return self.detection_timezone_setting or self.project_timezone

    @field_validator("start_date", mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"MIXPANEL_START_DATE={value!r} is not a date; use YYYY-MM-DD") from None
        return value

    @field_validator("detection_now", mode="before")
    @classmethod
    def _instant(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(
                    f"DETECTION_NOW={value!r} is not an ISO 8601 time such as 2026-12-01T09:30:00Z"
                ) from None
            return utc(moment)
        return value

    @field_validator("export_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"MIXPANEL_EXPORT_URL={value!r} must be an http(s) URL such as https://data.mixpanel.com")
        return value

    @field_validator("heartbeat_url")
    @classmethod
    def _heartbeat_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            # the URL itself may hold the monitor's secret token: not repeated here
            raise ValueError("HEARTBEAT_URL must be an http(s) URL, such as https://hc-ping.com/<uuid>")
        return value

    @field_validator("gcp_service_account_info", mode="before")
    @classmethod
    def _service_account_info(cls, value: Any) -> Any:
        """dlt's variable may hold a key (JSON) or other credentials; only a key serves dbt too."""
        if not isinstance(value, str):
            return value
        if not value.lstrip().startswith("{"):
            return None
        try:
            info = json.loads(value)
        except ValueError:
            raise ValueError("DESTINATION__BIGQUERY__CREDENTIALS is not valid JSON (a service-account key)") from None
        return info if isinstance(info, dict) and info.get("type") == "service_account" else None

    @field_validator("duckdb_path", "events_config_path")
    @classmethod
    def _relative_to_cwd(cls, value: Path, info: ValidationInfo) -> Path:
        value = value.expanduser()
        cwd = (info.context or {}).get("cwd")
        return value if value.is_absolute() or cwd is None else Path(cwd) / value

    @model_check(mode="after")
    def _together(self) -> Settings:
        if self.warehouse == "bigquery" and not self.gcp_project_id:
            raise ValueError("GCP_PROJECT_ID is required when WAREHOUSE=bigquery")
        for setting, needed, module in (
            ("WAREHOUSE=bigquery", self.warehouse == "bigquery", "google.cloud.bigquery"),
            ("EVENTS_CONFIG_GCS_PATH", bool(self.events_config_gcs_path), "google.cloud.storage"),
            ("MIXPANEL_API_SECRET_NAME", bool(self.api_secret_name), "google.cloud.secretmanager_v1"),
        ):
            if needed and not _installed(module):
                raise ValueError(f"{setting} needs the bigquery extra: pip install 'mixpanel-alerts[bigquery]'")
        username, secret = self.service_account_username, self.service_account_secret
        if bool(username) != bool(secret) and not (username and self.api_secret_name):
            missing = "MIXPANEL_SERVICE_ACCOUNT_SECRET" if username else "MIXPANEL_SERVICE_ACCOUNT_USERNAME"
            raise ValueError(f"{missing} is not set: a service account needs both its username and its secret")
        return self

    @property
    def uses_legacy_secret(self) -> bool:
        return not (self.service_account_username and self.service_account_secret) and bool(
            self.api_secret or self.api_secret_name
        )

    def secrets(self) -> list[str]:
        """Values that must never appear in output."""
        key = (self.gcp_service_account_info or {}).get("private_key")
        values = [
            key, self.service_account_secret, self.api_secret, self.slack_webhook_url, self.slack_bot_token,
            self.heartbeat_url,
        ]  # fmt: skip
        return [value for value in values if value]

    def now(self) -> datetime:
        """The moment detection runs as of: DETECTION_NOW, or the clock."""
        return self.detection_now or datetime.now(UTC)


class Redactor:
    """Replaces every known secret in text before it is shown or stored."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = sorted((secret for secret in secrets if len(secret) >= 4), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def load_dotenv(cwd: Path | None = None) -> None:
    """Put the working directory's ``.env`` into the process environment, under what is set there
    already: dlt's and dbt's own variables in the file then work as if exported."""
    path = (cwd or Path.cwd()) / ".env"
    if path.is_file():
        dotenv.load_dotenv(path, override=False)


def read_environment(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> dict[str, str]:
    """The process environment over the working directory's ``.env``."""
    values: dict[str, str] = {}
    dotenv_path = (cwd or Path.cwd()) / ".env"
    if dotenv_path.is_file():
        values.update({key: value for key, value in dotenv.dotenv_values(dotenv_path).items() if value is not None})
    values.update(os.environ if environ is None else environ)
    return values


def load_settings(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """The settings from ``environ`` (default: the process environment) over ``cwd``'s ``.env``;
    paths are relative to ``cwd``. A ``ConfigError`` names the variable and how to fix it."""
    cwd = cwd or Path.cwd()
    aliases = {str(field.alias) for field in Settings.model_fields.values()}
    values = {key: value.strip() for key, value in read_environment(environ, cwd).items() if key in aliases}
    try:
        return Settings.model_validate({key: value for key, value in values.items() if value}, context={"cwd": cwd})
    except ValidationError as exc:
        raise ConfigError(config_message(exc)) from None


def config_message(exc: ValidationError) -> str:
    """The first problem of a settings validation, in words that name the variable."""
    error = exc.errors()[0]
    fields = {str(field.alias): field for field in Settings.model_fields.values()}
    name = str(error["loc"][0]) if error["loc"] else ""
    value = error.get("input")
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    if error["type"] == "literal_error" and name == "MIXPANEL_REGION":
        return f"{name}={value!r} is not a Mixpanel region; use one of: {', '.join(REGIONS)}"
    if error["type"] == "literal_error" and name == "WAREHOUSE":
        return f"{name}={value!r} is not supported; use duckdb or bigquery"
    if error["type"] == "literal_error" and name == "LOG_FORMAT":
        return f"{name}={value!r} is not supported; use text or json"
    if error["type"] == "string_pattern_mismatch":
        return f"{name}={value!r} may contain only letters, digits and underscores"
    if name in fields:
        return f"{name}={value!r}: {error['msg']}"
    return str(error["msg"])
