"""Slack messages for incidents: Block Kit blocks plus the top-level ``text`` fallback.

Text from the configuration or the data (event names, descriptions, channels, property keys and
values, SQL) never becomes markup. Slack's mrkdwn has no escape character for its formatting (``*``,
``_``, ``~``, `````); a Slack engineer's answer (slackhq/slack-api-docs#34) is to enclose such text
in backticks, and a zero-width space next to a marker makes formatting more likely, not less (Slack
reads it as a word boundary: jsx-slack's docs). So:

- Slack's three control characters (``&``, ``<``, ``>``) are entities in every text Slack reads
  (``entities``): no data mentions ``@channel`` or a user, or plants a link;
- in mrkdwn, data is an inline code span (``code``): Slack formats nothing inside one (no *bold*,
  _italic_, ~strike~ or :emoji:). A backtick cannot sit in a span and shows as U+02CB (a modifier
  grave); line breaks and other control characters as spaces, bidirectional overrides as U+FFFD;
- data that is a whole text object (the header, the rule's description, notes) is ``plain_text``,
  which Slack never formats (``plain``), with emoji codes left as typed;
- the SQL to investigate sits in a code block, where only a run of three backticks could end it
  early: ``escape`` breaks such runs (the SQL's own text spells backticks as ``chr(96)``: reads.py);
- every ``mrkdwn`` text object is ``verbatim``: Slack turns no bare URL or ``#channel`` into a link
  and parses no mention;
- the top-level ``text`` is only the notification (Slack: with blocks, "fallback text for
  notifications only"; push notifications show it unformatted): it names the event as it is, with
  Slack's three control characters escaped and nothing more;
- the chart's file title and alt text (files.getUploadURLExternal) are no Block Kit: they get
  ``file_text``: one line, no ``<``/``>`` (so no Slack markup), no ``://``, within Slack's limit.

Block Kit's limits are respected by truncating, never by failing.
"""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from . import clock

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
MAX_FILE_ALT_TEXT = 1000  # files.getUploadURLExternal refuses a longer alt_txt (alt_txt_too_large)
MAX_FILE_TITLE = 250  # a file's title: one line in Slack's file views
# in an inline code span, a backtick of the data (which would end the span) shows as this look-alike
CODE_BACKTICK = "\u02cb"  # MODIFIER LETTER GRAVE ACCENT
# embeddings, overrides and isolates: data could reverse the order of the text around it
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
# the sparkline shows at most this many minutes' window counts
SPARKLINE_POINTS = 60
# a code span holds at most this many characters (escaped), so that no text limit cuts one open
MAX_CODE_CHARS = 600


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
    quiet_minutes: int | None = None  # a quiet stretch's longest span (models/marts/anomalies.sql)
    # its first quiet window's span, and the events in it and expected (what the alert says)
    quiet_first_minutes: int | None = None
    quiet_count: int | None = None
    quiet_expected: float | None = None
    rise_minutes: int | None = None  # a sustained rise's longest span, the same way
    rise_first_minutes: int | None = None
    rise_count: int | None = None
    rise_expected: float | None = None
    # the rule (its id); the event's name for incidents built before rule ids
    rule_id: str = ""

    def __post_init__(self) -> None:
        if not self.rule_id:
            object.__setattr__(self, "rule_id", self.event_name)

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


def entities(value: object) -> str:
    """Slack's three control characters as entities, as Slack asks of every text it reads: no
    mention, no link, no date or channel token can come from ``value``."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def one_line(value: object) -> str:
    """``value`` on one line: line breaks, tabs and other control characters as spaces (a line of
    data could otherwise start a quote, ``>``, or break the line of text it sits in), bidirectional
    overrides as U+FFFD (they could reverse the text around them)."""
    text = "".join(" " if unicodedata.category(char) == "Cc" or char in "\u2028\u2029" else char for char in str(value))
    return BIDI_CONTROLS.sub("\ufffd", text)


def code(value: object, limit: int = MAX_CODE_CHARS) -> str:
    """Data in mrkdwn, shown as it is: an inline code span, in which Slack formats nothing
    (``*bold*``, ``_x_``, ``~strike~``, ``:emoji:`` stay as typed). Its own backticks show as U+02CB,
    and it is trimmed: a span that starts or ends with a space may not be read as one. It is cut
    inside (at ``limit``), never by the text around it, which would leave it open. Nothing at all
    shows as ``(empty)``."""
    text = entities(one_line(value)).replace("`", CODE_BACKTICK).strip()
    return f"`{truncate(text, limit)}`" if text else "(empty)"


def plain(value: object) -> str:
    """Data in a ``plain_text`` object or the top-level ``text`` (which Slack does not format): one
    line, Slack's control characters escaped, nothing else changed, so the name reads as it is."""
    return entities(one_line(value))


def escape(value: object) -> str:
    """Text inside a code block (the SQL to investigate): Slack's control characters escaped, and
    no run of three backticks, which would close the block early."""
    text = entities(value)
    while "``" in text:
        text = text.replace("``", "`\u200b`")
    return text


def file_text(value: object, limit: int) -> str:
    """Text for Slack's file upload (the chart's title and alt text), which is no Block Kit and is
    shown as typed: one line with no control or format character (``_fit`` in chart.py draws the
    title the same), no ``<``/``>`` (U+2039/U+203A instead: no Slack markup can form), no ``://``
    (no link), cut to ``limit``."""
    text = "".join(
        " " if unicodedata.category(char)[0] == "C" or char in "\u2028\u2029" else char for char in str(value)
    )
    text = text.replace("<", "\u2039").replace(">", "\u203a").replace("://", ":\u2044\u2044")
    return truncate(" ".join(text.split()), limit)


def plain_text(text: str, limit: int = MAX_FIELD_TEXT) -> dict[str, Any]:
    """A plain_text object (context elements, notes): Slack formats nothing in it, not even emoji codes."""
    return {"type": "plain_text", "text": truncate(text, limit), "emoji": False}


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
    """``text`` in at most ``limit`` characters, cut with an ellipsis; never inside an entity
    (``&amp;``), which would show as its broken letters."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    entity = cut.rfind("&")
    if entity >= len(cut) - 4 and ";" not in cut[entity:]:
        cut = cut[:entity]
    return cut + "…"


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
        if incident.kind == "drop" and incident.quiet_minutes:
            repeated = f", and too few over the last {incident.quiet_minutes} min to be chance"
        if incident.kind == "spike" and incident.rise_minutes and not incident.repeated_bursts:
            repeated = f", and too many over the last {incident.rise_minutes} min to be chance"
        return f"expected {band(incident)} at this time on a {clock.local(when):%A}{repeated}"
    if incident.kind == "drop":
        if incident.lower_bound is None:
            return "fewer than expected"
        return f"fewer than the minimum of {exact(incident.lower_bound)}"
    if incident.threshold is None:
        return "more than expected"
    return f"above the threshold of {exact(incident.threshold)}"


def what_happened(incident: Incident) -> str:
    """The alert's sentence, in Slack and the terminal: "412 events in 5 min, expected 40-95 at
    this time on a Tuesday"; for a quiet stretch, how long it has been quiet: "0 events in the last
    15 min, expected about 23 at this time on a Tuesday"; for a sustained rise, over how long: "96
    events in the last 30 min, expected about 40 at this time on a Tuesday"."""
    day = f"{clock.local(incident.first_anomalous_minute):%A}"
    if incident.kind == "drop" and incident.quiet_first_minutes and incident.quiet_expected is not None:
        return (
            f"{_events(incident.quiet_count or 0)} in the last {incident.quiet_first_minutes} min, "
            f"expected about {rounded(incident.quiet_expected)} at this time on a {day}"
        )
    if incident.kind == "spike" and incident.rise_first_minutes and incident.rise_expected is not None:
        return (
            f"{_events(incident.rise_count or 0)} in the last {incident.rise_first_minutes} min, "
            f"expected about {rounded(incident.rise_expected)} at this time on a {day}"
        )
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


def bounds(incident: Incident) -> str:
    """What the rule allowed per window, without the unit: "expected 40-95", "minimum 10, threshold
    32"; empty when it says nothing."""
    if incident.expected_count is not None:
        return f"expected {band(incident)}"
    parts = []
    if incident.lower_bound is not None:
        parts.append(f"minimum {exact(incident.lower_bound)}")
    if incident.threshold is not None:
        parts.append(f"threshold {exact(incident.threshold)}")
    return ", ".join(parts)


def expectation_caption(incident: Incident) -> str:
    """Beside the window counts (the chart): the window's expectation, with its unit."""
    allowed = bounds(incident)
    return f"{allowed} per {incident.time_window_minutes}-min window" if allowed else ""


def anomalous_span(first: datetime, last: datetime | None) -> str:
    """The anomalous minutes as the alert and its chart both say them: "09:36-09:39" (the first to
    the last; each the last minute of a window that broke the rule), "09:36" for one, "since 09:36"
    while it goes on."""
    if last is None:
        return f"since {first:%H:%M}"
    return f"{first:%H:%M}" if first == last else f"{first:%H:%M}\u2013{last:%H:%M}"


def _ongoing(incident: Incident) -> bool:
    return incident.status != "over"


def anomalous_when(incident: Incident) -> str:
    """The alert's "Anomalous" field, the span its chart shades, in the alerts' clock (clock.py):
    "2024-01-01 09:36-09:39 UTC", or "since 2024-01-01 09:36 EST" while the incident is open."""
    zone = clock.zone_label(incident.first_anomalous_minute)
    first = clock.local(incident.first_anomalous_minute)
    if _ongoing(incident):
        return f"since {first:%Y-%m-%d %H:%M} {zone}"
    last = clock.local(incident.last_anomalous_minute)
    if first.date() != last.date() or clock.zone_label(incident.last_anomalous_minute) != zone:
        return f"{clock.minute(first)} \u2013 {clock.minute(last)}"
    return f"{first:%Y-%m-%d} {anomalous_span(first, last)} {zone}"


def counted_from(incident: Incident) -> str:
    """What ``total_events`` counts, said plainly: the events of the incident's windows, which
    begin ``time_window_minutes - 1`` minutes before its first anomalous minute."""
    events = f"{incident.total_events:,} event{'' if incident.total_events == 1 else 's'}"
    if incident.started_at == incident.first_anomalous_minute:
        return f"{events} during the incident"
    window = f"{incident.time_window_minutes}-min window"
    began = f"{clock.local(incident.started_at):%H:%M} {clock.zone_label(incident.started_at)}"
    return f"{events} from {began}, when its first anomalous {window} began"


def _hours(hours: int) -> str:
    return "the last hour" if hours == 1 else f"the last {hours} hours"


def chart_title(incident: Incident, hours: int) -> str:
    """The chart's title, drawn in the image and given to the uploaded file: ``file_text``, the
    event's name cut first."""
    zone = clock.zone_label(incident.first_anomalous_minute)
    rest = f" · events per {incident.time_window_minutes}-min window, {_hours(hours)} ({zone})"
    return file_text(file_text(incident.event_name, MAX_FILE_TITLE - len(rest)) + rest, MAX_FILE_TITLE)


def chart_alt_text(incident: Incident, hours: int) -> str:
    """What the chart shows, in words (screen readers, a chart that does not load), for the file
    upload's ``alt_txt`` and the image block: ``file_text`` within Slack's 1,000 characters. The
    event's name is cut first, so the rest is always said."""
    window = f"per {incident.time_window_minutes}-min window"
    allowed = bounds(incident)
    last = None if _ongoing(incident) else clock.local(incident.last_anomalous_minute)
    shaded = anomalous_span(clock.local(incident.first_anomalous_minute), last)
    zone = clock.zone_label(incident.first_anomalous_minute)
    allowed_text = f" ({allowed})" if allowed else ""
    rest = (
        f" over {_hours(hours)} ({zone}): the events {window}, minute by minute{allowed_text};"
        f" the anomalous minutes ({shaded} {zone}) are shaded. {what_happened(incident)}."
    )
    name = file_text(incident.event_name, max(MAX_FILE_ALT_TEXT - len(rest) - len("Chart of "), 20))
    return file_text(f"Chart of {name}{rest}", MAX_FILE_ALT_TEXT)


def chart_filename(incident: Incident) -> str:
    """The uploaded file's name: the event's letters and digits, the incident's id, ``.png``."""
    stem = "".join(char if char.isascii() and char.isalnum() else "-" for char in incident.event_name)
    stem = "-".join(part for part in stem.split("-") if part)[:60] or "event"
    return f"{stem}-{incident.incident_id[:12]}.png"


def window_counts(minute_counts: Sequence[int], window_minutes: int) -> list[int]:
    """Each minute's window count (the ``window_minutes`` minutes ending with it, as the rules
    count), for the minutes of ``minute_counts`` (consecutive, oldest first) that end a whole window."""
    counts, running = [], 0
    for index, count in enumerate(minute_counts):
        running += count
        if index >= window_minutes:
            running -= minute_counts[index - window_minutes]
        if index >= window_minutes - 1:
            counts.append(running)
    return counts


def _sparkline_block(incident: Incident, minute_counts: Sequence[int]) -> dict[str, Any] | None:
    """The last minutes in one unit: each minute's window count, the unit of the rule's bounds and
    of the chart; or, when the minutes hold fewer than two whole windows, each minute's events
    alone, without the bounds (which are per window)."""
    if not minute_counts:
        return None
    window = incident.time_window_minutes
    windows = window_counts(minute_counts, window)[-SPARKLINE_POINTS:]
    if len(windows) >= 2:
        allowed = bounds(incident)
        unit = "events per minute" if window == 1 else f"events per {window}-min window, minute by minute"
        counts, caption = windows, f"max {max(windows):,}{'; ' + allowed if allowed else ''}"
        minutes = len(windows) + window - 1  # the minutes whose events the windows count
    else:
        counts = list(minute_counts[-SPARKLINE_POINTS:])
        unit, caption, minutes = "events per minute", f"max {max(counts):,}", len(counts)
    heading = f"*Last {minutes} minutes*: {unit} ({caption})"
    return {"type": "section", "text": mrkdwn(f"{heading}\n`{sparkline(counts)}`")}


def _chart_blocks(
    incident: Incident, chart: ChartAttachment, sparkline_block: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The image in place of the sparkline; or the sparkline and why there is no image; or, for a
    preview, the sparkline and where the image would be."""
    if chart.file_id:
        caption = expectation_caption(incident)
        last = None if _ongoing(incident) else clock.local(incident.last_anomalous_minute)
        shaded = f"anomalous {anomalous_span(clock.local(incident.first_anomalous_minute), last)} shaded"
        zone = clock.zone_label(incident.first_anomalous_minute)
        title = f"{_hours(chart.hours).capitalize()} ({zone}){': ' + caption if caption else ''}; {shaded}"
        return [
            {
                "type": "image",
                "slack_file": {"id": chart.file_id},
                "alt_text": truncate(plain(chart_alt_text(incident, chart.hours)), MAX_IMAGE_TEXT),
                "title": {"type": "plain_text", "text": truncate(plain(title), MAX_IMAGE_TEXT), "emoji": False},
            }
        ]
    if chart.note:
        context = plain_text(f"Chart not attached: {plain(chart.note)}.")
    else:
        context = mrkdwn(f"📈 A chart of {_hours(chart.hours)} goes here in Slack (with a bot token).", MAX_FIELD_TEXT)
    blocks = [sparkline_block] if sparkline_block else []
    return [*blocks, {"type": "context", "elements": [context]}]


def _minute(value: datetime | None) -> str:
    return clock.minute(value)


def _sample_lines(sample: dict[str, Any]) -> list[str]:
    """One sample event: its time, then telling properties, each ``key``: ``value`` (code spans)."""
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
        shown.append(f"{code(truncate(str(key), MAX_PROPERTY_CHARS))}: {code(truncate(text, MAX_PROPERTY_CHARS))}")
    when = sample.get("event_at")
    return [f"• {_minute(when) if isinstance(when, datetime) else code(when) if when is not None else '-'}", *shown]


def _samples_text(samples: Sequence[dict[str, Any]]) -> str:
    """The sample events' section: whole properties only, as many as fit (a cut would leave a
    code span open)."""
    text, room = "*Sample events*", MAX_SECTION_TEXT - 2
    for sample in samples[:3]:
        header, *pairs = _sample_lines(sample)
        for part in [f"\n{header}", *(("\n   " if index == 0 else "  ·  ") + pair for index, pair in enumerate(pairs))]:
            if len(text) + len(part) > room:
                return text + " …"
            text += part
    return text


def _summary(incident: Incident, sentence: str) -> dict[str, Any]:
    """What happened, and the fields: the anomalous minutes (as the chart shades them), the status,
    how many minutes were anomalous, the rule's channel."""
    status = "over at " + _minute(incident.ended_at) if incident.ended_at else "ongoing"
    return {
        "type": "section",
        "text": mrkdwn(f"{code(incident.event_name)}: {sentence} ({counted_from(incident)})."),
        "fields": [
            mrkdwn(f"*Anomalous*\n{anomalous_when(incident)}", MAX_FIELD_TEXT),
            mrkdwn(f"*Status*\n{status}", MAX_FIELD_TEXT),
            mrkdwn(f"*Anomalous minutes*\n{incident.anomalous_minutes}", MAX_FIELD_TEXT),
            mrkdwn(f"*Channel*\n{code(incident.alert_channel)}", MAX_FIELD_TEXT),
        ],
    }


def _context(incident: Incident, delivered_to: str | None) -> dict[str, Any]:
    """The incident's id; through a webhook, also its rule's channel and where it went instead (a
    note of ours, as plain text)."""
    if not delivered_to:
        return {"type": "context", "elements": [mrkdwn(f"incident {code(incident.incident_id)}", MAX_FIELD_TEXT)]}
    ids = f"incident {code(incident.incident_id)} · rule channel {code(incident.alert_channel)}"
    return {
        "type": "context",
        "elements": [mrkdwn(ids, MAX_FIELD_TEXT), plain_text(f"(sent through {plain(delivered_to)})")],
    }


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
    """The one firing message of an incident. ``minute_counts``: the events of each of the last
    minutes, oldest first, to the incident's last anomalous minute (the sparkline shows their window
    counts). ``samples`` are shown for a spike only: events of a drop say nothing of what is missing.
    ``delivered_to`` is the webhook's channel note; ``description`` the rule's; ``delay`` says the
    message is late; ``chart`` the image of the last hours, or why it is missing (none: the
    sparkline alone, as a webhook sends it)."""
    late = "late: " if delay and delay.late else ""
    emoji = ":chart_with_downwards_trend:" if incident.kind == "drop" else ":rotating_light:"
    sentence = what_happened(incident)
    text = truncate(
        f"{emoji} {late}{plain(incident.event_name)}: {sentence} (since {_minute(incident.first_anomalous_minute)})",
        MAX_FALLBACK_TEXT,
    )
    header = f"{'📉' if incident.kind == 'drop' else '🚨'} {plain(incident.event_name)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": truncate(header, MAX_HEADER_TEXT), "emoji": False}},
    ]
    if delay:
        blocks.append({"type": "section", "text": mrkdwn("\n".join(_delay_lines(delay)))})
    blocks.append(_summary(incident, sentence))
    if description:
        blocks.append({"type": "context", "elements": [plain_text(plain(description))]})
    sparkline_block = _sparkline_block(incident, minute_counts)
    if chart is not None:
        blocks += _chart_blocks(incident, chart, sparkline_block)
    elif sparkline_block:
        blocks.append(sparkline_block)
    if samples and incident.kind != "drop":
        blocks.append({"type": "section", "text": mrkdwn(_samples_text(samples))})
    heading = "*Investigate*"
    if investigation.url:
        heading += f": <{investigation.url}|open the query>"
    # the SQL's own text holds no backtick run (see reads.py), and data in it is escaped
    sql = truncate(escape(investigation.sql), MAX_SECTION_TEXT - len(heading) - 10)
    blocks.append({"type": "section", "text": mrkdwn(f"{heading}\n```{sql}```")})
    blocks.append(_context(incident, delivered_to))
    return Message(text=text, blocks=blocks[:MAX_BLOCKS])


def resolved_message(incident: Incident, *, delay: Delay | None = None) -> Message:
    """The notice that an incident is over: the same sentence in the notification (the event's
    name as it is) and in the block (the name as a code span)."""
    late = " (late)" if delay and delay.late else ""
    low_or_peak = "lowest" if incident.kind == "drop" else "peak"

    def sentence(name: str) -> str:
        return (
            f":white_check_mark: resolved{late}: {name} is {back_to_normal(incident)} since "
            f"{_minute(incident.ended_at)} ({low_or_peak} {incident.peak_count:,})."
        )

    blocks: list[dict[str, Any]] = [{"type": "section", "text": mrkdwn(sentence(code(incident.event_name)))}]
    if delay:
        blocks.append({"type": "context", "elements": [mrkdwn(" ".join(_delay_lines(delay)), MAX_FIELD_TEXT)]})
    return Message(text=truncate(sentence(plain(incident.event_name)), MAX_FALLBACK_TEXT), blocks=blocks)
