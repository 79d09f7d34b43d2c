"""Every block of every Slack message kind is safe with hostile content.

Each message (firing, through a webhook, late, late and maybe repeated, with a BigQuery console
link, resolved, resolved late) is built for every hostile event name, with a hostile description,
channel and sample properties, and the SQL to investigate built by the alert step itself. Every text
object is walked: mrkdwn is verbatim and holds no ``<``/``>`` but the product's own console link,
no data opens or closes a code block, no data formats the text (outside code, the only *bold*,
_italic_, ~strike~ and :emoji: are the product's own), and no mention or link reaches the JSON
unescaped.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pytest
from rich.console import Console

import mixpanel_alerts.alerts.notices as notices
import mixpanel_alerts.alerts.render as render
from mixpanel_alerts.alerts.deliver import show
from mixpanel_alerts.alerts.notices import closed_message, digest_message
from mixpanel_alerts.alerts.reads import Warehouse
from mixpanel_alerts.alerts.render import (
    ChartAttachment,
    Delay,
    Incident,
    Investigation,
    Message,
    chart_alt_text,
    code,
    firing_message,
    ordinal,
    plain,
    resolved_message,
    rounded,
)  # fmt: skip
from mixpanel_alerts.core.config import Settings
from mixpanel_alerts.core.sql import sql_string
from tests.hostile import HOSTILE_NAMES

HOSTILE = "x```<!channel> `` <@U123> <https://evil.example|click> &"
# HOSTILE as a code span in mrkdwn: Slack's control characters as entities, backticks as U+02CB
HOSTILE_CODE = (
    "`x\u02cb\u02cb\u02cb&lt;!channel&gt; \u02cb\u02cb &lt;@U123&gt; &lt;https://evil.example|click&gt; &amp;`"
)
# HOSTILE in plain text and the notification: the control characters escaped, nothing else changed
HOSTILE_PLAIN = "x```&lt;!channel&gt; `` &lt;@U123&gt; &lt;https://evil.example|click&gt; &amp;"
# formatting Slack would apply to data written into mrkdwn as it is
FORMATTING = "*bold* _italic_ ~strike~ :fire: > quote `code`"
FORMATTING_NAMES = [FORMATTING, "_x_", "*a* b", "a* b*", "~x~", "\n> quote", "`*x*`", ":sparkles:"]
NAMES = [*HOSTILE_NAMES, HOSTILE, *FORMATTING_NAMES]
RAW_MARKUP = ("<!channel>", "<!here>", "<@U123>", "<https://evil")
CHANNEL = "#alerts ``` <!channel> & <@U123> *bold*"
DESCRIPTION = "see ``` <!here> <https://evil.example|x> & @channel ` _x_ *y* ~z~ :fire:"
WEBHOOK_NOTE = "the webhook's channel <!here> ```"
MINUTE = datetime(2024, 1, 1, 12, 0)

DUCKDB = Settings()
BIGQUERY = Settings(warehouse="bigquery", gcp_project_id="my-project")
CONSOLE_LINK = "<https://console.cloud.google.com/bigquery?project=my-project|open the query>"
BIGQUERY_TABLE = "`my-project.mixpanel_data.mixpanel_events`"
SLACK_LIMITS = {"blocks": 50, "section": 3000, "header": 150, "field": 2000, "fields": 10}


def slug(name: str) -> str:
    if len(name) > 40:
        return f"{len(name)}-chars"
    return re.sub(r"[^0-9A-Za-z]+", "-", name).strip("-")[:24] or "symbols"


NAME_IDS = [slug(name) for name in NAMES]


def hostile_properties(value_size: int = 0) -> dict[str, Any]:
    """Keys and values with backticks, fences, mentions, links and ampersands; ``value_size`` pads values."""
    pad = ("&<!here>```" * (value_size // 11 + 1))[:value_size]
    return {
        "error_message": "boom ``` <!here> <https://evil.example|x> @channel & `tick` *bold* _x_ ~s~ :fire:" + pad,
        "reason`with```<!here>": "``` <!channel> & <@U123>" + pad,
        "<https://evil.example|x>": "@channel <!here>" + pad,
        "status &": "\n> quoted\n*bold* `" + pad,
        "": "empty key" + pad,
        "distinct_id": "<!here>" + pad,
        "$current_url": "<https://evil.example|x>" + pad,
        "$os": {"nested": "<!channel> ```"},
        "app_version": ["```", "<@U123>"],
    }


def hostile_samples(value_size: int = 0) -> list[dict[str, Any]]:
    properties = hostile_properties(value_size)
    return [
        {"event_at": MINUTE, "properties": properties},
        {"event_at": "<!channel> ``` not a time &", "properties": json.dumps(properties)},
        {"event_at": None, "properties": "<!here> ``` not json"},
    ]


def incident(name: str, *, status: str = "open", channel: str = CHANNEL, **expectation: Any) -> Incident:
    expectation = {"alert_threshold": 5, **expectation}
    return Incident(
        incident_id="f06b143917021cc559325cff36477c0e",
        event_name=name,
        started_at=MINUTE,
        first_anomalous_minute=MINUTE,
        last_anomalous_minute=MINUTE + timedelta(minutes=2),
        ended_at=MINUTE + timedelta(minutes=3) if status == "over" else None,
        status=status,
        peak_count=12,
        total_events=30,
        time_window_minutes=1,
        alert_channel=channel,
        anomalous_minutes=3,
        **expectation,
    )


def firing(name: str, settings: Settings = DUCKDB, **options: Any) -> Message:
    """A firing message as the alert step renders it, with the step's own investigation SQL."""
    channel = options.pop("channel", CHANNEL)
    value_size = options.pop("value_size", 0)
    subject = incident(name, channel=channel, **options.pop("expectation", {}))
    # investigation() reads only the settings, never the client
    investigation = Warehouse(client=None, settings=settings).investigation(subject)
    return firing_message(
        subject,
        minute_counts=[0, 1, 3, 12, 7],
        samples=hostile_samples(value_size),
        investigation=investigation,
        description=options.pop("description", DESCRIPTION),
        **options,
    )


# what the models say was expected, per kind of incident (alerts/step.py reads these columns)
BASELINE_SPIKE = {"kind": "spike", "expected_count": 61.7, "lower_bound": 40.2, "upper_bound": 95.4}
BASELINE_DROP = {"kind": "drop", "expected_count": 220.0, "lower_bound": 180.0, "upper_bound": 260.0}
MINIMUM_DROP = {"kind": "drop", "expected_count": None, "lower_bound": 10.0, "upper_bound": None}
NO_CEILING = {"kind": "spike", "alert_threshold": None, "expected_count": 3.0, "lower_bound": 0.0, "upper_bound": 9.0}
DELAY = Delay(due_since=datetime(2024, 1, 1, 9, 0, tzinfo=UTC), attempts=4)
KINDS: dict[str, Callable[[str], Message]] = {
    "firing": lambda name: firing(name),
    "firing-webhook": lambda name: firing(name, delivered_to=WEBHOOK_NOTE),
    "firing-late": lambda name: firing(name, delay=DELAY),
    "firing-late-may-repeat": lambda name: firing(name, delay=Delay(DELAY.due_since, 1, may_repeat=True)),
    "firing-bigquery": lambda name: firing(name, BIGQUERY, delivered_to=WEBHOOK_NOTE),
    "firing-baseline-spike": lambda name: firing(name, expectation=BASELINE_SPIKE),
    "firing-baseline-drop": lambda name: firing(name, expectation=BASELINE_DROP),
    "firing-minimum-drop": lambda name: firing(name, expectation=MINIMUM_DROP),
    "firing-no-ceiling": lambda name: firing(name, expectation=NO_CEILING),
    "resolved": lambda name: resolved_message(incident(name, status="over")),
    "resolved-baseline": lambda name: resolved_message(incident(name, status="over", **BASELINE_SPIKE)),
    "resolved-minimum-drop": lambda name: resolved_message(incident(name, status="over", **MINIMUM_DROP)),
    "resolved-late": lambda name: resolved_message(incident(name, status="over"), delay=DELAY),
    "digest": lambda name: digest_message(CHANNEL, [incident(name), incident(name + " 2", **BASELINE_DROP)]),
    "closed": lambda name: closed_message(name, MINUTE, "its rule was removed from the events configuration"),
}
# the product's own formatting: bold labels and emoji codes
OWN_BOLD = re.compile(
    r"\*(Anomalous|Status|Anomalous minutes|Channel|Investigate|Late|Sample events|Last \d+ minutes)\*"
)
OWN_EMOJI = (":hourglass:", ":white_check_mark:", ":rotating_light:", ":chart_with_downwards_trend:")


def text_objects(message: Message) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, text object) for every text object of every block; fails on a block it cannot walk."""
    for block in message.blocks:
        assert block["type"] in ("header", "section", "context"), block
        assert set(block) <= {"type", "text", "fields", "elements"}, f"a part this walk misses: {block}"
        if "text" in block:
            yield block["type"], block["text"]
        for field in block.get("fields", []):
            yield "field", field
        for element in block.get("elements", []):
            yield "context", element


def outside_code(text: str) -> str:
    """What Slack formats in a mrkdwn text: all but its code block and its inline code spans."""
    return re.sub(r"`[^`\n]*`", " ", re.sub(r"```.*?```", " ", text, flags=re.DOTALL))


def assert_data_does_not_format(text: str) -> None:
    """Outside code, only the product's own formatting: no other *bold*, _italic_, ~strike~,
    :emoji:, no backtick that would open a span, no line that starts a quote; every code span holds
    data as one trimmed line."""
    for span in re.findall(r"`([^`\n]*)`", re.sub(r"```.*?```", " ", text, flags=re.DOTALL)):
        assert span and span == span.strip(), f"a code span Slack may not read as one: {span!r}"
    rest = OWN_BOLD.sub(" ", outside_code(text))
    for emoji in OWN_EMOJI:
        rest = rest.replace(emoji, " ")
    assert not re.search(r"[*~`]|(?<!\w)_|_(?!\w)", rest), f"formatting from data: {rest!r} in {text!r}"
    assert not re.search(r":[a-z0-9_+-]+:", rest), f"an emoji code from data: {text!r}"
    assert not re.search(r"(?m)^\s*(&gt;|>)", text), f"a quote from data: {text!r}"


def assert_mrkdwn_safe(text: str, *, bigquery: bool = False) -> None:
    # the product's own console link is the one piece of markup allowed, in the Investigate heading
    unlinked = text.replace(f"*Investigate*: {CONSOLE_LINK}\n", "*Investigate*\n", 1) if bigquery else text
    assert "<" not in unlinked and ">" not in unlinked, f"markup from data: {text!r}"
    fences = text.count("```")
    assert fences in (0, 2), f"data opened or closed a code block: {text!r}"
    if fences == 2:
        heading, _, rest = text.partition("\n```")
        assert heading == (f"*Investigate*: {CONSOLE_LINK}" if bigquery else "*Investigate*"), text
        assert rest.endswith("```"), f"the SQL fence does not close the text: {text!r}"
        sql = rest[: -len("```")]
        if bigquery:
            assert sql.startswith(f"select event_timestamp, distinct_id, properties from {BIGQUERY_TABLE}\n")
            sql = sql.replace(BIGQUERY_TABLE, "", 1)
        assert "`" not in sql, f"a backtick inside the SQL fence: {sql!r}"
    assert_data_does_not_format(unlinked)


def without_header_text(message: Message) -> list[dict[str, Any]]:
    return [block for block in message.blocks if block["type"] != "header"]


def as_notified(name: str) -> str:
    """The name as the notification shows it: one line (control characters as spaces), bidi
    overrides as U+FFFD; every other character as it is."""
    line = "".join(" " if unicodedata.category(char) == "Cc" or char in "\u2028\u2029" else char for char in name)
    return re.sub("[\u202a-\u202e\u2066-\u2069]", "\ufffd", line)


def assert_message_safe(message: Message, *, bigquery: bool = False) -> None:
    objects = list(text_objects(message))
    assert objects, "a message without text"
    for where, text_object in objects:
        if text_object["type"] == "plain_text":
            assert where in ("header", "context"), (where, text_object)
            assert text_object["emoji"] is False, "an emoji code in data stays as typed"
            assert "<" not in text_object["text"] and ">" not in text_object["text"], text_object
            continue
        assert where != "header", "a header is plain text: Slack parses no markup in it"
        assert text_object["type"] == "mrkdwn", (where, text_object)
        assert text_object.get("verbatim") is True, f"not verbatim: {text_object}"
        assert_mrkdwn_safe(text_object["text"], bigquery=bigquery)
    # the notification (top-level text): Slack's control characters escaped, the name as it is
    assert "<" not in message.text and ">" not in message.text, message.text
    # the header's plain text is checked on its own (test_header_holds_no_raw_markup)
    body = json.dumps(without_header_text(message), ensure_ascii=False) + json.dumps(message.text, ensure_ascii=False)
    for markup in RAW_MARKUP:
        assert markup not in body, f"{markup} reaches Slack unescaped"


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("name", NAMES, ids=NAME_IDS)
def test_every_block_of_every_message_is_safe(kind: str, name: str) -> None:
    message = KINDS[kind](name)
    assert_message_safe(message, bigquery=kind == "firing-bigquery")
    # the notification names the event as it is: Slack does not format it (push notifications show
    # it as typed), so only Slack's three control characters are entities there
    assert as_notified(name) in html.unescape(message.text), "the notification names the event"
    assert plain(name) in message.text
    if kind.startswith("firing"):
        assert message.text.startswith(":rotating_light: late: ") is kind.startswith("firing-late")
        header = message.blocks[0]
        assert header["type"] == "header" and header["text"]["type"] == "plain_text"
        assert header["text"]["text"].endswith(plain(name)[:100]) or len(plain(name)) > 100
        sections = [block["text"]["text"] for block in message.blocks if block["type"] == "section"]
        assert sum(text.startswith("*Investigate*") for text in sections) == 1
        assert sum(":hourglass: *Late*" in text for text in sections) == int("late" in kind)
        assert ("An earlier post of this message may have arrived" in "\n".join(sections)) is kind.endswith("repeat")
        assert sections[int("late" in kind)].startswith(code(name) + ": "), "the summary names the event as code"
    elif kind.startswith("resolved"):
        assert "resolved" in message.text
        assert ("resolved (late)" in message.text) is kind.endswith("late")
    assert len(message.blocks) <= SLACK_LIMITS["blocks"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_known_hostile_values_are_shown_exactly(kind: str) -> None:
    """The exact forms: data in mrkdwn as a code span (backticks as U+02CB), in plain text and the
    notification as it is; Slack's control characters escaped everywhere."""
    message = KINDS[kind](HOSTILE)
    texts = [text_object["text"] for where, text_object in text_objects(message) if where != "header"]
    everything = "\n".join(texts)
    assert HOSTILE_PLAIN in message.text
    if kind.startswith("resolved"):
        late = " (late)" if "late" in kind else ""
        assert texts[0].startswith(f":white_check_mark: resolved{late}: {HOSTILE_CODE} is ")
        assert message.text.startswith(f":white_check_mark: resolved{late}: {HOSTILE_PLAIN} is ")
        return
    if kind == "digest":
        assert f"• {HOSTILE_CODE} (spike): 12 events in 1 min" in everything
        assert f"• {HOSTILE_CODE[:-1]} 2` (drop): 12 events in 1 min" in everything
        return
    if kind == "closed":
        assert texts[0].startswith(f":white_check_mark: resolved (no longer monitored): {HOSTILE_CODE}, anomalous")
        return
    assert message.blocks[0]["text"]["text"].endswith(f" {HOSTILE_PLAIN}"), "the header names it as it is"
    [summary] = [text for text in texts if text.startswith(f"{HOSTILE_CODE}: 12 events in 1 min, ")]
    assert summary.endswith("(30 events during the incident).")
    # the description is plain text, which Slack never formats: it shows as typed
    assert "see ``` &lt;!here&gt; &lt;https://evil.example|x&gt; &amp; @channel ` _x_ *y* ~z~ :fire:" in texts
    assert "*Channel*\n`#alerts \u02cb\u02cb\u02cb &lt;!channel&gt; &amp; &lt;@U123&gt; *bold*`" in texts
    if "drop" in kind:
        assert "*Sample events*" not in everything and "boom" not in everything, "a drop shows no sample events"
    else:
        # a sample's keys and values are code spans: backticks as modifier letters, line breaks as spaces
        reason = "`reason\u02cbwith\u02cb\u02cb\u02cb&lt;!here&gt;`"
        assert f"{reason}: `\u02cb\u02cb\u02cb &lt;!channel&gt; &amp; &lt;@U123&gt;`" in everything
        assert (
            "`error_message`: `boom \u02cb\u02cb\u02cb &lt;!here&gt; &lt;https://evil.example|x&gt; @channel &amp; "
            "\u02cbtick\u02cb *bold* _x_ ~s~ :fire:`" in everything
        )
        assert "`status &amp;`: `&gt; quoted *bold* \u02cb`" in everything
        assert "`&lt;https://evil.example|x&gt;`: `@channel &lt;!here&gt;`" in everything
        assert "• `&lt;!channel&gt; \u02cb\u02cb\u02cb not a time &amp;`" in everything
    # the SQL names the event with chr(96) for each backtick and escaped control characters
    expected_sql = (
        "where event_name = ('x' || chr(96) || chr(96) || chr(96) || '&lt;!channel&gt; ' || chr(96) || chr(96) || "
        "' &lt;@U123&gt; &lt;https://evil.example|click&gt; &amp;')\n"
    )
    assert expected_sql in everything
    if kind == "firing-webhook":
        assert texts[-2:] == [
            "incident `f06b143917021cc559325cff36477c0e` · rule channel "
            "`#alerts \u02cb\u02cb\u02cb &lt;!channel&gt; &amp; &lt;@U123&gt; *bold*`",
            "(sent through the webhook's channel &lt;!here&gt; ```)",
        ]


def test_header_holds_no_raw_markup() -> None:
    """No raw mention or link anywhere in the message's JSON, the header included: Slack asks for the
    three characters to be escaped in all text."""
    body = json.dumps(firing(HOSTILE).blocks, ensure_ascii=False)
    for markup in RAW_MARKUP:
        assert markup not in body


def test_a_code_span_holds_one_trimmed_line_of_data() -> None:
    assert code("*bold* _x_") == "`*bold* _x_`"
    assert code("  a\nb\t`c`  ") == "`a b \u02cbc\u02cb`"
    assert code("\u202eevil") == "`\ufffdevil`", "a bidi override cannot reverse the message"
    assert code("") == code("  \n ") == "(empty)"
    assert plain("a <b> & *c*\n") == "a &lt;b&gt; &amp; *c* "


def _unverbatim(text: str, limit: int = render.MAX_SECTION_TEXT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": render.truncate(text, limit)}


@pytest.mark.parametrize(
    ("attribute", "broken"),
    [("entities", str), ("code", render.entities), ("plain", str), ("escape", str), ("mrkdwn", _unverbatim)],
    ids=["escaping-skipped", "code-spans-skipped", "plain-escaping-skipped", "sql-escaping-skipped",
         "verbatim-removed"],
)  # fmt: skip
@pytest.mark.parametrize("kind", list(KINDS))
def test_the_checks_catch_a_broken_renderer(
    monkeypatch: pytest.MonkeyPatch, attribute: str, broken: Callable[..., Any], kind: str
) -> None:
    """Proof that the assertions above bite: with the renderer broken, they fail."""
    if attribute == "escape" and not kind.startswith("firing"):
        pytest.skip("only a firing message holds SQL")
    for module in (render, notices):  # notices.py imports the helpers by name
        if hasattr(module, attribute):
            monkeypatch.setattr(module, attribute, broken)
    message = KINDS[kind](f"{HOSTILE} {FORMATTING}")
    with pytest.raises(AssertionError):
        assert_message_safe(message, bigquery=kind == "firing-bigquery")


# names beyond HOSTILE_NAMES that sql_string must spell: every character it treats specially, alone and in runs
SQL_EDGE_NAMES = {
    "empty": "",
    "backtick": "`",
    "quote": "'",
    "backslash-quote": "\\'",
    "controls": "a\r\n\tb\x1f",
    "mixed": "a'b''c\\\\d```e",
}


@pytest.mark.parametrize("name", [*NAMES, *SQL_EDGE_NAMES.values()], ids=[*NAME_IDS, *SQL_EDGE_NAMES])
def test_sql_string_means_the_name_in_duckdb(name: str) -> None:
    literal = sql_string(name)
    assert "`" not in literal and "\n" not in literal and "\r" not in literal
    with duckdb.connect() as connection:
        row = connection.execute("select " + literal).fetchone()
    assert row is not None and row[0] == name


@pytest.mark.parametrize("name", NAMES, ids=NAME_IDS)
def test_investigation_sql_finds_exactly_the_incidents_events_in_duckdb(name: str) -> None:
    """The SQL shown in the message, run as is: the event's rows in the incident, nothing else."""
    subject = incident(name)
    sql = Warehouse(client=None, settings=DUCKDB).investigation(subject).sql
    inside, after = MINUTE + timedelta(minutes=1, seconds=30), MINUTE + timedelta(minutes=3)
    rows = [
        (inside, "match", name),
        (after, "after-the-incident", name),
        (inside, "other-event", name + "x"),
        (inside, "prefix", name[:-1]),
    ]
    with duckdb.connect() as connection:
        connection.execute("create schema mixpanel_data")
        connection.execute(
            "create table mixpanel_data.mixpanel_events "
            "(event_timestamp timestamp, distinct_id varchar, properties varchar, event_name varchar)"
        )
        connection.executemany("insert into mixpanel_data.mixpanel_events values (?, ?, '{}', ?)", rows)
        found = connection.execute(sql).fetchall()
    assert found == [(inside, "match", "{}")]


def _long(size: int) -> str:
    return (HOSTILE * (size // len(HOSTILE) + 1))[:size]


@pytest.mark.parametrize(
    ("name_size", "settings"),
    [(300, DUCKDB), (300, BIGQUERY), (5000, DUCKDB), (5000, BIGQUERY)],
    ids=["300-char-name", "300-char-name-bigquery", "5000-char-name-sql-cut", "5000-char-name-sql-cut-bigquery"],
)
def test_block_kit_limits_with_huge_content(name_size: int, settings: Settings) -> None:
    name = _long(name_size)
    bigquery = settings is BIGQUERY
    messages = [
        firing(
            name, settings, channel=_long(5000), description=_long(5000), delivered_to=_long(5000),
            value_size=5000, delay=Delay(DELAY.due_since, 10**6, may_repeat=True),
        ),
        resolved_message(incident(name, status="over", channel=_long(5000)), delay=DELAY),
    ]  # fmt: skip
    for message in messages:
        assert 1 <= len(message.blocks) <= SLACK_LIMITS["blocks"]
        assert len(message.text) <= 4000, "Slack cuts a longer notification text"
        for block in message.blocks:
            if block["type"] == "header":
                assert 1 <= len(block["text"]["text"]) <= SLACK_LIMITS["header"]
            elif block["type"] == "section":
                assert 1 <= len(block["text"]["text"]) <= SLACK_LIMITS["section"]
                assert len(block.get("fields", [])) <= SLACK_LIMITS["fields"]
                for field in block.get("fields", []):
                    assert 1 <= len(field["text"]) <= SLACK_LIMITS["field"]
            else:
                for element in block["elements"]:
                    assert 1 <= len(element["text"]) <= SLACK_LIMITS["field"]
        # cut to fit, and still safe: the SQL fence closes even when the SQL is cut
        assert_message_safe(message, bigquery=bigquery and message is messages[0])
    investigate = next(
        block["text"]["text"]
        for block in messages[0].blocks
        if block["type"] == "section" and block["text"]["text"].startswith("*Investigate*")
    )
    assert investigate.endswith("```")
    if name_size == 5000:
        assert investigate.endswith("…```"), "the SQL is cut inside its fence"


@pytest.mark.parametrize(
    ("expectation", "peak", "window", "sentence", "back"),
    [
        (BASELINE_SPIKE, 412, 5, "412 events in 5 min, expected 40\u201395 at this time on a Monday",
         "back within its expected range (40\u201395)"),
        (BASELINE_DROP, 3, 15, "3 events in 15 min, expected 180\u2013260 at this time on a Monday",
         "back within its expected range (180\u2013260)"),
        (MINIMUM_DROP, 3, 15, "3 events in 15 min, fewer than the minimum of 10", "back above its minimum of 10"),
        ({}, 12, 1, "12 events in 1 min, above the threshold of 5", "back under its threshold of 5"),
        ({"upper_bound": 7.0}, 12, 1, "12 events in 1 min, above the threshold of 7", "back under its threshold of 7"),
        (NO_CEILING, 1, 1, "1 event in 1 min, expected 3 (at most 9) at this time on a Monday",
         "back within its expected range (at most 9)"),
        ({"alert_threshold": None}, 12, 1, "12 events in 1 min, more than expected", "back to normal"),
        ({"alert_threshold": 12345}, 20000, 1, "20,000 events in 1 min, above the threshold of 12,345",
         "back under its threshold of 12,345"),
        ({"kind": "spike", "expected_count": 12345.6, "lower_bound": 9876.5, "upper_bound": 15432.1}, 40000, 5,
         "40,000 events in 5 min, expected 9,880\u201315,400 at this time on a Monday",
         "back within its expected range (9,880\u201315,400)"),
        ({**NO_CEILING, "upper_bound": 42.0, "repeated_bursts": 4}, 50, 5,
         "50 events in 5 min, expected 3 (at most 42) at this time on a Monday, its 4th burst past 42 in a few hours",
         "back within its expected range (at most 42)"),
    ],
    ids=["baseline-spike", "baseline-drop", "minimum-drop", "threshold", "threshold-from-the-band",
         "no-ceiling", "no-threshold-at-all", "exact-threshold", "large-counts", "repeated-bursts"],
)  # fmt: skip
def test_alerts_say_what_was_expected(
    expectation: dict[str, Any], peak: int, window: int, sentence: str, back: str
) -> None:
    """The sentence (2024-01-01 was a Monday) in the fallback text, the summary and the terminal;
    the sparkline's caption shows the expectation; the resolved notice fits the kind."""
    subject = dataclasses.replace(incident("checkout", **expectation), peak_count=peak, time_window_minutes=window)
    message = firing_message(
        subject, minute_counts=list(range(1, 31)), samples=[], investigation=Investigation(sql="select 1"),
        description="Checkout completions <!here>",
    )  # fmt: skip
    assert sentence in message.text
    assert "None" not in json.dumps(message.blocks) and "None" not in message.text
    summary = message.blocks[1]["text"]["text"]
    assert summary.startswith(f"`checkout`: {sentence} (30 events during the incident).")
    assert message.blocks[2] == {
        "type": "context",
        "elements": [{"type": "plain_text", "text": "Checkout completions &lt;!here&gt;", "emoji": False}],
    }, "the rule's description is shown as typed, escaped"
    [chart] = [block["text"]["text"] for block in message.blocks if "*Last 30 minutes*" in str(block)]
    caption = chart.split("\n")[0]
    unit = "events per minute" if window == 1 else f"events per {window}-min window, minute by minute"
    assert caption.startswith(f"*Last 30 minutes*: {unit} (max "), caption
    if subject.expected_count is not None:
        assert f"; expected {sentence.split('expected ')[1].split(' at this')[0]})" in caption
    elif subject.threshold is not None:
        assert f"threshold {subject.threshold:,.0f}" in caption
    over = dataclasses.replace(subject, status="over", ended_at=MINUTE + timedelta(minutes=9))
    resolved = resolved_message(over)
    assert f"is {back} since 2024-01-01 12:09 UTC" in resolved.text
    assert "None" not in resolved.text
    console = Console(record=True, width=200)
    show(console, message, "#alerts")
    assert sentence in console.export_text().replace("\n", " ").replace("│", " ").replace("  ", " ")


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "0"), (-1.0, "0"), (2.54, "2.5"), (9.96, "10"), (40.2, "40"), (999.4, "999"), (1234.0, "1,230"),
     (15432.1, "15,400")],
)  # fmt: skip
def test_counts_are_rounded_as_people_say_them(value: float, text: str) -> None:
    assert rounded(value) == text


@pytest.mark.parametrize(
    ("number", "text"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (13, "13th"),
                         (21, "21st"), (22, "22nd"), (101, "101st"), (111, "111th")],
)  # fmt: skip
def test_ordinals_read_as_english(number: int, text: str) -> None:
    assert ordinal(number) == text


def windowed(status: str = "over", **changes: Any) -> Incident:
    """A 5-minute-window spike: its first anomalous window is 09:32-09:36, its last ends 09:39."""
    first = datetime(2024, 1, 1, 9, 36)
    fields: dict[str, Any] = {
        "started_at": first - timedelta(minutes=4), "first_anomalous_minute": first,
        "last_anomalous_minute": first + timedelta(minutes=3), "time_window_minutes": 5, "anomalous_minutes": 4,
        "ended_at": first + timedelta(minutes=4) if status == "over" else None, "alert_threshold": 32,
        "total_events": 120,
    }  # fmt: skip
    return dataclasses.replace(incident("checkout", status=status), **{**fields, **changes})


def terminal(message: Message) -> str:
    console = Console(record=True, width=200)
    show(console, message, "#alerts")
    return console.export_text()


@pytest.mark.parametrize(
    ("status", "field", "shaded"),
    [("over", "2024-01-01 09:36\u201309:39 UTC", "(09:36\u201309:39 UTC)"),
     ("open", "since 2024-01-01 09:36 UTC", "(since 09:36 UTC)")],
)  # fmt: skip
def test_the_alert_and_its_chart_name_the_same_anomalous_minutes(status: str, field: str, shaded: str) -> None:
    """Once the alert said "Started 09:32" (its first window's first minute) beside a chart shading
    09:36-09:39 (its anomalous minutes). Now the field, the terminal and the chart's words name the
    anomalous minutes, and 09:32 is said for what it is: where the events counted begin."""
    subject = windowed(status)
    message = firing_message(
        subject, minute_counts=[], samples=[], investigation=Investigation(sql="select 1"),
        chart=ChartAttachment(file_id="F1", note=None, hours=3),
    )  # fmt: skip
    fields = [field["text"] for field in message.blocks[1]["fields"]]
    assert fields[0] == f"*Anomalous*\n{field}"
    assert not any("Started" in text or "09:32" in text for text in fields)
    assert message.blocks[1]["text"]["text"].endswith(
        "(120 events from 09:32 UTC, when its first anomalous 5-min window began)."
    )
    assert "(since 2024-01-01 09:36 UTC)" in message.text, "the notification names the first anomalous minute"
    assert f"the anomalous minutes {shaded} are shaded" in chart_alt_text(subject, 3)
    [image] = [block for block in message.blocks if block["type"] == "image"]
    assert f"the anomalous minutes {shaded} are shaded" in image["alt_text"]
    assert image["title"]["text"].endswith(f"; anomalous {shaded[1:-5]} shaded"), image["title"]
    shown = terminal(message)
    assert f"*Anomalous*: {field}" in shown and f"anomalous {shaded[1:-5]} shaded" in shown


def test_a_one_minute_window_counts_during_the_incident() -> None:
    subject = windowed(time_window_minutes=1)
    subject = dataclasses.replace(subject, started_at=subject.first_anomalous_minute)
    message = firing_message(subject, minute_counts=[], samples=[], investigation=Investigation(sql="select 1"))
    assert message.blocks[1]["text"]["text"].endswith("(120 events during the incident).")


@pytest.mark.parametrize(
    ("window", "counts", "heading", "points"),
    [(5, [6] * 50 + [9] * 10, "*Last 60 minutes*: events per 5-min window, minute by minute (max 45; threshold 32)",
      56),
     (1, [6] * 50 + [36] * 10, "*Last 60 minutes*: events per minute (max 36; threshold 32)", 60),
     (90, [6] * 50 + [36] * 10, "*Last 60 minutes*: events per minute (max 36)", 60)],
    ids=["window-counts", "one-minute-window", "window-longer-than-the-minutes"],
)  # fmt: skip
def test_the_sparkline_speaks_one_unit(window: int, counts: list[int], heading: str, points: int) -> None:
    """The webhook's sparkline once said "max 36/min; threshold 32 per 5-min window". Now its
    counts are the windows' (the threshold's unit); with too few minutes for two windows, per
    minute, without a bound of another unit."""
    subject = windowed(time_window_minutes=window)
    message = firing_message(
        subject, minute_counts=counts, samples=[], investigation=Investigation(sql="select 1"),
        delivered_to="the webhook's channel",
    )  # fmt: skip
    [spark] = [block["text"]["text"] for block in message.blocks if "*Last " in str(block)]
    first, line = spark.split("\n")
    assert first == heading and "/min" not in spark
    assert len(line.strip("`")) == points


def test_window_counts_are_the_rules_windows() -> None:
    assert render.window_counts([1, 2, 3, 4, 5], 3) == [6, 9, 12]
    assert render.window_counts([1, 2, 3], 1) == [1, 2, 3]
    assert render.window_counts([1, 2], 5) == []


@pytest.mark.parametrize("expectation", [BASELINE_DROP, MINIMUM_DROP], ids=["baseline-drop", "minimum-drop"])
def test_a_drop_shows_no_sample_events(expectation: dict[str, Any]) -> None:
    """Events that did arrive say nothing about those missing: a drop's alert shows none, even
    when some are passed; a spike's shows them."""
    samples = [{"event_at": MINUTE, "properties": {"error_message": "boom"}}]
    investigation = Investigation(sql="select 1")
    drop = firing_message(incident("checkout", **expectation), minute_counts=[], samples=samples,
                          investigation=investigation)  # fmt: skip
    spike = firing_message(incident("checkout"), minute_counts=[], samples=samples, investigation=investigation)
    assert "Sample events" not in json.dumps(drop.blocks) and "boom" not in json.dumps(drop.blocks)
    assert "*Sample events*\n• 2024-01-01 12:00 UTC\n   `error_message`: `boom`" in json.dumps(
        spike.blocks, ensure_ascii=False
    ).replace("\\n", "\n")


def test_samples_fill_their_section_with_whole_properties() -> None:
    """Long values: the section keeps to Slack's limit by leaving properties out, never by cutting
    one open (a cut code span would let the rest format)."""
    message = firing("checkout", value_size=5000)
    [samples] = [block["text"]["text"] for block in message.blocks if "*Sample events*" in str(block)]
    assert len(samples) <= SLACK_LIMITS["section"] and samples.endswith(" …")
    assert_data_does_not_format(samples)


@pytest.mark.parametrize(
    ("zone", "when", "said", "began"),
    [
        ("UTC", MINUTE, "2024-01-01 12:00\u201312:02 UTC", "11:56 UTC"),
        ("America/New_York", MINUTE, "2024-01-01 07:00\u201307:02 EST", "06:56 EST"),
        ("America/New_York", datetime(2024, 7, 1, 12, 0), "2024-07-01 08:00\u201308:02 EDT", "07:56 EDT"),
        ("Asia/Kolkata", MINUTE, "2024-01-01 17:30\u201317:32 IST", "17:26 IST"),
    ],
)
def test_alerts_speak_in_the_detection_timezone(zone: str, when: datetime, said: str, began: str) -> None:
    """DETECTION_TIMEZONE sets the clock of what a person reads (the "Anomalous" field, when the
    windows began, the chart's title), each time with its zone's abbreviation; the data stays UTC."""
    from mixpanel_alerts.alerts import clock

    subject = dataclasses.replace(
        incident("checkout", status="over"),
        started_at=when - timedelta(minutes=4),
        time_window_minutes=5,
        first_anomalous_minute=when,
        last_anomalous_minute=when + timedelta(minutes=2),
        ended_at=when + timedelta(minutes=3),
    )
    with clock.speaking_in(zone):
        assert render.anomalous_when(subject) == said
        label = said.rsplit(" ", 1)[1]
        assert render.chart_title(subject, 3).endswith(f"the last 3 hours ({label})")
        assert f"from {began}, when its first anomalous 5-min window began" in render.counted_from(subject)
    assert render.anomalous_when(subject).endswith(" UTC")  # outside the alert step: UTC
