"""Slack messages for incidents: Block Kit blocks plus the top-level ``text`` fallback.

Everything taken from event data (event names, property values, ids) is escaped for Slack
mrkdwn (``&``, ``<``, ``>``), so nothing in the data can mention ``@channel``, a user, or plant a
link. Block Kit's limits are respected by truncating, never by failing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_FIELD_TEXT = 2000
MAX_FALLBACK_TEXT = 3000
SPARK_CHARS = "▁▂▃▄▅▆▇█"
# Properties that say most about an event, shown first in samples; then the event's own (non-$) ones.
TELLING_PROPERTIES = ("distinct_id", "$current_url", "$os", "$browser", "$city", "mp_country_code", "app_version")
# custom properties whose names contain these go first
TELLING_WORDS = ("error", "exception", "message", "code", "reason", "status", "fail")
MAX_SAMPLE_PROPERTIES = 8
MAX_PROPERTY_CHARS = 120


@dataclasses.dataclass(frozen=True)
class Incident:
    incident_id: str
    event_name: str
    started_at: datetime
    first_anomalous_minute: datetime
    last_anomalous_minute: datetime
    ended_at: datetime | None
    status: str
    peak_count: int
    total_events: int
    alert_threshold: int
    time_window_minutes: int
    alert_channel: str
    anomalous_minutes: int = 1


@dataclasses.dataclass(frozen=True)
class Investigation:
    """Where to look next: a console link (BigQuery) and/or the SQL to run (DuckDB)."""

    sql: str
    url: str | None = None


@dataclasses.dataclass(frozen=True)
class Message:
    text: str
    blocks: list[dict[str, Any]]


def escape(value: object) -> str:
    """Escape text from event data for mrkdwn: Slack's three control characters."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sparkline(counts: Sequence[int]) -> str:
    if not counts:
        return ""
    top = max(counts)
    if top == 0:
        return SPARK_CHARS[0] * len(counts)
    return "".join(
        SPARK_CHARS[min(len(SPARK_CHARS) - 1, round(count / top * (len(SPARK_CHARS) - 1)))] for count in counts
    )


def _minute(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def _sample_lines(sample: dict[str, Any]) -> str:
    properties = sample.get("properties") or {}
    if isinstance(properties, str):
        try:
            properties = json.loads(properties)
        except ValueError:
            properties = {}
    # the event's own properties first (an error message says more than a browser), then the usual ones
    own = [key for key in properties if not key.startswith(("$", "mp_")) and key not in TELLING_PROPERTIES]
    own = [key for key in own if key not in ("time", "distinct_id")]
    own.sort(key=lambda key: not any(word in key.lower() for word in TELLING_WORDS))
    keys = own[:4]
    keys += [key for key in TELLING_PROPERTIES if key in properties]
    shown = []
    for key in keys[:MAX_SAMPLE_PROPERTIES]:
        value = properties[key]
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        shown.append(f"`{escape(key)}`: {escape(truncate(text, MAX_PROPERTY_CHARS))}")
    when = sample.get("event_at")
    header = f"• {_minute(when) if isinstance(when, datetime) else escape(when)}"
    return header + ("\n   " + "  ·  ".join(shown) if shown else "")


def firing_message(
    incident: Incident,
    *,
    minute_counts: Sequence[int],
    samples: Sequence[dict[str, Any]],
    investigation: Investigation,
    delivered_to: str | None = None,
) -> Message:
    """The one firing message of an incident. ``delivered_to`` is the webhook's channel note."""
    event = escape(incident.event_name)
    window = f"{incident.time_window_minutes} min" if incident.time_window_minutes > 1 else "1 min"
    text = truncate(
        f":rotating_light: {event}: {incident.peak_count} events in {window} "
        f"(threshold {incident.alert_threshold}) since {_minute(incident.started_at)}",
        MAX_FALLBACK_TEXT,
    )
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": truncate(f"🚨 {incident.event_name}", MAX_HEADER_TEXT),
                "emoji": True,
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": truncate(
                    f"*{event}* had *{incident.peak_count}* events in {window}, over its threshold of "
                    f"*{incident.alert_threshold}* ({incident.total_events} events during the incident).",
                    MAX_SECTION_TEXT,
                ),
            },
            "fields": [
                {"type": "mrkdwn", "text": f"*Started*\n{_minute(incident.started_at)}"},
                {
                    "type": "mrkdwn",
                    "text": f"*Status*\n{'over at ' + _minute(incident.ended_at) if incident.ended_at else 'ongoing'}",
                },
                {"type": "mrkdwn", "text": f"*Anomalous minutes*\n{incident.anomalous_minutes}"},
                {"type": "mrkdwn", "text": truncate(f"*Channel*\n{escape(incident.alert_channel)}", MAX_FIELD_TEXT)},
            ],
        },
    ]
    if minute_counts:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": truncate(
                        f"*Last {len(minute_counts)} minutes* (max {max(minute_counts)}/min)\n"
                        f"`{sparkline(minute_counts)}`",
                        MAX_SECTION_TEXT,
                    ),
                },
            }
        )
    if samples:
        lines = "\n".join(_sample_lines(sample) for sample in samples[:3])
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": truncate(f"*Sample events*\n{lines}", MAX_SECTION_TEXT)},
            }
        )
    investigate = f"*Investigate*\n```{truncate(investigation.sql, MAX_SECTION_TEXT - 40)}```"
    if investigation.url:
        investigate = f"*Investigate*: <{investigation.url}|open the query>\n```{truncate(investigation.sql, 2500)}```"
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": truncate(investigate, MAX_SECTION_TEXT)}})
    context = f"incident `{escape(incident.incident_id)}`"
    if delivered_to:
        context += f" · rule channel {escape(incident.alert_channel)} (sent through {escape(delivered_to)})"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(context, MAX_FIELD_TEXT)}]})
    return Message(text=text, blocks=blocks[:MAX_BLOCKS])


def resolved_message(incident: Incident) -> Message:
    event = escape(incident.event_name)
    text = truncate(
        f":white_check_mark: resolved: {event} is back under its threshold of {incident.alert_threshold} "
        f"since {_minute(incident.ended_at)} (peak {incident.peak_count}).",
        MAX_FALLBACK_TEXT,
    )
    return Message(text=text, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])
