"""The events configuration: one declarative model (pydantic) that validates it, documents it and
emits its JSON Schema (``config/events_config.schema.json``, which editors use).

Precedence: ``EVENTS_CONFIG`` (a JSON string), then ``EVENTS_CONFIG_GCS_PATH`` (``gs://bucket/path``),
then ``EVENTS_CONFIG_PATH`` (a file). Every problem is reported with the event, its index and the key.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .config import ConfigError, Settings

# The one channel rule: the dbt test of `alert_rules` gets this pattern too (var slack_channel_pattern)
CHANNEL_PATTERN = re.compile(r"^(#[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{6,})$")
MAX_WINDOW_MINUTES = 24 * 60
# The rules table's columns are 64-bit integers (BigQuery INT64, DuckDB BIGINT)
MAX_INTEGER = 2**63 - 1
# Text limits: event names far longer than Mixpanel's own, descriptions a person reads in an alert
MAX_TEXT_CHARS = 1000
SCHEMA_FILE = "events_config.schema.json"

Count = Annotated[int, Field(gt=0, le=MAX_INTEGER)]


class EventRule(BaseModel):
    """One monitored event."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="Mixpanel event name, case-sensitive")
    id: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        description=(
            "the rule's identity, unique in the file (default: name); several rules may watch one event when "
            "their ids differ"
        ),
    )
    enabled: bool = Field(description="false: neither collected nor monitored")
    alert_threshold: Count | None = Field(
        None,
        description=(
            "the most events allowed in one window; more is an anomaly (required by the threshold detector; "
            "with the baseline detector optional, a hard ceiling)"
        ),
    )
    alert_channel: str = Field(
        pattern=CHANNEL_PATTERN.pattern,
        description="Slack channel: '#lower-case-name' or a channel id (C…, G…, D…)",
    )
    time_window_minutes: Annotated[int, Field(gt=0, le=MAX_WINDOW_MINUTES)] = Field(
        description="window length W in whole minutes: the window of minute m is the W minutes ending with m"
    )
    cooldown_minutes: Count = Field(5, description="anomalous minutes less than this apart form one incident")
    detector: Literal["threshold", "baseline"] = Field(
        "threshold",
        description=(
            "threshold: the window's count against alert_threshold; baseline: against the count expected at "
            "this time of day and day of week, learned from the event's own history"
        ),
    )
    direction: Literal["up", "down", "both"] = Field(
        "up", description="baseline: which surprises alert: more events than expected (up), fewer (down), or both"
    )
    sensitivity: Literal["low", "medium", "high"] = Field(
        "medium", description="baseline: how far outside its usual range a window must be to alert; high alerts sooner"
    )
    min_events: Count | None = Field(
        None, description="the fewest events allowed in one window; fewer is a drop anomaly (either detector)"
    )
    description: str = Field("", max_length=MAX_TEXT_CHARS, description="free text shown with alerts")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip() or value != value.strip():
            raise ValueError("must be a non-empty event name without surrounding spaces")
        return _storable(value)

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        return _storable(value)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or value != value.strip()):
            raise ValueError("must be a non-empty rule id without surrounding spaces")
        return None if value is None else _storable(value)

    @property
    def rule_id(self) -> str:
        """The rule's identity: its ``id``, else its event's name."""
        return self.id if self.id is not None else self.name

    @model_validator(mode="after")
    def _detector_keys(self) -> EventRule:
        given = self.model_fields_set
        if self.detector == "threshold":
            if self.alert_threshold is None and self.min_events is None:
                raise _KeyError("alert_threshold", "missing (the threshold detector needs it, or min_events)")
            for key in ("direction", "sensitivity"):
                if key in given:
                    raise _KeyError(key, 'applies to "detector": "baseline" only')
        if self.min_events is not None and self.alert_threshold is not None and self.min_events > self.alert_threshold:
            message = f"{self.min_events} is above alert_threshold {self.alert_threshold}: every window would alert"
            raise _KeyError("min_events", message)
        return self

    @field_validator("alert_channel", mode="before")
    @classmethod
    def _channel(cls, value: Any) -> Any:
        # fullmatch: the pattern's `$` alone would let a trailing line break through
        if isinstance(value, str) and not CHANNEL_PATTERN.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a Slack channel; use '#name' (lower case) or a channel id such as C0123456789"
            )
        return value


class EventsDocument(BaseModel):
    """The events configuration file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str | None = Field(None, alias="$schema", description="the JSON Schema this file follows")
    events: list[EventRule] = Field(description="the monitored events")


class _KeyError(ValueError):
    """A rule-level problem that belongs to one key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _storable(value: str) -> str:
    """Text the warehouse and Slack can hold: no NUL, valid Unicode (JSON's ``\\ud800`` escape is a
    lone surrogate, which no UTF-8 file or table can store)."""
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("holds a lone surrogate escape (\\ud800-\\udfff), not a character") from None
    return value


def events_config_schema() -> dict[str, Any]:
    """The JSON Schema of the events configuration (``config/events_config.schema.json``)."""
    schema = EventsDocument.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


@dataclasses.dataclass(frozen=True)
class EventsConfig:
    events: tuple[EventRule, ...]
    source: str

    @property
    def enabled(self) -> list[EventRule]:
        return [rule for rule in self.events if rule.enabled]

    @property
    def enabled_names(self) -> list[str]:
        """The enabled rules' events, each once (several rules may watch one event)."""
        return list(dict.fromkeys(rule.name for rule in self.enabled))

    def rule(self, rule_id: str) -> EventRule | None:
        return next((rule for rule in self.events if rule.rule_id == rule_id), None)

    def rules_of_event(self, name: str) -> list[EventRule]:
        return [rule for rule in self.events if rule.name == name]


def rule_label(event_name: str, rule_id: str | None) -> str:
    """How a rule is named to people: its event, and its id when it has one of its own
    (``checkout_completed (checkout_burst)``)."""
    return event_name if not rule_id or rule_id == event_name else f"{event_name} ({rule_id})"


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
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise ConfigError(f'{source}: expected an object with one key, "events", holding a list of events')
    unknown = sorted(set(document) - {"events", "$schema"})
    if unknown:
        raise ConfigError(f'{source}: unknown key {unknown[0]!r}: the file holds "events" (and "$schema")')
    rules = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(document["events"]):
        rule = _parse_rule(entry, index, source)
        if rule.rule_id in seen:
            first = seen[rule.rule_id]
            raise ConfigError(
                f"{source}: event {rule.name!r} (events[{index}]) key 'id': duplicate rule id {rule.rule_id!r} "
                f"(events[{first}] has it; a rule's id is its name unless it gives one): give each rule of one "
                "event its own id"
            )
        seen[rule.rule_id] = index
        rules.append(rule)
    return EventsConfig(events=tuple(rules), source=source)


def _parse_rule(entry: Any, index: int, source: str) -> EventRule:
    where = f"{source}: events[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: each event must be a JSON object")
    name = entry.get("name")
    if isinstance(name, str) and name.strip():
        where = f"{source}: event {name!r} (events[{index}])"
    try:
        return EventRule.model_validate(entry)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=_error_order)
        error = errors[0]
        cause = (error.get("ctx") or {}).get("error")
        key = cause.key if isinstance(cause, _KeyError) else error["loc"][0]
        raise ConfigError(f"{where} key {key!r}: {_rule_message(error)}") from None


def _error_order(error: Any) -> tuple[int, int]:
    """Unknown keys first, then missing ones, then the rest in the model's order."""
    fields = list(EventRule.model_fields)
    kind = {"extra_forbidden": 0, "missing": 1}.get(error["type"], 2)
    key = error["loc"][0] if error["loc"] else ""
    return kind, fields.index(key) if key in fields else len(fields)


def _rule_message(error: Any) -> str:
    value, kind, ctx = error.get("input"), error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"unknown key (known keys: {', '.join(EventRule.model_fields)})"
    if kind == "missing":
        return "missing"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer, got {json.dumps(value)}"
    if kind == "bool_type":
        return f"must be a boolean (true or false), got {json.dumps(value)}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {json.dumps(value)}"
    if kind == "string_type":
        return f"must be a string, got {json.dumps(value)}"
    if kind == "greater_than":
        return f"must be a positive integer, got {value}"
    if kind == "less_than_equal" and ctx.get("le") == MAX_WINDOW_MINUTES:
        return f"at most {MAX_WINDOW_MINUTES} (one day), got {value}"
    if kind == "less_than_equal":
        return f"at most {MAX_INTEGER} (a 64-bit integer), got {value}"
    if kind == "string_too_long":
        return f"at most {ctx.get('max_length')} characters, got {len(value)}"
    if kind == "string_unicode":
        return "holds a lone surrogate escape (\\ud800-\\udfff), not a character"
    if kind in ("string_too_short",):
        return "must be a non-empty event name without surrounding spaces"
    if kind == "value_error":
        return str(ctx["error"])
    return str(error["msg"])
