"""The events configuration (the seed's JSON format): load and validate.

Precedence: ``EVENTS_CONFIG`` (a JSON string), then ``EVENTS_CONFIG_GCS_PATH`` (``gs://bucket/path``),
then ``EVENTS_CONFIG_PATH`` (a file). Every problem is reported with the event and the key.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from .config import ConfigError, Settings

REQUIRED_KEYS = {
    "name": str,
    "enabled": bool,
    "alert_threshold": int,
    "alert_channel": str,
    "time_window_minutes": int,
}
OPTIONAL_KEYS: dict[str, tuple[type, Any]] = {
    # anomalous minutes of one event less than this apart form one incident
    "cooldown_minutes": (int, 5),
    # free text shown in alerts
    "description": (str, ""),
}
CHANNEL_PATTERN = re.compile(r"^(#[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{6,})$")
MAX_WINDOW_MINUTES = 24 * 60
# The rules table's columns are 64-bit integers (BigQuery INT64, DuckDB BIGINT)
MAX_INTEGER = 2**63 - 1
# Text limits: event names far longer than Mixpanel's own, descriptions a person reads in an alert
MAX_TEXT_CHARS = {"name": 1000, "description": 1000}


@dataclasses.dataclass(frozen=True)
class EventRule:
    name: str
    enabled: bool
    alert_threshold: int
    alert_channel: str
    time_window_minutes: int
    cooldown_minutes: int = 5
    description: str = ""


@dataclasses.dataclass(frozen=True)
class EventsConfig:
    events: tuple[EventRule, ...]
    source: str

    @property
    def enabled(self) -> list[EventRule]:
        return [rule for rule in self.events if rule.enabled]

    @property
    def enabled_names(self) -> list[str]:
        return [rule.name for rule in self.enabled]


def load_events_config(settings: Settings) -> EventsConfig:
    if settings.events_config:
        return parse_events_config(settings.events_config, "EVENTS_CONFIG")
    if settings.events_config_gcs_path:
        return parse_events_config(read_gcs_text(settings.events_config_gcs_path), settings.events_config_gcs_path)
    path = settings.events_config_path
    if not path.is_file():
        raise ConfigError(
            f"EVENTS_CONFIG_PATH: no events configuration at {path}; create it (see config/events_config.json "
            "in the project) or set EVENTS_CONFIG"
        )
    return parse_events_config(path.read_text(encoding="utf-8"), str(path))


def read_gcs_text(gcs_path: str) -> str:
    match = re.fullmatch(r"gs://([^/]+)/(.+)", gcs_path)
    if not match:
        raise ConfigError(f"EVENTS_CONFIG_GCS_PATH={gcs_path!r} must look like gs://bucket/path/events_config.json")
    from google.api_core import exceptions as gexc
    from google.cloud import storage  # type: ignore[attr-defined]

    try:
        blob = storage.Client().bucket(match.group(1)).blob(match.group(2))
        return blob.download_as_text()
    except gexc.NotFound:
        raise ConfigError(f"EVENTS_CONFIG_GCS_PATH={gcs_path}: no such object") from None
    except gexc.Forbidden:
        raise ConfigError(
            f"EVENTS_CONFIG_GCS_PATH={gcs_path}: access denied; grant roles/storage.objectViewer on the bucket"
        ) from None


def parse_events_config(text: str, source: str) -> EventsConfig:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(document, dict) or set(document) != {"events"} or not isinstance(document["events"], list):
        raise ConfigError(f'{source}: expected an object with one key, "events", holding a list of events')
    rules = []
    seen: set[str] = set()
    for index, entry in enumerate(document["events"]):
        rule = _parse_rule(entry, index, source)
        if rule.name in seen:
            raise ConfigError(f"{source}: event {rule.name!r} (events[{index}]) key 'name': duplicate event name")
        seen.add(rule.name)
        rules.append(rule)
    return EventsConfig(events=tuple(rules), source=source)


def _parse_rule(entry: Any, index: int, source: str) -> EventRule:
    where = f"{source}: events[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: each event must be a JSON object")
    name = entry.get("name")
    if isinstance(name, str) and name.strip():
        where = f"{source}: event {name!r} (events[{index}])"
    unknown = sorted(set(entry) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        known = ", ".join([*REQUIRED_KEYS, *OPTIONAL_KEYS])
        raise ConfigError(f"{where} key {unknown[0]!r}: unknown key (known keys: {known})")
    values: dict[str, Any] = {}
    for key, kind in REQUIRED_KEYS.items():
        if key not in entry:
            raise ConfigError(f"{where} key {key!r}: missing")
        values[key] = _typed(entry[key], kind, where, key)
    for key, (kind, default) in OPTIONAL_KEYS.items():
        values[key] = _typed(entry[key], kind, where, key) if key in entry else default
    if not values["name"].strip() or values["name"] != values["name"].strip():
        raise ConfigError(f"{where} key 'name': must be a non-empty event name without surrounding spaces")
    for key in ("alert_threshold", "time_window_minutes", "cooldown_minutes"):
        if values[key] <= 0:
            raise ConfigError(f"{where} key {key!r}: must be a positive integer, got {values[key]}")
        if values[key] > MAX_INTEGER:
            raise ConfigError(f"{where} key {key!r}: at most {MAX_INTEGER} (a 64-bit integer), got {values[key]}")
    for key, limit in MAX_TEXT_CHARS.items():
        _check_text(values[key], limit, where, key)
    if values["time_window_minutes"] > MAX_WINDOW_MINUTES:
        raise ConfigError(f"{where} key 'time_window_minutes': at most {MAX_WINDOW_MINUTES} (one day)")
    if not CHANNEL_PATTERN.fullmatch(values["alert_channel"]):
        raise ConfigError(
            f"{where} key 'alert_channel': {values['alert_channel']!r} is not a Slack channel; "
            "use '#name' (lower case) or a channel id such as C0123456789"
        )
    return EventRule(**values)


def _check_text(value: str, limit: int, where: str, key: str) -> None:
    """Text the warehouse and Slack can hold: not too long, no NUL, valid Unicode (JSON's
    ``\\ud800`` escape is a lone surrogate, which no UTF-8 file or table can store)."""
    if len(value) > limit:
        raise ConfigError(f"{where} key {key!r}: at most {limit} characters, got {len(value)}")
    if "\x00" in value:
        raise ConfigError(f"{where} key {key!r}: must not contain the NUL character (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(
            f"{where} key {key!r}: holds a lone surrogate escape (\\ud800-\\udfff), not a character"
        ) from None


def _typed(value: Any, kind: type, where: str, key: str) -> Any:
    # bool is an int in Python; JSON true must not pass as a threshold of 1
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where} key {key!r}: must be an integer, got {json.dumps(value)}")
    if kind is not int and not isinstance(value, kind):
        raise ConfigError(f"{where} key {key!r}: must be a {_json_type(kind)}, got {json.dumps(value)}")
    return value


def _json_type(kind: type) -> str:
    return {str: "string", bool: "boolean (true or false)", int: "integer"}[kind]
