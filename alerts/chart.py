"""A PNG chart of an incident's last hours, for the Slack message (a bot uploads it; see slack.py).

The counts per minute (each minute's window count) as a line, the band the rule allowed as a light
fill (a baseline's expected range, or up to a threshold and down to a minimum), the expected count
dashed, the threshold and the minimum as lines, and the incident's anomalous minutes shaded (the
legend names their span, as the alert's "Anomalous" field does). Times are in the alerts' clock
(clock.py); the count axis is labelled by mixpanel_alerts.core.numbers, as the backtest report's is.

Pillow draws it at twice the size and scales it down (smooth lines and text without anti-aliasing
primitives): about 800x300, in a few milliseconds, byte for byte the same for the same input.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import itertools
import math
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from PIL import Image, ImageDraw, ImageFont

from mixpanel_alerts.core.numbers import axis_labels
from mixpanel_alerts.core.times import utc

from . import clock
from .render import anomalous_span

WIDTH, HEIGHT = 800, 300
SUPERSAMPLE = 2
# plot margins (final pixels): y labels on the left, title and legend on top, time labels below
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 58, 18, 56, 28
TITLE_SIZE, LABEL_SIZE = 15, 11
# tick spacings in minutes: the smallest that gives at most MAX_TIME_TICKS labels
TIME_STEPS = (1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720, 1440)
MAX_TIME_TICKS = 8
COUNT_TICKS = 4

BACKGROUND = (255, 255, 255)
GRID = (233, 236, 240)
AXIS_TEXT = (96, 106, 120)
TITLE_TEXT = (29, 28, 29)
COUNTS = (29, 53, 87)
OUTSIDE = (214, 39, 40)
BAND = (220, 233, 246)
BAND_EDGE = (150, 186, 224)
EXPECTED = (62, 112, 176)
THRESHOLD = (217, 119, 6)
INCIDENT = (235, 70, 55, 46)  # blended over the band
INCIDENT_TEXT = (192, 57, 43)


@dataclasses.dataclass(frozen=True)
class ChartPoint:
    """One minute: its window count and what the rule allowed then. A threshold rule has no
    expected count, its threshold as ``upper`` and its minimum (if any) as ``lower``; a baseline
    rule has all three. Any may be missing."""

    minute_at: datetime
    count: int
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None


def render_chart(
    points: Sequence[ChartPoint], *, incident_start: datetime | None, incident_end: datetime | None, title: str
) -> bytes:
    """The chart as PNG bytes. ``incident_end`` None: the incident is ongoing (shaded to the end).
    Naive datetimes are taken as UTC."""
    scale = SUPERSAMPLE
    image = Image.new("RGB", (WIDTH * scale, HEIGHT * scale), BACKGROUND)
    draw = ImageDraw.Draw(image, "RGBA")  # blends the incident's translucent shade
    title_font, label_font = _font(TITLE_SIZE * scale), _font(LABEL_SIZE * scale)
    left, top = MARGIN_LEFT * scale, MARGIN_TOP * scale
    right, bottom = (WIDTH - MARGIN_RIGHT) * scale, (HEIGHT - MARGIN_BOTTOM) * scale
    draw.text((12 * scale, 9 * scale), _fit(title, title_font, (WIDTH - 24) * scale), font=title_font, fill=TITLE_TEXT)

    minutes = sorted((dataclasses.replace(point, minute_at=utc(point.minute_at)) for point in points),
                     key=lambda point: point.minute_at)  # fmt: skip
    if not minutes:
        message = "no counts for this period"
        width = draw.textlength(message, font=label_font)
        draw.text(((WIDTH * scale - width) / 2, (top + bottom) / 2), message, font=label_font, fill=AXIS_TEXT)
        return _png(image)

    start, end = minutes[0].minute_at - timedelta(seconds=30), minutes[-1].minute_at + timedelta(seconds=30)
    span = (end - start).total_seconds()
    top_count = _axis_top(_values(minutes))

    def x(moment: datetime) -> float:
        return left + (moment - start).total_seconds() / span * (right - left)

    def y(count: float) -> float:
        return bottom - min(max(count, 0.0), top_count) / top_count * (bottom - top)

    ticks = [top_count * tick / COUNT_TICKS for tick in range(COUNT_TICKS + 1)]
    for value, text in zip(ticks, axis_labels(ticks), strict=True):
        draw.line((left, y(value), right, y(value)), fill=GRID, width=scale)
        width = draw.textlength(text, font=label_font)
        draw.text((left - width - 6 * scale, y(value) - 7 * scale), text, font=label_font, fill=AXIS_TEXT)
    for moment in _time_ticks(start, end):
        shown = clock.local(moment)  # ticks fall on whole UTC hours; labelled in the alerts' clock
        text = shown.strftime("%b %d") if (shown.hour, shown.minute) == (0, 0) else shown.strftime("%H:%M")
        width = draw.textlength(text, font=label_font)
        at = min(max(x(moment) - width / 2, left - 10 * scale), WIDTH * scale - width - 2 * scale)
        draw.line((x(moment), bottom, x(moment), bottom + 4 * scale), fill=AXIS_TEXT, width=scale)
        draw.text((at, bottom + 7 * scale), text, font=label_font, fill=AXIS_TEXT)

    baseline = any(map(_has("expected"), minutes))

    # the allowed band: a baseline's expected range (a missing lower bound is 0, a missing upper
    # bound the top of the chart); a threshold rule's, only between a minimum and a threshold
    def banded(point: ChartPoint) -> bool:
        lower, upper = _finite(point.lower), _finite(point.upper)
        return (lower is not None or upper is not None) if baseline else (lower is not None and upper is not None)

    for run in _runs(minutes, banded):
        outline = [(x(p.minute_at), y(_bound(p.upper, top_count))) for p in run]
        outline += [(x(p.minute_at), y(_bound(p.lower, 0.0))) for p in reversed(run)]
        if len(run) == 1:  # one minute: a sliver as wide as the minute
            half = (right - left) * 30 / span
            (ux, uy), (_, ly) = outline
            outline = [(ux - half, uy), (ux + half, uy), (ux + half, ly), (ux - half, ly)]
        draw.polygon(outline, fill=BAND)
    # the incident's minutes, over the band (blended) and under the lines
    shaded: str | None = None
    if incident_start is not None:
        shade_from = max(x(utc(incident_start) - timedelta(seconds=30)), left)
        shade_to = min(x(utc(incident_end) + timedelta(seconds=30)), right) if incident_end else right
        if shade_to > shade_from:
            last = clock.local(incident_end) if incident_end else None
            # the font has no en dash
            shaded = f"anomalous {anomalous_span(clock.local(incident_start), last)}".replace("\u2013", "-")
            draw.rectangle((shade_from, top, shade_to, bottom), fill=INCIDENT)
            label = "anomalous"
            if draw.textlength(label, font=label_font) < shade_to - shade_from - 4 * scale:
                draw.text((shade_from + 3 * scale, top + 2 * scale), label, font=label_font, fill=INCIDENT_TEXT)
    for name in ("expected", "upper", "lower"):
        for run in _runs(minutes, _has(name)):
            line = [(x(p.minute_at), y(getattr(p, name))) for p in run]
            if len(line) == 1:  # one minute: a level as wide as the minute
                half = (right - left) * 30 / span
                line = [(line[0][0] - half, line[0][1]), (line[0][0] + half, line[0][1])]
            if baseline and name == "expected":
                _dashed(draw, line, EXPECTED, 2 * scale, dash=6 * scale, gap=4 * scale)
            elif baseline:
                _polyline(draw, line, BAND_EDGE, scale)
            elif name == "upper":  # a threshold rule's threshold and minimum
                _polyline(draw, line, THRESHOLD, 2 * scale)
            elif name == "lower":
                _dashed(draw, line, THRESHOLD, 2 * scale, dash=6 * scale, gap=4 * scale)

    counts = [(x(point.minute_at), y(point.count)) for point in minutes]
    _polyline(draw, counts, COUNTS, 2 * scale)
    radius = 2.5 * scale
    for point, (px, py) in zip(minutes, counts, strict=True):
        if _outside(point) or len(minutes) == 1:
            color = OUTSIDE if _outside(point) else COUNTS
            draw.ellipse((px - radius, py - radius, px + radius, py + radius), fill=color)
    draw.line((left, bottom, right, bottom), fill=AXIS_TEXT, width=scale)

    _legend(draw, label_font, minutes, baseline, shaded, scale)
    day = f"{clock.local(minutes[-1].minute_at):%Y-%m-%d} {clock.zone_label(minutes[-1].minute_at)}"
    width = draw.textlength(day, font=label_font)
    draw.text((WIDTH * scale - width - 12 * scale, 33 * scale), day, font=label_font, fill=AXIS_TEXT)
    return _png(image)


def _legend(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    minutes: Sequence[ChartPoint],
    baseline: bool,
    shaded: str | None,
    scale: int,
) -> None:
    """The keys of what is drawn, in a row under the title; ``shaded`` names the incident's span."""
    entries: list[tuple[str, str, tuple[int, ...]]] = [("line", "events", COUNTS)]
    has = {name: any(map(_has(name), minutes)) for name in ("expected", "lower", "upper")}
    if baseline:
        entries.append(("band", "expected range", BAND))
        if has["expected"]:
            entries.append(("dash", "expected", EXPECTED))
    else:
        if any(_finite(p.lower) is not None and _finite(p.upper) is not None for p in minutes):
            entries.append(("band", "allowed range", BAND))
        if has["upper"]:
            entries.append(("line", "threshold", THRESHOLD))
        if has["lower"]:
            entries.append(("dash", "minimum", THRESHOLD))
    if any(_outside(point) for point in minutes):
        entries.append(("dot", "outside", OUTSIDE))
    if shaded:
        entries.append(("band", shaded, INCIDENT))
    at, middle = 12.0 * scale, 40 * scale
    for kind, label, color in entries:
        if kind == "band":
            draw.rectangle((at, middle - 5 * scale, at + 16 * scale, middle + 5 * scale), fill=color)
        elif kind == "dot":
            draw.ellipse((at + 5 * scale, middle - 3 * scale, at + 11 * scale, middle + 3 * scale), fill=color)
        elif kind == "dash":
            _dashed(draw, [(at, middle), (at + 16 * scale, middle)], color, 2 * scale, dash=5 * scale, gap=3 * scale)
        else:
            draw.line((at, middle, at + 16 * scale, middle), fill=color, width=2 * scale)
        draw.text((at + 21 * scale, middle - 7 * scale), label, font=font, fill=AXIS_TEXT)
        at += 21 * scale + draw.textlength(label, font=font) + 14 * scale


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's own font (Aileron) at ``size``; its tiny bitmap font where FreeType is missing."""
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError, TypeError):
        return ImageFont.load_default()


def _fit(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float) -> str:
    """One line that fits ``width``: control and format characters out (no line breaks, no
    bidirectional overrides), cut with an ellipsis. Glyphs the font lacks show as boxes."""
    text = "".join(" " if unicodedata.category(char)[0] == "C" else char for char in text)
    if not isinstance(font, ImageFont.FreeTypeFont):  # the bitmap font knows Latin-1 only
        text = text.encode("latin-1", "replace").decode("latin-1")
    if font.getlength(text) <= width:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits with the ellipsis
        middle = (low + high + 1) // 2
        if font.getlength(text[:middle] + "…") <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + "…"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _values(minutes: Iterable[ChartPoint]) -> list[float]:
    values: list[float] = []
    for point in minutes:
        values.append(float(point.count))
        values += [v for v in (_finite(point.expected), _finite(point.lower), _finite(point.upper)) if v is not None]
    return values


def _has(name: str) -> Callable[[ChartPoint], bool]:
    """Whether a point has a finite ``expected``, ``lower`` or ``upper``."""
    return lambda point: _finite(getattr(point, name)) is not None


def _bound(value: float | None, missing: float) -> float:
    finite = _finite(value)
    return missing if finite is None else finite


def _outside(point: ChartPoint) -> bool:
    upper, lower = _finite(point.upper), _finite(point.lower)
    return (upper is not None and point.count > upper) or (lower is not None and point.count < lower)


def _runs(minutes: Sequence[ChartPoint], keep: Callable[[ChartPoint], bool]) -> list[list[ChartPoint]]:
    """Consecutive points for which ``keep`` holds (a line breaks where a bound is missing)."""
    runs: list[list[ChartPoint]] = [[]]
    for point in minutes:
        if keep(point):
            runs[-1].append(point)
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


def _axis_top(values: Sequence[float]) -> float:
    """A round top for the count axis, a little above the largest value, in COUNT_TICKS equal
    steps of 1, 2, 3, 4, 5, 6 or 8 times a power of ten, at least 1 (counts are whole)."""
    largest = max([*values, 1.0]) * 1.05
    raw = largest / COUNT_TICKS
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 3, 4, 5, 6, 8, 10) if m * magnitude >= raw)
    return max(step, 1.0) * COUNT_TICKS


def _time_ticks(start: datetime, end: datetime) -> list[datetime]:
    """Round times (multiples of a step since midnight) inside the chart."""
    span_minutes = (end - start).total_seconds() / 60
    step = next((s for s in TIME_STEPS if span_minutes / s <= MAX_TIME_TICKS), TIME_STEPS[-1])
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    first = math.ceil((start - midnight).total_seconds() / 60 / step) * step
    ticks = []
    moment = midnight + timedelta(minutes=first)
    while moment <= end:
        ticks.append(moment)
        moment += timedelta(minutes=step)
    return ticks


def _polyline(
    draw: ImageDraw.ImageDraw, line: Sequence[tuple[float, float]], color: tuple[int, ...], width: int
) -> None:
    if len(line) >= 2:
        draw.line(list(line), fill=color, width=width, joint="curve")


def _dashed(
    draw: ImageDraw.ImageDraw,
    line: Sequence[tuple[float, float]],
    color: tuple[int, ...],
    width: int,
    *,
    dash: float,
    gap: float,
) -> None:
    """A dashed polyline: the pattern runs on across its corners."""
    period, walked = dash + gap, 0.0
    for (x0, y0), (x1, y1) in itertools.pairwise(line):
        length = math.hypot(x1 - x0, y1 - y0)
        at = 0.0
        while at < length:
            phase = (walked + at) % period
            step = min((dash - phase) if phase < dash else (period - phase), length - at)
            if phase < dash:
                a, b = at / length, (at + step) / length
                draw.line((x0 + (x1 - x0) * a, y0 + (y1 - y0) * a, x0 + (x1 - x0) * b, y0 + (y1 - y0) * b),
                          fill=color, width=width)  # fmt: skip
            at += step
        walked += length


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.reduce(SUPERSAMPLE).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()
