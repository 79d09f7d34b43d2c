"""Messages that are not one incident's alert: a digest of many (flood control), the notice that a
rule no longer monitored closes its incident, and the pipeline's own alerts (run health).

The same rules as render.py: data in mrkdwn is a code span (``code``), in the top-level ``text``
as it is with Slack's control characters escaped (``plain``); every message has a top-level
``text``; Block Kit's limits are kept by truncating.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from . import clock
from .render import (
    MAX_BLOCKS,
    MAX_FALLBACK_TEXT,
    MAX_FIELD_TEXT,
    MAX_HEADER_TEXT,
    MAX_SECTION_TEXT,
    Delay,
    Incident,
    Message,
    _delay_lines,
    code,
    entities,
    mrkdwn,
    plain,
    truncate,
    what_happened,
)

# a digest lists this many incidents in full; the rest are counted
DIGEST_LINES = 40


def _when(value: datetime | None) -> str:
    return clock.minute(value)


def _context(delay: Delay | None) -> list[dict[str, Any]]:
    lines = _delay_lines(delay)
    return [{"type": "context", "elements": [mrkdwn(" ".join(lines), MAX_FIELD_TEXT)]}] if lines else []


def size(incident: Incident) -> float:
    """How far an incident went past its band, as a multiple of it: a digest lists the biggest first."""
    if incident.kind == "drop":
        floor = incident.lower_bound or incident.expected_count or 1.0
        return (floor - incident.peak_count) / max(floor, 1.0)
    ceiling = incident.threshold or incident.expected_count or 1.0
    return (incident.peak_count - ceiling) / max(ceiling, 1.0)


def digest_message(channel: str, incidents: Sequence[Incident], *, delay: Delay | None = None) -> Message:
    """One message for many new incidents of one channel, biggest first."""
    ordered = sorted(incidents, key=lambda incident: (-size(incident), incident.event_name))
    names = ", ".join(plain(incident.event_name) for incident in ordered)
    late = "late: " if delay and delay.late else ""
    text = truncate(
        f":rotating_light: {late}{len(ordered)} new incidents in {plain(channel)}: {names}", MAX_FALLBACK_TEXT
    )
    lines = [
        f"• {code(incident.event_name)} ({incident.kind}): {what_happened(incident)}, since "
        f"{clock.local(incident.first_anomalous_minute):%H:%M} {clock.zone_label(incident.first_anomalous_minute)}"
        for incident in ordered[:DIGEST_LINES]
    ]
    if len(ordered) > DIGEST_LINES:
        lines.append(f"… and {len(ordered) - DIGEST_LINES} more")
    header = truncate(f"{len(ordered)} new incidents at once", MAX_HEADER_TEXT)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": header, "emoji": False}}]
    chunk: list[str] = []
    for line in lines:  # sections of at most MAX_SECTION_TEXT characters
        if chunk and len("\n".join([*chunk, line])) > MAX_SECTION_TEXT:
            blocks.append({"type": "section", "text": mrkdwn("\n".join(chunk))})
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append({"type": "section", "text": mrkdwn("\n".join(chunk))})
    note = (
        "Sent as one digest (more than ALERT_DIGEST_THRESHOLD new incidents in this channel in one run); "
        "each incident is in the `incidents` table, and its resolved notice follows in this thread."
    )
    blocks.append({"type": "context", "elements": [mrkdwn(note, MAX_FIELD_TEXT)]})
    blocks.extend(_context(delay))
    return Message(text=text, blocks=blocks[:MAX_BLOCKS])


# why a sent alert's incident closed while its rule is still monitored (alerts/plan.py)
VANISHED = "the data no longer shows it: events that arrived late filled it in, or its rule changed"


def closed_message(
    event_name: str, first_minute: datetime | None, reason: str, *, delay: Delay | None = None
) -> Message:
    """An incident closed without being over: its event is no longer monitored, or the data no
    longer shows it (VANISHED). ``reason`` is ours (alerts/plan.py), escaped all the same."""
    how = "no longer in the data" if reason == VANISHED else "no longer monitored"

    def sentence(name: str) -> str:
        return (
            f":white_check_mark: resolved ({how}): {name}, anomalous since "
            f"{_when(first_minute)}, is closed: {entities(reason)}. No further alert or notice follows for it."
        )

    text = truncate(sentence(plain(event_name)), MAX_FALLBACK_TEXT)
    return Message(
        text=text, blocks=[{"type": "section", "text": mrkdwn(sentence(code(event_name)))}, *_context(delay)]
    )


def pipeline_message(problems: Sequence[str], since: datetime, *, delay: Delay | None = None) -> Message:
    """The pipeline itself is unhealthy: collect failing, or data stale while rules expect traffic.
    A problem may quote an error (a server's answer): Slack's control characters are escaped."""
    text = truncate(
        f":warning: pipeline: mixpanel-alerts is unhealthy since {_when(since)}: {plain('; '.join(problems))}",
        MAX_FALLBACK_TEXT,
    )
    body = "\n".join(f"• {entities(problem)}" for problem in problems) + (
        "\nDrop alerts are held until it recovers: a drop now may be the pipeline's fault, not the events'. "
        "Run `mixpanel-alerts status` and `mixpanel-alerts check` to see why."
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Pipeline unhealthy", "emoji": False}},
        {"type": "section", "text": mrkdwn(body)},
        *_context(delay),
    ]
    return Message(text=text, blocks=blocks)


def pipeline_resolved_message(since: datetime, recovered: str, *, delay: Delay | None = None) -> Message:
    text = truncate(
        f":white_check_mark: resolved: the pipeline is healthy again ({recovered}); it was unhealthy since "
        f"{_when(since)}. Held drop alerts are sent if their drop is still there.",
        MAX_FALLBACK_TEXT,
    )
    return Message(text=text, blocks=[{"type": "section", "text": mrkdwn(text)}, *_context(delay)])
