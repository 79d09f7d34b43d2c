"""Every block of every Slack message kind is safe with hostile content.

Each message (firing, through a webhook, late, late and maybe repeated, with a BigQuery console
link, resolved, resolved late) is built for every hostile event name, with a hostile description,
channel and sample properties, and the SQL to investigate built by the alert step itself. Every text
object is walked: mrkdwn is verbatim and holds no ``<``/``>`` but the product's own console link,
no data opens or closes a code block, and no mention or link reaches the JSON unescaped.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pytest
from rich.console import Console

import mixpanel_alerts.alerts.render as render
from mixpanel_alerts.alerts.render import (
    Delay,
    Incident,
    Investigation,
    Message,
    escape,
    firing_message,
    ordinal,
    resolved_message,
    rounded,
)  # fmt: skip
from mixpanel_alerts.alerts.step import Warehouse, show, sql_string
from mixpanel_alerts.core.config import Settings
from tests.hostile import HOSTILE_NAMES

HOSTILE = "x```<!channel> `` <@U123> <https://evil.example|click> &"
# HOSTILE as escape() must spell it: Slack's control characters as entities, backtick runs broken
HOSTILE_ESCAPED = "x`\u200b`\u200b`&lt;!channel&gt; `\u200b` &lt;@U123&gt; &lt;https://evil.example|click&gt; &amp;"
NAMES = [*HOSTILE_NAMES, HOSTILE]
RAW_MARKUP = ("<!channel>", "<!here>", "<@U123>", "<https://evil")
CHANNEL = "#alerts ``` <!channel> & <@U123>"
DESCRIPTION = "see ``` <!here> <https://evil.example|x> & @channel `"
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
        "error_message": "boom ``` <!here> <https://evil.example|x> @channel & `tick`" + pad,
        "reason`with```<!here>": "``` <!channel> & <@U123>" + pad,
        "<https://evil.example|x>": "@channel <!here>" + pad,
        "status &": "`" + pad,
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
}


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


def without_header_text(message: Message) -> list[dict[str, Any]]:
    return [block for block in message.blocks if block["type"] != "header"]


def assert_message_safe(message: Message, *, bigquery: bool = False) -> None:
    objects = list(text_objects(message))
    assert objects, "a message without text"
    for where, text_object in objects:
        if where == "header":
            assert text_object["type"] == "plain_text", "a header is plain text: Slack parses no markup in it"
            continue
        assert text_object["type"] == "mrkdwn", (where, text_object)
        assert text_object.get("verbatim") is True, f"not verbatim: {text_object}"
        assert_mrkdwn_safe(text_object["text"], bigquery=bigquery)
    assert "<" not in message.text and ">" not in message.text and "```" not in message.text, message.text
    # the header's plain text is checked on its own (test_header_holds_no_raw_markup)
    body = json.dumps(without_header_text(message), ensure_ascii=False) + json.dumps(message.text, ensure_ascii=False)
    for markup in RAW_MARKUP:
        assert markup not in body, f"{markup} reaches Slack unescaped"


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("name", NAMES, ids=NAME_IDS)
def test_every_block_of_every_message_is_safe(kind: str, name: str) -> None:
    message = KINDS[kind](name)
    assert_message_safe(message, bigquery=kind == "firing-bigquery")
    if kind.startswith("firing"):
        assert escape(name) in message.text, "the notification names the event"
        assert message.text.startswith(":rotating_light: late: ") is kind.startswith("firing-late")
        header = message.blocks[0]
        assert header["type"] == "header" and header["text"]["type"] == "plain_text"
        sections = [block["text"]["text"] for block in message.blocks if block["type"] == "section"]
        assert sum(text.startswith("*Investigate*") for text in sections) == 1
        assert sum(":hourglass: *Late*" in text for text in sections) == int("late" in kind)
        assert ("An earlier post of this message may have arrived" in "\n".join(sections)) is kind.endswith("repeat")
    else:
        assert "resolved" in message.text and escape(name) in message.text
        assert ("resolved (late)" in message.text) is kind.endswith("late")
    assert len(message.blocks) <= SLACK_LIMITS["blocks"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_known_hostile_values_are_shown_escaped(kind: str) -> None:
    """The exact escaped forms: these fail if escaping (or the backtick-run breaking) were skipped."""
    message = KINDS[kind](HOSTILE)
    texts = [text_object["text"] for where, text_object in text_objects(message) if where != "header"]
    everything = "\n".join(texts)
    if kind.startswith("resolved"):
        assert texts[0].startswith(
            f":white_check_mark: resolved{' (late)' if 'late' in kind else ''}: {HOSTILE_ESCAPED} "
        )
        return
    [summary] = [text for text in texts if "events during the incident)." in text]
    assert summary.startswith(f"*{HOSTILE_ESCAPED}*: 12 events in 1 min, ")
    assert "_see `\u200b`\u200b` &lt;!here&gt; &lt;https://evil.example|x&gt; &amp; @channel `_" in summary
    assert "*Channel*\n#alerts `\u200b`\u200b` &lt;!channel&gt; &amp; &lt;@U123&gt;" in texts
    # a sample property's key sits in inline code: its backticks become modifier letters
    assert (
        "`reason\u02cbwith\u02cb\u200b\u02cb\u200b\u02cb&lt;!here&gt;`: "
        "`\u200b`\u200b` &lt;!channel&gt; &amp; &lt;@U123&gt;" in everything
    )
    assert (
        "`error_message`: boom `\u200b`\u200b` &lt;!here&gt; &lt;https://evil.example|x&gt; @channel &amp; `tick`"
        in everything
    )
    assert "• &lt;!channel&gt; `\u200b`\u200b` not a time &amp;" in everything
    # the SQL names the event with chr(96) for each backtick and escaped control characters
    expected_sql = (
        "where event_name = ('x' || chr(96) || chr(96) || chr(96) || '&lt;!channel&gt; ' || chr(96) || chr(96) || "
        "' &lt;@U123&gt; &lt;https://evil.example|click&gt; &amp;')\n"
    )
    assert expected_sql in everything
    if kind == "firing-webhook":
        assert texts[-1] == (
            "incident f06b143917021cc559325cff36477c0e · rule channel #alerts `\u200b`\u200b` &lt;!channel&gt; &amp; "
            "&lt;@U123&gt; (sent through the webhook's channel &lt;!here&gt; `\u200b`\u200b`)"
        )


def test_header_holds_no_raw_markup() -> None:
    """No raw mention or link anywhere in the message's JSON, the header included: Slack asks for the
    three characters to be escaped in all text."""
    body = json.dumps(firing(HOSTILE).blocks, ensure_ascii=False)
    for markup in RAW_MARKUP:
        assert markup not in body


def _unverbatim(text: str, limit: int = render.MAX_SECTION_TEXT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": render.truncate(text, limit)}


def _entities_only(value: object) -> str:
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@pytest.mark.parametrize(
    ("attribute", "broken"),
    [("escape", str), ("escape", _entities_only), ("mrkdwn", _unverbatim)],
    ids=["escaping-skipped", "backtick-runs-kept", "verbatim-removed"],
)
@pytest.mark.parametrize("kind", list(KINDS))
def test_the_checks_catch_a_broken_renderer(
    monkeypatch: pytest.MonkeyPatch, attribute: str, broken: Callable[..., Any], kind: str
) -> None:
    """Proof that the assertions above bite: with the renderer broken, they fail."""
    monkeypatch.setattr(render, attribute, broken)
    message = KINDS[kind](HOSTILE)
    with pytest.raises(AssertionError):
        assert_message_safe(message, bigquery=kind == "firing-bigquery")
    if attribute == "escape":
        with pytest.raises(AssertionError):
            test_known_hostile_values_are_shown_escaped(kind)


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
        subject, minute_counts=[1, 2, 3], samples=[], investigation=Investigation(sql="select 1"),
        description="Checkout completions <!here>",
    )  # fmt: skip
    assert sentence in message.text
    assert "None" not in json.dumps(message.blocks) and "None" not in message.text
    summary = message.blocks[1]["text"]["text"]
    assert summary.startswith(f"*checkout*: {sentence} (30 events during the incident).")
    assert "_Checkout completions &lt;!here&gt;_" in summary, "the rule's description is shown, escaped"
    [chart] = [block["text"]["text"] for block in message.blocks if "*Last 3 minutes*" in str(block)]
    caption = chart.split("\n")[0]
    if subject.expected_count is not None:
        assert f"expected {sentence.split('expected ')[1].split(' at this')[0]} per {window}-min window" in caption
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
