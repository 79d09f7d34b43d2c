"""Charts in Slack: the PNG (alerts/chart.py), its upload by the bot (Slack's external upload, against
the Slack fake), and the firing message that shows it or says why it could not."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import struct
import time
import unicodedata
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from PIL import Image, ImageDraw

from mixpanel_alerts.alerts import chart
from mixpanel_alerts.alerts.chart import ChartPoint, render_chart
from mixpanel_alerts.alerts.render import (
    ChartAttachment,
    Incident,
    Investigation,
    Message,
    chart_alt_text,
    chart_filename,
    chart_title,
    firing_message,
    plain,
    what_happened,
)  # fmt: skip
from mixpanel_alerts.alerts.slack import BotSender, ChartUnavailable, DeliveryError, Pacer, Stamp
from tests.hostile import HOSTILE_NAMES
from tests.slack_fake import BOT_TOKEN, SlackFake

START = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
MINUTES = 180
INCIDENT_FROM, INCIDENT_TO = 150, 160  # minutes after START
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RAW_MARKUP = ("<!channel>", "<!here>", "<@U123>", "<https://evil")
HOSTILE = "x```<!channel> `` <@U123> <https://evil.example|click> &"


def at(minute: int) -> datetime:
    return START + timedelta(minutes=minute)


def baseline_points() -> list[ChartPoint]:
    """A steady 10 a minute in a band of 5-60 (expected 30), 100 during the incident."""
    return [
        ChartPoint(at(m), 100 if INCIDENT_FROM <= m <= INCIDENT_TO else 10, expected=30.0, lower=5.0, upper=60.0)
        for m in range(MINUTES)
    ]


def baseline_chart() -> bytes:
    return render_chart(
        baseline_points(), incident_start=at(INCIDENT_FROM), incident_end=at(INCIDENT_TO), title="checkout · UTC"
    )


def pixel_at(image: Image.Image, minute: float, count: float, top_count: float) -> tuple[int, int, int]:
    """The colour where ``minute`` and ``count`` are drawn on a chart of MINUTES points whose count
    axis ends at ``top_count`` (the layout's own margins)."""
    left, right = chart.MARGIN_LEFT, chart.WIDTH - chart.MARGIN_RIGHT
    top, bottom = chart.MARGIN_TOP, chart.HEIGHT - chart.MARGIN_BOTTOM
    x = left + (minute + 0.5) / MINUTES * (right - left)
    y = bottom - count / top_count * (bottom - top)
    red, green, blue = image.getpixel((round(x), round(y)))  # type: ignore[misc]
    return red, green, blue


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image.convert("RGB")


# ------------------------------------------------------------------ the PNG


def test_the_chart_is_a_valid_png_of_the_set_size_and_the_same_every_time() -> None:
    png = baseline_chart()
    assert png.startswith(PNG_SIGNATURE)
    length, kind = struct.unpack(">I4s", png[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (chart.WIDTH, chart.HEIGHT) == (800, 300)
    assert struct.unpack(">I", png[29:33])[0] == zlib.crc32(png[12:29]), "the IHDR checksum"
    assert png.endswith(b"IEND\xaeB`\x82")
    assert decode(png).size == (800, 300)
    assert baseline_chart() == png, "deterministic: the same input draws the same bytes"
    assert len(png) < 200_000, "small enough to upload in a moment"


def test_the_incident_and_the_band_are_drawn_where_they_belong() -> None:
    image = decode(baseline_chart())
    top_count = chart._axis_top([100.0, 60.0])
    assert top_count == 120  # gridlines at 0, 30, 60, 90, 120: the samples below avoid them
    middle = (INCIDENT_FROM + INCIDENT_TO) / 2
    # above the band (60) and below the incident's counts (100): only the incident's shade, or nothing
    shaded = pixel_at(image, middle, 75, top_count)
    clear = pixel_at(image, 60, 75, top_count)
    assert clear == (255, 255, 255), "outside the incident, above the band: the background"
    red, green, blue = shaded
    assert red > green + 15 and red > blue + 15 and red > 230, f"the incident is shaded red: {shaded}"
    # inside the band (5-60), away from the counts (10) and the expected line (30)
    band = pixel_at(image, 60, 45, top_count)
    assert band != (255, 255, 255) and band[2] > band[0] + 15, f"the band is a light blue fill: {band}"
    band_in_incident = pixel_at(image, middle, 45, top_count)
    assert band_in_incident not in (band, shaded), "the shade is blended over the band, not hidden under it"
    # the counts line: dark where the count is drawn, just before the incident
    assert sum(pixel_at(image, 100, 10, top_count)) < 3 * 160, "the counts line"
    # the line is red-dotted where it leaves the band (the incident's 100s are above 60)
    dot = pixel_at(image, INCIDENT_FROM + 3, 100, top_count)
    assert dot[0] > 180 and dot[1] < 110, f"a point outside the band is marked red: {dot}"


def test_a_threshold_rule_draws_its_threshold_and_no_band() -> None:
    points = [ChartPoint(at(m), 40 if m == INCIDENT_FROM else 5, upper=20.0) for m in range(MINUTES)]
    image = decode(render_chart(points, incident_start=at(INCIDENT_FROM), incident_end=at(INCIDENT_FROM), title="t"))
    top_count = chart._axis_top([40.0, 20.0])
    assert top_count == 80
    threshold = pixel_at(image, 60, 20, top_count)
    assert threshold[0] > 180 and threshold[2] < 120, f"the threshold is an orange line: {threshold}"
    assert pixel_at(image, 60, 10, top_count) == (255, 255, 255), "no fill under a threshold alone"


def test_rendering_is_fast() -> None:
    points = baseline_points()
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        render_chart(points, incident_start=at(INCIDENT_FROM), incident_end=None, title="checkout")
        timings.append(time.perf_counter() - started)
    # about 20 ms here for three hours of minutes; the bound leaves room for a loaded CI machine
    assert min(timings) < 0.1, timings


LONG_TITLE = "日本語のイベント 🚀 \n\t\u202eRTL\x00 " * 40
EDGE_CASES: dict[str, tuple[list[ChartPoint], datetime | None, datetime | None, str]] = {
    "no-points": ([], at(0), at(3), "nothing"),
    "one-point": ([ChartPoint(at(0), 7, upper=5.0)], at(0), at(0), "one"),
    "all-zeros": ([ChartPoint(at(m), 0) for m in range(60)], None, None, "zeros"),
    "no-bounds-and-some": (
        [ChartPoint(at(m), m % 7, expected=3.0 if m % 3 else None, lower=None, upper=6.0 if m % 2 else None)
         for m in range(60)],
        at(50), None, "gaps",
    ),
    "huge-counts": (
        [ChartPoint(at(m), 10**15 + m * 10**12, 1e15, 9e14, 1.1e15) for m in range(60)], at(40), at(59), "big"
    ),
    "not-finite-bounds": (
        [ChartPoint(at(m), 3, math.nan, -math.inf, math.inf) for m in range(10)], at(2), at(4), "nan"
    ),
    "negative-lower": ([ChartPoint(at(m), 3, 2.0, -4.0, 8.0) for m in range(10)], at(2), at(4), "negative"),
    "unsorted-other-zone-and-naive": (
        [ChartPoint(datetime(2024, 1, 1, 14, m, tzinfo=timezone(timedelta(hours=5))), m) for m in (5, 1, 3)]
        + [ChartPoint(datetime(2024, 1, 1, 9, 2), 9)],
        datetime(2024, 1, 1, 9, 2), datetime(2024, 1, 1, 9, 3), "zones",
    ),
    "incident-outside-the-chart": ([ChartPoint(at(m), 3) for m in range(10)], at(-90), at(-60), "before"),
    "across-midnight": ([ChartPoint(at(m), 3) for m in range(14 * 60, 16 * 60)], at(15 * 60), None, "midnight"),
    "non-ascii-and-control-title": ([ChartPoint(at(m), 3) for m in range(10)], at(2), at(4), LONG_TITLE),
    "hostile-title": ([ChartPoint(at(m), 3) for m in range(10)], at(2), at(4), HOSTILE_NAMES[0] + HOSTILE),
}  # fmt: skip


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_edge_cases_draw_a_valid_chart(case: str) -> None:
    points, start, end, title = EDGE_CASES[case]
    png = render_chart(points, incident_start=start, incident_end=end, title=title)
    image = decode(png)
    assert image.size == (800, 300)
    colours = image.getcolors(maxcolors=800 * 300) or []
    assert len(colours) > 2, "something is drawn (a title at least)"


def test_the_band_of_the_single_point_and_the_incident_cover_the_chart() -> None:
    image = decode(render_chart([ChartPoint(at(0), 7, upper=5.0)], incident_start=at(0), incident_end=at(0), title=""))
    left, right = chart.MARGIN_LEFT, chart.WIDTH - chart.MARGIN_RIGHT
    row = chart.HEIGHT - chart.MARGIN_BOTTOM - 20
    for x in (left + 5, (left + right) // 2 + 20, right - 5):
        red, green, _ = image.getpixel((x, row))  # type: ignore[misc]
        assert red > green + 15, "the one minute is the incident, shaded across the chart"


# ------------------------------------------------------------------ the upload


@pytest.fixture
def fake() -> Iterator[SlackFake]:
    slack = SlackFake()
    yield slack
    slack.stop()


def bot(fake: SlackFake) -> BotSender:
    return BotSender(BOT_TOKEN, fake.api_url, pacer=Pacer(0), timeout=5)


def test_upload_chart_sends_the_bytes_and_completes_the_file_without_posting_it(fake: SlackFake) -> None:
    png = baseline_chart()
    file_id = bot(fake).upload_chart(png, "checkout.png", "checkout · last 3 hours (UTC)", "Chart of checkout")
    uploaded = fake.files[file_id]
    assert uploaded["bytes"] == png and uploaded["length"] == len(png)
    assert uploaded["complete"] and uploaded["title"] == "checkout · last 3 hours (UTC)"
    assert uploaded["filename"] == "checkout.png" and uploaded["alt_txt"] == "Chart of checkout"
    assert [name for name, _ in fake.requests] == [
        "files.getUploadURLExternal",
        f"/upload/{file_id}",
        "files.completeUploadExternal",
    ]
    assert all(outcome == "ok" for _, outcome in fake.requests)
    assert fake.messages == [], "the file is not posted on its own"


def test_an_alert_shows_the_uploaded_chart(fake: SlackFake) -> None:
    sender = bot(fake)
    subject = incident("checkout")
    png = render_chart(baseline_points(), incident_start=at(150), incident_end=at(160), title=chart_title(subject, 3))
    file_id = sender.upload_chart(png, chart_filename(subject), chart_title(subject, 3), chart_alt_text(subject, 3))
    message = firing(subject, chart=ChartAttachment(file_id=file_id, note=None, hours=3))
    sender.post(message, "#alerts-errors", Stamp("key", "firing", subject.incident_id))
    [posted] = fake.messages
    [image] = [block for block in posted["blocks"] if block["type"] == "image"]
    assert image["slack_file"] == {"id": file_id}


@pytest.mark.parametrize(
    ("fault", "method", "reason"),
    [
        (None, None, "the bot token lacks the files:write scope"),
        ("not_allowed_token_type", "files.getUploadURLExternal",
         "the Slack token cannot upload files (not_allowed_token_type)"),
        ("500", "files.getUploadURLExternal", "Slack files.getUploadURLExternal answered HTTP 500"),
        ("500", "upload", "the file upload answered HTTP 500"),
        ("drop", "upload", "the file upload: connection lost"),
        ("503", "files.completeUploadExternal", "Slack files.completeUploadExternal answered HTTP 503"),
        ("drop", "files.completeUploadExternal", "Slack files.completeUploadExternal: connection lost"),
    ],
    ids=["missing-files-write", "token-type", "url-500", "upload-500", "upload-dropped", "complete-503",
         "complete-dropped"],
)  # fmt: skip
def test_a_failed_upload_raises_chart_unavailable_with_a_reason(
    fake: SlackFake, fault: str | None, method: str | None, reason: str
) -> None:
    if fault is None:
        fake.scopes.discard("files:write")
    else:
        fake.inject(fault, method=method)
    started = time.monotonic()
    with pytest.raises(ChartUnavailable) as failed:
        bot(fake).upload_chart(b"\x89PNG", "chart.png", "title", "alt")
    assert failed.value.reason.startswith(reason) and str(failed.value) == failed.value.reason
    assert BOT_TOKEN not in failed.value.reason and "upload/" not in failed.value.reason
    assert time.monotonic() - started < 2, "no retry, no backoff: a chart never holds an alert"
    assert not any(uploaded["complete"] for uploaded in fake.files.values())
    assert len(fake.requests) <= 3, "each step tried once"


def test_an_unreachable_slack_raises_chart_unavailable() -> None:
    fake = SlackFake()
    sender = bot(fake)
    fake.stop()
    with pytest.raises(ChartUnavailable, match="unreachable"):
        sender.upload_chart(b"\x89PNG", "chart.png", "title", "alt")


def test_the_fake_refuses_an_image_of_a_file_it_does_not_have(fake: SlackFake) -> None:
    """As Slack does: an image block's slack_file must be a completed upload."""
    sender = bot(fake)
    stamp = Stamp("key", "firing", "incident")
    unknown = firing(incident("checkout"), chart=ChartAttachment(file_id="F0NOSUCHFILE", note=None, hours=3))
    with pytest.raises(DeliveryError) as refused:
        sender.post(unknown, "#alerts-errors", stamp)
    assert "invalid_blocks" in str(refused.value) and refused.value.permanent and not refused.value.maybe_delivered
    assert fake.messages == [] and fake.requests[-1] == ("chat.postMessage", "invalid_blocks")
    # an upload not completed is no better
    fake.inject("500", method="files.completeUploadExternal")
    with pytest.raises(ChartUnavailable):
        sender.upload_chart(b"\x89PNG", "chart.png", "title", "alt")
    [pending] = fake.files
    assert fake.files[pending]["bytes"] == b"\x89PNG" and not fake.files[pending]["complete"]
    with pytest.raises(DeliveryError, match="invalid_blocks"):
        sender.post(dataclasses.replace(unknown, blocks=with_file(unknown, pending)), "#alerts-errors", stamp)


def with_file(message: Message, file_id: str) -> list[dict[str, Any]]:
    return [{**block, "slack_file": {"id": file_id}} if block["type"] == "image" else block for block in message.blocks]


# ------------------------------------------------------------------ the message


def incident(name: str, **expectation: Any) -> Incident:
    return Incident(
        incident_id="f06b143917021cc559325cff36477c0e",
        event_name=name,
        started_at=at(INCIDENT_FROM),
        first_anomalous_minute=at(INCIDENT_FROM),
        last_anomalous_minute=at(INCIDENT_TO),
        ended_at=None,
        status="open",
        peak_count=100,
        total_events=1000,
        time_window_minutes=5,
        alert_channel="#alerts-errors",
        anomalous_minutes=11,
        **{"alert_threshold": None, "expected_count": 30.0, "lower_bound": 5.0, "upper_bound": 60.0, **expectation},
    )


def firing(subject: Incident, **options: Any) -> Message:
    return firing_message(
        subject,
        minute_counts=[10, 10, 100, 100],
        samples=[],
        investigation=Investigation(sql="select 1"),
        **options,
    )


def texts(message: Message) -> str:
    return json.dumps(message.blocks, ensure_ascii=False)


def test_without_a_chart_the_message_is_as_before() -> None:
    subject = incident("checkout")
    assert firing(subject, chart=None) == firing(subject)
    assert '"image"' not in texts(firing(subject)) and "*Last 4 minutes*" in texts(firing(subject))


@pytest.mark.parametrize("name", [*HOSTILE_NAMES, HOSTILE], ids=lambda name: f"{len(name)}-chars")
def test_the_image_block_replaces_the_sparkline_and_is_safe(name: str) -> None:
    subject = incident(name)
    message = firing(subject, chart=ChartAttachment(file_id="F0000000001", note=None, hours=3))
    [image] = [block for block in message.blocks if block["type"] == "image"]
    assert set(image) == {"type", "slack_file", "alt_text", "title"}
    assert image["slack_file"] == {"id": "F0000000001"}
    assert 1 <= len(image["alt_text"]) <= 2000 and image["title"]["type"] == "plain_text"
    assert 1 <= len(image["title"]["text"]) <= 2000
    assert image["alt_text"] == plain(chart_alt_text(subject, 3))
    assert image["title"]["text"] == (
        "The last 3 hours (UTC): expected 5\u201360 per 5-min window; anomalous since 11:30 shaded"
    )
    for text in (image["alt_text"], image["title"]["text"]):
        assert "<" not in text and ">" not in text, text
    for markup in RAW_MARKUP:
        assert markup not in texts(message)
    assert "*Last 4 minutes*" not in texts(message), "the image takes the sparkline's place"
    index = message.blocks.index(image)
    assert message.blocks[index - 1]["type"] == "section" and "events during the incident" in str(
        message.blocks[index - 1]
    )


def test_the_alt_text_says_what_the_chart_shows() -> None:
    alt = chart_alt_text(incident("checkout"), 3)
    assert alt == (
        "Chart of checkout over the last 3 hours (UTC): the events per 5-min window, minute by minute "
        "(expected 5\u201360); the anomalous minutes (since 11:30 UTC) are shaded. "
        "100 events in 5 min, expected 5\u201360 at this time on a Monday."
    )
    over = dataclasses.replace(incident("checkout"), status="over", ended_at=at(INCIDENT_TO + 1))
    assert "the anomalous minutes (11:30\u201311:40 UTC) are shaded" in chart_alt_text(over, 3)
    threshold = incident("errors", expected_count=None, lower_bound=None, upper_bound=None, alert_threshold=50)
    assert "(threshold 50)" in chart_alt_text(threshold, 1) and "over the last hour" in chart_alt_text(threshold, 1)
    assert chart_title(threshold, 3) == "errors · events per 5-min window, the last 3 hours (UTC)"
    assert chart_filename(incident(HOSTILE)) == "x-channel-U123-https-evil-example-click-f06b14391702.png"
    assert chart_filename(incident("日本")) == "event-f06b14391702.png"


def test_a_failed_upload_keeps_the_sparkline_and_says_why() -> None:
    note = "the bot token lacks the files:write scope"
    message = firing(incident("checkout"), chart=ChartAttachment(file_id=None, note=note, hours=3))
    assert '"image"' not in texts(message)
    [spark] = [i for i, block in enumerate(message.blocks) if "*Last 4 minutes*" in str(block)]
    context = message.blocks[spark + 1]
    assert context["type"] == "context"
    assert context["elements"] == [{"type": "plain_text", "text": f"Chart not attached: {note}.", "emoji": False}]
    hostile = firing(incident("checkout"), chart=ChartAttachment(file_id=None, note=HOSTILE, hours=3))
    for markup in RAW_MARKUP:
        assert markup not in texts(hostile), "a reason is escaped like any text"


def test_a_preview_says_where_the_chart_would_be() -> None:
    message = firing(incident("checkout"), chart=ChartAttachment(file_id=None, note=None, hours=3))
    assert '"image"' not in texts(message) and "*Last 4 minutes*" in texts(message)
    assert "A chart of the last 3 hours goes here in Slack (with a bot token)." in texts(message)


# ------------------------------------------------------------------ what the chart says


def drawn_texts(monkeypatch: pytest.MonkeyPatch, points: list[ChartPoint], **kwargs: Any) -> list[str]:
    """The texts the chart draws (Pillow's own text drawing, watched, not replaced)."""
    texts: list[str] = []
    original = ImageDraw.ImageDraw.text

    def watched(self: ImageDraw.ImageDraw, xy: Any, text: Any, *args: Any, **options: Any) -> None:
        texts.append(str(text))
        original(self, xy, text, *args, **options)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", watched)
    render_chart(points, title="t", **kwargs)
    return texts


def test_the_count_axis_is_labelled_in_one_unit_above_ten_thousand(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the report's formatter (core.numbers): 0, 3k, 6k, 9k, 12k, where the chart's own once
    wrote 3,000, 6,000, 9,000, 12k."""
    points = [ChartPoint(at(m), 11_000 if m == 100 else 4_000, upper=10_000.0) for m in range(MINUTES)]
    texts = drawn_texts(monkeypatch, points, incident_start=at(100), incident_end=at(100))
    assert texts[1:6] == ["0", "3k", "6k", "9k", "12k"]


@pytest.mark.parametrize(
    ("end", "legend"),
    [(INCIDENT_TO, "anomalous 11:30-11:40"), (None, "anomalous since 11:30"),
     (INCIDENT_FROM, "anomalous 11:30")],
    ids=["over", "ongoing", "one-minute"],
)  # fmt: skip
def test_the_legend_names_the_anomalous_minutes_as_the_alert_does(
    monkeypatch: pytest.MonkeyPatch, end: int | None, legend: str
) -> None:
    """The shade's key says which minutes it covers, in the words of the alert's "Anomalous" field
    (render.anomalous_span); it once said "incident" beside an alert that "Started" 4 minutes earlier."""
    texts = drawn_texts(
        monkeypatch, baseline_points(), incident_start=at(INCIDENT_FROM), incident_end=at(end) if end else None
    )
    assert legend in texts and "incident" not in texts


FILE_NAMES = [*HOSTILE_NAMES, HOSTILE, "*bold* _x_ ~s~ :fire:", "a\u202eb\u2066c\x00d\x1be", "see https://evil.example"]


@pytest.mark.parametrize("name", [*FILE_NAMES, "x" * 1000, HOSTILE * 30], ids=lambda name: f"{len(name)}-chars")
def test_the_uploaded_files_title_and_alt_text_are_safe(name: str) -> None:
    """files.getUploadURLExternal's alt_txt and the file's title are no Block Kit: Slack shows them
    as typed, and refuses an alt_txt over 1,000 characters. One line, no control or format
    character, no markup (no < or >) and no link, within the limits; the alt text always ends by
    saying what happened."""
    subject = incident(name)
    for text, limit in ((chart_alt_text(subject, 3), 1000), (chart_title(subject, 3), 250)):
        assert 1 <= len(text) <= limit, len(text)
        assert not any(unicodedata.category(char)[0] == "C" for char in text), repr(text)
        assert "<" not in text and ">" not in text and "://" not in text, text
        assert text == text.strip() and "  " not in text
    assert chart_alt_text(subject, 3).endswith(f"are shaded. {what_happened(subject)}.")
    assert chart_title(subject, 3).endswith(" · events per 5-min window, the last 3 hours (UTC)")
    printable = not any(unicodedata.category(char)[0] == "C" or char in "<>" for char in name)
    if printable and "://" not in name and len(name) < 200:
        assert f"Chart of {name} over" in chart_alt_text(subject, 3), "the name as it is"
        assert chart_title(subject, 3).startswith(f"{name} · ")
