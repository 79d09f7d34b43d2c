"""Slack messages for incidents: Block Kit blocks plus the top-level ``text`` fallback.

Text from the configuration or the data (event names, descriptions, channels, property keys and
values, SQL) never becomes markup:

- it is escaped for ``mrkdwn`` (``&``, ``<``, ``>``), so it cannot mention ``@channel`` or a user,
  or plant a link, and a run of three backticks is broken (a zero-width space between them), so
  it cannot close the code block it sits in;
- every ``mrkdwn`` text object is ``verbatim``: Slack turns no bare URL or ``#channel`` into a link
  and parses no mention;
- headers are ``plain_text``, escaped too (Slack asks it of all text);
- the SQL to investigate names the event with a string expression that spells quotes, backticks
  and line breaks as ``chr(…)`` (alerts/step.py).

Block Kit's limits are respected by truncating, never by failing.
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
MAX_IMAGE_TEXT = 2000  # an image block's alt_text and title


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
    alert_threshold: int | None
    time_window_minutes: int
    alert_channel: str
    anomalous_minutes: int = 1
    cooldown_minutes: int = 5
    kind: str = "spike"  # or "drop"
    # the expected window count and its band (a baseline rule's); a threshold rule has no expected
    # count, and its band is its minimum (lower) and its threshold (upper), either may be missing
    expected_count: float | None = None
    lower_bound: float | None = None
    upper_bound: float | None = None
    # a baseline spike of repeated bursts: how many bursts past upper_bound started within the
    # model's hours (var baseline_burst_hours); none for a single breach of the band
    repeated_bursts: int | None = None

    @property
    def window(self) -> str:
        return f"{self.time_window_minutes} min"

    @property
    def threshold(self) -> float | None:
        return self.upper_bound if self.upper_bound is not None else self.alert_threshold


@dataclasses.dataclass(frozen=True)
class Investigation:
    """Where to look next: a console link (BigQuery) and/or the SQL to run (DuckDB)."""

    sql: str
    url: str | None = None


@dataclasses.dataclass(frozen=True)
class Message:
    text: str
    blocks: list[dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Delay:
    """A notification sent later than it was due: since when, and what happened meanwhile."""

    due_since: datetime
    attempts: int
    # later than it was due: earlier runs could not deliver it
    late: bool = True
    # an earlier post may have reached Slack and could not be checked (webhook): say it may repeat
    may_repeat: bool = False


@dataclasses.dataclass(frozen=True)
class ChartAttachment:
    """The chart of a firing alert (alerts/chart.py draws it, a bot uploads it). ``file_id``: the
    uploaded image, shown in place of the sparkline. No file but a ``note``: the upload failed,
    the sparkline stays and the note says why ("the bot token lacks the files:write scope"). Neither:
    a preview (the terminal, a dry run), which says where the image would be."""

    file_id: str | None
    note: str | None
    hours: int


def escape(value: object) -> str:
    """Text from the data or the configuration, safe in mrkdwn: Slack's three control characters
    escaped, and no run of three backticks (which would open or close a code block)."""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    while "``" in text:
        text = text.replace("``", "`\u200b`")
    return text


def mrkdwn(text: str, limit: int = MAX_SECTION_TEXT) -> dict[str, Any]:
    """A mrkdwn text object that Slack shows as written: no auto-links, no parsed mentions."""
    return {"type": "mrkdwn", "text": truncate(text, limit), "verbatim": True}


def _delay_lines(delay: Delay | None) -> list[str]:
    if delay is None:
        return []
    lines = []
    if delay.late:
        lines.append(
            f":hourglass: *Late*: due since {_minute(delay.due_since)}; Slack could not be reached until now "
            f"({delay.attempts} earlier attempt{'s' if delay.attempts != 1 else ''})."
        )
    if delay.may_repeat:
        lines.append("An earlier post of this message may have arrived: Slack did not confirm it.")
    return lines


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


def rounded(value: float) -> str:
    """A count or an expectation as people say it: 2.5, 40, 1,200, 12,300."""
    value = max(value, 0.0)
    if value < 10:
        return f"{value:.1f}".removesuffix(".0")
    if value < 1000:
        return f"{value:.0f}"
    digits = len(str(int(value))) - 3  # three significant digits
    return f"{round(value, -digits):,.0f}"


def exact(value: float) -> str:
    """A configured number (a threshold, a minimum) as it was set: 12,345."""
    return f"{value:,.0f}"


def band(incident: Incident, *, with_expected: bool = True) -> str:
    """What a baseline rule expected: ``40-95``; with one side watched (direction up or down, or a
    lower bound of 0), the expected count and that side: ``60 (at most 95)``, or ``at most 95``
    without the expected count."""
    lower = incident.lower_bound if incident.lower_bound is not None and rounded(incident.lower_bound) != "0" else None
    upper = incident.upper_bound
    if lower is not None and upper is not None:
        low, high = rounded(lower), rounded(upper)
        return f"about {low}" if high == low else f"{low}\u2013{high}"
    side = (
        f"at most {rounded(upper)}" if upper is not None else f"at least {rounded(lower)}" if lower is not None else ""
    )
    expected = rounded(incident.expected_count) if incident.expected_count is not None else ""
    if not side:
        return f"about {expected or '0'}"
    return f"{expected} ({side})" if expected and with_expected else side


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st..."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _events(count: int) -> str:
    return f"{count:,} event{'' if count == 1 else 's'}"


def expectation(incident: Incident) -> str:
    """What the rule allowed, after the count: "expected 40-95 at this time on a Tuesday", "above
    the threshold of 5", "fewer than the minimum of 10". Numbers only: nothing to escape."""
    if incident.expected_count is not None:
        when = incident.first_anomalous_minute
        repeated = ""
        if incident.repeated_bursts and incident.upper_bound is not None:
            bursts, bound = ordinal(incident.repeated_bursts), rounded(incident.upper_bound)
            repeated = f", its {bursts} burst past {bound} in a few hours"
        return f"expected {band(incident)} at this time on a {when:%A}{repeated}"
    if incident.kind == "drop":
        if incident.lower_bound is None:
            return "fewer than expected"
        return f"fewer than the minimum of {exact(incident.lower_bound)}"
    if incident.threshold is None:
        return "more than expected"
    return f"above the threshold of {exact(incident.threshold)}"


def what_happened(incident: Incident) -> str:
    """The alert's sentence, in Slack and the terminal: "412 events in 5 min, expected 40-95 at
    this time on a Tuesday"."""
    return f"{_events(incident.peak_count)} in {incident.window}, {expectation(incident)}"


def back_to_normal(incident: Incident) -> str:
    """The resolved notice's words for the kind of incident."""
    if incident.expected_count is not None:
        return f"back within its expected range ({band(incident, with_expected=False)})"
    if incident.kind == "drop":
        minimum = incident.lower_bound
        return "back to normal" if minimum is None else f"back above its minimum of {exact(minimum)}"
    if incident.threshold is None:
        return "back to normal"
    return f"back under its threshold of {exact(incident.threshold)}"


def expectation_caption(incident: Incident) -> str:
    """Beside the sparkline (per-minute counts): the window's expectation."""
    window = f"per {incident.time_window_minutes}-min window"
    if incident.expected_count is not None:
        return f"expected {band(incident)} {window}"
    parts = []
    if incident.lower_bound is not None:
        parts.append(f"minimum {exact(incident.lower_bound)}")
    if incident.threshold is not None:
        parts.append(f"threshold {exact(incident.threshold)}")
    return f"{', '.join(parts)} {window}" if parts else ""


def _hours(hours: int) -> str:
    return "the last hour" if hours == 1 else f"the last {hours} hours"


def chart_title(incident: Incident, hours: int) -> str:
    """The chart's title, drawn in the image and given to the uploaded file: plain text, not
    escaped (nothing parses it)."""
    return f"{incident.event_name} · events per {incident.time_window_minutes}-min window, {_hours(hours)} (UTC)"


def chart_alt_text(incident: Incident, hours: int) -> str:
    """What the chart shows, in words (screen readers, a chart that does not load): plain text;
    the image block escapes it."""
    window = f"per {incident.time_window_minutes}-min window"
    bounds = expectation_caption(incident).removesuffix(window).strip()
    shaded = f"{incident.first_anomalous_minute:%H:%M}\u2013{incident.last_anomalous_minute:%H:%M} UTC"
    return truncate(
        f"Chart of {incident.event_name} over {_hours(hours)} (UTC): the events {window}, minute by minute"
        f"{' (' + bounds + ')' if bounds else ''}; the incident ({shaded}) is shaded. {what_happened(incident)}.",
        MAX_IMAGE_TEXT,
    )


def chart_filename(incident: Incident) -> str:
    """The uploaded file's name: the event's letters and digits, the incident's id, ``.png``."""
    stem = "".join(char if char.isascii() and char.isalnum() else "-" for char in incident.event_name)
    stem = "-".join(part for part in stem.split("-") if part)[:60] or "event"
    return f"{stem}-{incident.incident_id[:12]}.png"


def _chart_blocks(
    incident: Incident, chart: ChartAttachment, sparkline_block: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The image in place of the sparkline; or the sparkline and why there is no image; or, for a
    preview, the sparkline and where the image would be."""
    if chart.file_id:
        caption = expectation_caption(incident)
        title = f"{_hours(chart.hours).capitalize()} (UTC){': ' + caption if caption else ''}"
        return [
            {
                "type": "image",
                "slack_file": {"id": chart.file_id},
                "alt_text": truncate(escape(chart_alt_text(incident, chart.hours)), MAX_IMAGE_TEXT),
                "title": {"type": "plain_text", "text": truncate(escape(title), MAX_IMAGE_TEXT), "emoji": False},
            }
        ]
    if chart.note:
        context = f"Chart not attached: {escape(chart.note)}."
    else:
        context = f"📈 A chart of {_hours(chart.hours)} goes here in Slack (with a bot token)."
    blocks = [sparkline_block] if sparkline_block else []
    return [*blocks, {"type": "context", "elements": [mrkdwn(context, MAX_FIELD_TEXT)]}]


def _minute(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def _sample_lines(sample: dict[str, Any]) -> str:
    """One sample event: its time, then telling properties as ``key: value``."""
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
        # a key shows in inline code: a backtick in it would end the code early
        name = escape(truncate(str(key), MAX_PROPERTY_CHARS)).replace("`", "\u02cb")
        shown.append(f"`{name}`: {escape(truncate(text, MAX_PROPERTY_CHARS))}")
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
    description: str = "",
    delay: Delay | None = None,
    chart: ChartAttachment | None = None,
) -> Message:
    """The one firing message of an incident. ``delivered_to`` is the webhook's channel note;
    ``description`` the rule's; ``delay`` says the message is late; ``chart`` the image of the last
    hours, or why it is missing (none: the sparkline alone, as a webhook sends it)."""
    event = escape(incident.event_name)
    late = "late: " if delay and delay.late else ""
    emoji = ":chart_with_downwards_trend:" if incident.kind == "drop" else ":rotating_light:"
    sentence = what_happened(incident)
    text = truncate(
        f"{emoji} {late}{event}: {sentence} (since {_minute(incident.started_at)})",
        MAX_FALLBACK_TEXT,
    )
    status = "over at " + _minute(incident.ended_at) if incident.ended_at else "ongoing"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": truncate(f"{'📉' if incident.kind == 'drop' else '🚨'} {event}", MAX_HEADER_TEXT),
                "emoji": True,
            },
        },
    ]
    if delay:
        blocks.append({"type": "section", "text": mrkdwn("\n".join(_delay_lines(delay)))})
    summary = f"*{event}*: {sentence} ({incident.total_events:,} events during the incident)."
    if description:
        summary += f"\n_{escape(description)}_"
    blocks.append(
        {
            "type": "section",
            "text": mrkdwn(summary),
            "fields": [
                mrkdwn(f"*Started*\n{_minute(incident.started_at)}", MAX_FIELD_TEXT),
                mrkdwn(f"*Status*\n{status}", MAX_FIELD_TEXT),
                mrkdwn(f"*Anomalous minutes*\n{incident.anomalous_minutes}", MAX_FIELD_TEXT),
                mrkdwn(f"*Channel*\n{escape(incident.alert_channel)}", MAX_FIELD_TEXT),
            ],
        }
    )
    sparkline_block = None
    if minute_counts:
        caption = expectation_caption(incident)
        spark = (
            f"*Last {len(minute_counts)} minutes* (max {max(minute_counts)}/min"
            f"{'; ' + caption if caption else ''})\n`{sparkline(minute_counts)}`"
        )
        sparkline_block = {"type": "section", "text": mrkdwn(spark)}
    if chart is not None:
        blocks += _chart_blocks(incident, chart, sparkline_block)
    elif sparkline_block:
        blocks.append(sparkline_block)
    if samples:
        lines = "\n".join(_sample_lines(sample) for sample in samples[:3])
        blocks.append({"type": "section", "text": mrkdwn(f"*Sample events*\n{lines}")})
    heading = "*Investigate*"
    if investigation.url:
        heading += f": <{investigation.url}|open the query>"
    # the SQL's own text holds no backtick run (see step.py), and data in it is escaped
    sql = truncate(escape(investigation.sql), MAX_SECTION_TEXT - len(heading) - 10)
    blocks.append({"type": "section", "text": mrkdwn(f"{heading}\n```{sql}```")})
    context = f"incident {escape(incident.incident_id)}"
    if delivered_to:
        context += f" · rule channel {escape(incident.alert_channel)} (sent through {escape(delivered_to)})"
    blocks.append({"type": "context", "elements": [mrkdwn(context, MAX_FIELD_TEXT)]})
    return Message(text=text, blocks=blocks[:MAX_BLOCKS])


def resolved_message(incident: Incident, *, delay: Delay | None = None) -> Message:
    event = escape(incident.event_name)
    late = " (late)" if delay and delay.late else ""
    text = truncate(
        f":white_check_mark: resolved{late}: {event} is {back_to_normal(incident)} since {_minute(incident.ended_at)} "
        f"({'lowest' if incident.kind == 'drop' else 'peak'} {incident.peak_count:,}).",
        MAX_FALLBACK_TEXT,
    )
    blocks: list[dict[str, Any]] = [{"type": "section", "text": mrkdwn(text)}]
    if delay:
        blocks.append({"type": "context", "elements": [mrkdwn(" ".join(_delay_lines(delay)), MAX_FIELD_TEXT)]})
    return Message(text=text, blocks=blocks)
