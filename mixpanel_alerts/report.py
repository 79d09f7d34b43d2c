"""The self-contained HTML page of ``mixpanel-alerts backtest``: a summary table, then per rule one
chart of the period, its first incidents and a small chart of the hours around each of them, so a
rule can be tuned before it is turned on.

The page needs no network to be viewed: inline CSS and inline SVG, no script, no font, no link out.
Text from the configuration or the data is always escaped (``html.escape``) and isolated in
``<bdi>`` so a right-to-left mark cannot reorder the text around it. Numbers (axis labels, tables)
are written by ``mixpanel_alerts.core.numbers``, as the alert's PNG chart writes them.

Input (a JSON-able dict; times are ISO 8601 in UTC, ``Z`` or an offset, naive taken as UTC)::

    {"generated_at": iso, "start_date": "2026-10-01", "end_date": "2026-11-30", "warehouse": str,
     "target_per_week": float,          # what a suggested threshold aims at (default 1)
     "rules": [{
        "rule_id": str, "event_name": str,
        "detector": "threshold" | "baseline", "direction": "up" | "down" | "both" | None,
        "time_window_minutes": int, "alert_threshold": int | None, "min_events": int | None,
        "description": str, "alert_channel": str,
        "learning": str | None,          # "learning: 3 of 7 days" while the baseline lacks history
        "weeks": float,                  # length of the replayed period in weeks
        "series": [{"minute": iso, "count": int,
                    "expected": float | None, "lower": float | None, "upper": float | None}, ...],
        "incidents": [{"kind": "spike" | "drop", "first_anomalous_minute": iso,
                       "last_anomalous_minute": iso, "peak_count": int, "expected_count": float | None,
                       # optional: the minutes around it, drawn as its own small chart
                       "context": [point as in "series", ...], "context_from": iso, "context_to": iso}, ...],
        "suggestion": None | {"alert_threshold": int, "incidents": int, "per_week": float,
                              "target_per_week": float},   # a threshold rule's suggested threshold
     }, ...]}

A series may hold 86,400 minutes; it is reduced to one bucket per pixel column keeping the min and
max count (an envelope, so a one-minute spike or drop survives) and the band's min lower and max
upper, which bounds a chart to a few tens of kilobytes whatever the period.

The count axis is scaled to the counts (and the expected count), not to the band: a baseline's
band can reach fifty times the counts, which would flatten them on the floor. The axis reaches up
to LIMIT_REACH times the counts for the band; where the band goes higher it is cut, and a zigzag
on the top edge marks the cut. A threshold or a minimum further above is named (in the legend,
or over an incident's chart) instead of drawn.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mixpanel_alerts.core.numbers import axis_labels, figure
from mixpanel_alerts.core.times import utc


@dataclass(frozen=True)
class Frame:
    """A chart's size and its plot's margins, in the SVG's own units."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int

    @property
    def plot_w(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> int:
        return self.height - self.top - self.bottom


PERIOD_FRAME = Frame(1000, 280, 58, 26, 34, 40)
INCIDENT_FRAME = Frame(540, 210, 50, 14, 22, 40)
WIDTH, HEIGHT = PERIOD_FRAME.width, PERIOD_FRAME.height
LEFT, RIGHT, TOP, BOTTOM = PERIOD_FRAME.left, PERIOD_FRAME.right, PERIOD_FRAME.top, PERIOD_FRAME.bottom
PLOT_W, PLOT_H = PERIOD_FRAME.plot_w, PERIOD_FRAME.plot_h
# the incidents listed (and charted) per rule
LISTED_INCIDENTS = 10
# a threshold or minimum up to this many times the highest count is on the axis; above, named at the top
LIMIT_REACH = 2.0
# the cut mark's teeth: this wide and this high
CUT_TOOTH_W, CUT_TOOTH_H = 5.0, 4.0
MIN_SPAN_PX = 2.0
COLOURS = {
    "count": "#1c5bb8",
    "band": "#9cc3e6",
    "expected": "#5b6b82",
    "threshold": "#c92a2a",
    "min_events": "#868e96",
    "spike": "#e8590c",
    "drop": "#7048e8",
    "suggested": "#2b8a3e",
    "cut": "#1f5f99",
}
GRID = 'stroke="#eceef1"'
# candidate time-axis steps in seconds, 5 minutes to 4 weeks
TIME_STEPS = (300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800, 1209600, 2419200)
DASH = "\u2013"
INTRO = (
    "What each rule would have raised over the period. A chart draws the lowest and highest window count"
    " of each pixel column, so a one-minute spike or drop stays visible however long the period. The count"
    " axis follows the counts: where the expected band reaches above it, a zigzag on the top edge marks the cut."
)
MONDAY = 4 * 86400  # 1970-01-05, so weekly ticks fall on Mondays

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#212529;
margin:0 auto;padding:24px 32px;max-width:1180px;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 4px;overflow-wrap:anywhere}
.meta{color:#5c636a;font-size:13px;margin:0 0 4px;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;margin:8px 0 4px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e9ecef;vertical-align:top;overflow-wrap:anywhere}
.summary{table-layout:fixed}
th{font-size:12px;color:#5c636a;font-weight:600;background:#f8f9fa}td.n,th.n{text-align:right}
td.desc{color:#495057}
section{border-top:1px solid #dee2e6;margin-top:28px;padding-top:18px}svg{width:100%;height:auto;display:block}
.learning{background:#fff3bf;color:#5c3c00;border-radius:3px;padding:1px 6px;font-size:12px}
.spike{color:#c2410c;font-weight:600}.drop{color:#5f3dc4;font-weight:600}.none{color:#868e96}
a{color:#1c5bb8}
.suggested{color:#2b8a3e}
.contexts{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:12px 20px;margin:10px 0 0}
figure{margin:0}figcaption{font-size:12px;color:#5c636a;margin:0 0 2px;overflow-wrap:anywhere}
"""


@dataclass(slots=True)
class _Bucket:
    """The points of one pixel column: when it starts, the count envelope, the band's outer edges."""

    start: float
    low: float
    high: float
    lower: float | None = None
    upper: float | None = None
    expected_sum: float = 0.0
    expected_n: int = 0


def _e(value: object) -> str:
    return "" if value is None else html.escape(str(value), quote=True)


def _epoch(iso: str) -> float:
    moment = datetime.fromisoformat(iso)
    return utc(moment).timestamp()


def _utc(seconds: float, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime(fmt)


def _number(value: float | None) -> str:
    return DASH if value is None else figure(value)


def _minutes(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return " ".join(([f"{hours} h"] if hours else []) + ([f"{rest} min"] if rest or not hours else []))


def _watches(rule: dict[str, Any]) -> str:
    """What a rule watches, by what it has: "baseline (both)", "threshold 32 per 5 min", "minimum 3
    per 5 min", "threshold 32 / minimum 3 per 5 min", "baseline (up) / minimum 20 per 5 min". A
    threshold rule's direction is not its own (the threshold is up, the minimum down)."""
    parts = []
    if rule.get("detector") == "baseline":
        direction = rule.get("direction")
        parts.append(f"baseline ({direction})" if direction else "baseline")
    limits = [
        f"{name} {_number(float(rule[key]))}"
        for key, name in (("alert_threshold", "threshold"), ("min_events", "minimum"))
        if rule.get(key) is not None
    ]
    if limits:
        parts.append(" / ".join(limits) + f" per {_minutes(int(rule.get('time_window_minutes') or 0))}")
    return " / ".join(parts) or str(rule.get("detector") or DASH)


def _bucketize(
    series: Sequence[dict[str, Any]], times: list[float], t0: float, span: float, columns_wide: int = PLOT_W
) -> list[_Bucket]:
    columns: dict[int, list[int]] = {}
    scale = columns_wide / span
    for position, t in enumerate(times):
        columns.setdefault(min(columns_wide - 1, max(0, int((t - t0) * scale))), []).append(position)
    buckets = []
    for index in sorted(columns):
        points = [series[position] for position in columns[index]]
        counts = [float(point.get("count") or 0) for point in points]
        lowers = [point["lower"] for point in points if point.get("lower") is not None]
        uppers = [point["upper"] for point in points if point.get("upper") is not None]
        expected = [point["expected"] for point in points if point.get("expected") is not None]
        start = min(times[position] for position in columns[index])
        bucket = _Bucket(start, min(counts), max(counts), min(lowers, default=None), max(uppers, default=None))
        bucket.expected_sum, bucket.expected_n = sum(expected), len(expected)
        buckets.append(bucket)
    return buckets


def _nice_top(value: float) -> tuple[float, float]:
    """The top of the count axis and its tick step (1, 2, 2.5 or 5 times a power of ten; a whole
    number), for at most six ticks."""
    raw = max(value, 1.0) / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    multiples = (1, 2, 2.5, 5, 10) if magnitude >= 10 else (1, 2, 5, 10)
    step = max(1.0, next(m * magnitude for m in multiples if m * magnitude >= raw))
    return math.ceil(max(value, 1.0) / step) * step, step


def _axis_reach(buckets: list[_Bucket], limits: Iterable[float]) -> float:
    """The highest value the count axis must show: the counts and the expected count; the band up
    to LIMIT_REACH times them (higher, it is cut); each limit (threshold, minimum) within
    LIMIT_REACH times them (higher, it is named instead)."""
    reach = max([b.high for b in buckets] + [b.expected_sum / b.expected_n for b in buckets if b.expected_n])
    ceiling = LIMIT_REACH * max(reach, 1.0)
    band = max((b.upper for b in buckets if b.upper is not None), default=0.0)
    return max([reach, min(band, ceiling)] + [limit for limit in limits if limit <= ceiling])


def _runs(buckets: list[_Bucket], keep: Callable[[_Bucket], bool]) -> Iterator[list[_Bucket]]:
    """Consecutive buckets that ``keep`` accepts: days without a band (learning) leave gaps."""
    run: list[_Bucket] = []
    for bucket in buckets:
        if keep(bucket):
            run.append(bucket)
        elif run:
            yield run
            run = []
    if run:
        yield run


def _time_axis(frame: Frame, t0: float, t1: float) -> str:
    """Vertical grid lines and UTC labels: the first step giving a label per ~80 px; a sub-day axis
    names the date under the first tick of each day."""
    step = next((s for s in TIME_STEPS if (t1 - t0) / s <= frame.plot_w / 80), TIME_STEPS[-1])
    origin = MONDAY if step >= 604800 else 0
    tick, out, last_day = math.ceil((t0 - origin) / step) * step + origin, [], ""
    bottom = frame.top + frame.plot_h
    while tick <= t1:
        x = frame.left + (tick - t0) / (t1 - t0) * frame.plot_w
        day = _utc(tick, "%b %d")
        label = f'<tspan x="{x:.1f}">{day if step >= 86400 else _utc(tick, "%H:%M")}</tspan>'
        if step < 86400 and day != last_day:
            label += f'<tspan x="{x:.1f}" dy="14">{day}</tspan>'
        last_day = day
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top}" y2="{bottom}" {GRID}/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{label}</text>')
        tick += step
    return "".join(out)


def _count_axis(frame: Frame, top: float, step: float, y_of: Callable[[float], float]) -> str:
    out = []
    ticks = [i * step for i in range(round(top / step) + 1)]
    for value, label in zip(ticks, axis_labels(ticks), strict=True):
        y = y_of(value)
        out.append(f'<line x1="{frame.left}" x2="{frame.left + frame.plot_w}" y1="{y:.1f}" y2="{y:.1f}" {GRID}/>')
        out.append(f'<text x="{frame.left - 7}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    return "".join(out)


def _legend(frame: Frame, items: list[tuple[str, str]]) -> str:
    """Entries as (swatch drawn around 0,0, label), left to right above the plot."""
    out, x = [], float(frame.left)
    for swatch, label in items:
        out.append(f'<g transform="translate({x:.0f},14)">{swatch}<text x="24" y="4">{_e(label)}</text></g>')
        x += 40 + 6.4 * len(label)
    return "".join(out)


def _swatch(colour: str, opacity: float = 1.0) -> str:
    return f'<rect x="0" y="-5" width="18" height="10" fill="{colour}" fill-opacity="{opacity}"/>'


def _zigzag(x0: float, x1: float, y: float) -> str:
    """Teeth from x0 to x1 hanging from y: the mark of a band cut at the top of the axis."""
    x1 = max(x1, x0 + CUT_TOOTH_W)
    teeth = max(1, round((x1 - x0) / CUT_TOOTH_W))
    width = (x1 - x0) / teeth
    points = [f"{x0 + i * width / 2:.1f},{y + (CUT_TOOTH_H if i % 2 else 0):.1f}" for i in range(2 * teeth + 1)]
    return f'<polyline points="{" ".join(points)}" fill="none" stroke="{COLOURS["cut"]}" stroke-width="1.4"/>'


def _incident_spans(frame: Frame, incidents: list[dict[str, Any]], t0: float, t1: float) -> tuple[str, list[str]]:
    """Shaded spans at least MIN_SPAN_PX wide, with a solid strip on top so one minute in 60 days
    still shows; overlapping spans of one kind merge into one element. Returns the kinds drawn."""
    spans: dict[str, list[list[Any]]] = {"spike": [], "drop": []}
    for incident in sorted(incidents, key=lambda i: _epoch(i["first_anomalous_minute"])):
        kind = "drop" if incident.get("kind") == "drop" else "spike"
        start, end = _epoch(incident["first_anomalous_minute"]), _epoch(incident["last_anomalous_minute"]) + 60
        if end < t0 or start > t1:
            continue
        x0, x1 = (frame.left + (min(max(t, t0), t1) - t0) / (t1 - t0) * frame.plot_w for t in (start, end))
        if x1 - x0 < MIN_SPAN_PX:
            x0, x1 = (x0 + x1 - MIN_SPAN_PX) / 2, (x0 + x1 + MIN_SPAN_PX) / 2
        runs = spans[kind]
        if runs and x0 <= runs[-1][1]:
            runs[-1][1], runs[-1][2] = max(runs[-1][1], x1), runs[-1][2] + 1
        else:
            runs.append([x0, x1, 1, start])
    out = []
    for kind, runs in spans.items():
        for x0, x1, n, start in runs:
            more = f" and {n - 1} more" if n > 1 else ""
            box = f'x="{x0:.1f}" y="{frame.top}" width="{x1 - x0:.1f}"'
            out.append(
                f'<g fill="{COLOURS[kind]}" class="{kind}"><title>{kind} from {_utc(start)} UTC{more}</title>'
                f'<rect {box} height="{frame.plot_h}" fill-opacity="0.16"/><rect {box} height="6"/></g>'
            )
    return "".join(out), [kind for kind, runs in spans.items() if runs]


def _limits(rule: dict[str, Any]) -> list[tuple[float, str, str, str]]:
    """The rule's lines across the chart: (value, colour key, name, dash)."""
    suggestion = rule.get("suggestion") or {}
    found = [
        (rule.get("alert_threshold"), "threshold", "threshold", "7 4"),
        (rule.get("min_events"), "min_events", "minimum", "2 3"),
        (suggestion.get("alert_threshold"), "suggested", "suggested", "10 3 2 3"),
    ]
    return [(float(value), key, name, dash) for value, key, name, dash in found if value is not None]


def _chart(rule: dict[str, Any]) -> str:
    label = f"{_rule_label(rule)}: window counts and incidents"
    return _plot(PERIOD_FRAME, rule, rule.get("series") or [], rule.get("incidents") or [], label, None)


def _incident_chart(rule: dict[str, Any], incident: dict[str, Any]) -> str:
    """The hours around one incident, per minute: the period's chart of it, as Slack's chart shows it."""
    kind = "drop" if incident.get("kind") == "drop" else "spike"
    label = f"{_rule_label(rule)}: the {kind} from {_utc(_epoch(incident['first_anomalous_minute']))} UTC"
    span = None
    if incident.get("context_from") and incident.get("context_to"):
        span = (_epoch(incident["context_from"]), _epoch(incident["context_to"]))
    return _plot(INCIDENT_FRAME, rule, incident.get("context") or [], rule.get("incidents") or [], label, span)


def _plot(
    frame: Frame,
    rule: dict[str, Any],
    series: Sequence[dict[str, Any]],
    incidents: list[dict[str, Any]],
    label: str,
    span: tuple[float, float] | None,
) -> str:
    """One chart: the count envelope, the band (cut at the top of the axis), the expected count,
    the rule's lines, the incidents shaded; ``span`` the times shown, else the series'. The period's
    chart (PERIOD_FRAME) has a legend; an incident's (smaller) names only what is cut or off the axis."""
    full = frame == PERIOD_FRAME
    head = (
        f'<svg viewBox="0 0 {frame.width} {frame.height}" role="img" aria-label="{_e(label)}" '
        f'font-size="{12 if full else 11}" fill="#495057">'
    )
    frame_box = (
        f'<rect x="{frame.left}" y="{frame.top}" width="{frame.plot_w}" height="{frame.plot_h}" fill="#fcfcfd" '
        'stroke="#dee2e6"/>'
    )
    if not series:
        middle = f'x="{frame.left + frame.plot_w / 2}" y="{frame.top + frame.plot_h / 2}" text-anchor="middle"'
        return f'{head}{frame_box}<text {middle} font-size="14">No window counts stored for this period</text></svg>'
    times = [_epoch(point["minute"]) for point in series]
    t0, t1 = span if span else (min(times), max(times) + 60)
    buckets = _bucketize(series, times, t0, t1 - t0, frame.plot_w)
    limits = _limits(rule)
    top, step = _nice_top(_axis_reach(buckets, (value for value, *_ in limits)) * 1.05)
    right = frame.left + frame.plot_w

    def x_of(t: float) -> float:
        return frame.left + (t - t0) / (t1 - t0) * frame.plot_w

    def y_of(value: float) -> float:
        return frame.top + frame.plot_h * (1 - min(max(value, 0.0), top) / top)

    def points(pairs: Iterable[tuple[float, float]]) -> str:
        return " ".join(f"{x:.1f},{y_of(v):.1f}" for x, v in pairs)

    spans, kinds = _incident_spans(frame, incidents, t0, t1)
    parts = [head, frame_box, _count_axis(frame, top, step, y_of), _time_axis(frame, t0, t1), spans]
    legend = [(_swatch(COLOURS["count"]), "window count")]
    bands = list(_runs(buckets, lambda b: b.upper is not None and b.lower is not None))
    for run in bands:
        edge = [(x_of(b.start), b.upper or 0.0) for b in run] + [(x_of(b.start), b.lower or 0.0) for b in run[::-1]]
        parts.append(f'<polygon points="{points(edge)}" fill="{COLOURS["band"]}" fill-opacity="0.5"/>')
    if bands:
        legend.append((_swatch(COLOURS["band"], 0.5), "expected band"))
    column = max(1.0, 60 / (t1 - t0) * frame.plot_w)  # a minute's width, at least a pixel column
    cut = list(_runs(buckets, lambda b: b.upper is not None and b.upper > top))
    for run in cut:
        parts.append(_zigzag(x_of(run[0].start), x_of(run[-1].start) + column, float(frame.top)))
    notes = []  # what the top edge of the plot does not show
    if cut:
        reaches = figure(max(b.upper or 0.0 for run in cut for b in run))
        legend.append((_zigzag(0, 18, -2), f"band cut (up to {reaches})"))
        notes.append(f"band cut (up to {reaches})")
    expected = list(_runs(buckets, lambda b: b.expected_n > 0))
    for run in expected:
        line = points((x_of(b.start), b.expected_sum / b.expected_n) for b in run)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{COLOURS["expected"]}" stroke-width="1.2"/>')
    if expected:
        legend.append((f'<line x1="0" x2="18" stroke="{COLOURS["expected"]}" stroke-width="2"/>', "expected"))
    # the envelope: max counts left to right, min counts back; its stroke keeps a flat stretch visible
    envelope = [(x_of(b.start), b.high) for b in buckets] + [(x_of(b.start), b.low) for b in buckets[::-1]]
    count = COLOURS["count"]
    parts.append(
        f'<polygon points="{points(envelope)}" fill="{count}" fill-opacity="0.8" stroke="{count}" '
        'stroke-linejoin="round"/>'
    )
    if len(buckets) == 1:
        parts.append(
            f'<circle cx="{x_of(buckets[0].start):.1f}" cy="{y_of(buckets[0].high):.1f}" r="3" fill="{count}"/>'
        )
    for value, key, name, dash in limits:
        stroke = f'stroke="{COLOURS[key]}" stroke-width="1.6" stroke-dasharray="{dash}"'
        if value > top:  # far above the counts: named, not drawn
            legend.append((f'<line x1="0" x2="18" {stroke}/>', f"{name} ({_number(value)}, above)"))
            notes.append(f"{name} {_number(value)} above")
            continue
        y = y_of(value)
        parts.append(f'<line x1="{frame.left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" {stroke}/>')
        legend.append((f'<line x1="0" x2="18" {stroke}/>', f"{name} ({_number(value)})"))
    if full:
        legend += [(_swatch(COLOURS[kind], 0.45), kind) for kind in kinds]
        parts.append(_legend(frame, legend))
        parts.append(f'<text x="{right}" y="18" text-anchor="end" fill="#868e96">UTC</text>')
    else:
        note = " \u00b7 ".join([*notes, "UTC"])
        parts.append(f'<text x="{right}" y="{frame.top - 7}" text-anchor="end" fill="#868e96">{_e(note)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _listed(incidents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(incidents, key=lambda i: _epoch(i["first_anomalous_minute"]))[:LISTED_INCIDENTS]


def _incident_table(incidents: list[dict[str, Any]]) -> str:
    if not incidents:
        return '<p class="none">No incidents in this period.</p>'
    first = _listed(incidents)
    rows = []
    for incident in first:
        start, last = _epoch(incident["first_anomalous_minute"]), _epoch(incident["last_anomalous_minute"])
        kind = "drop" if incident.get("kind") == "drop" else "spike"
        duration = _minutes(round((last - start) / 60) + 1)
        rows.append(
            f'<tr><td>{_utc(start)}</td><td>{_utc(last)}</td><td class="n">{duration}</td>'
            f'<td class="{kind}">{kind}</td><td class="n">{_number(incident.get("peak_count"))}</td>'
            f'<td class="n">{_number(incident.get("expected_count"))}</td></tr>'
        )
    more = len(incidents) - len(first)
    note = f'<p class="meta">and {more} more incident{"s" * (more != 1)} not listed.</p>' if more > 0 else ""
    head = '<tr><th>first anomalous minute (UTC)</th><th>last</th><th class="n">duration</th><th>kind</th>'
    head += '<th class="n">peak count</th><th class="n">expected</th></tr>'
    return f"<table>{head}{''.join(rows)}</table>{note}"


def _incident_charts(rule: dict[str, Any]) -> str:
    """A small chart of the hours around each listed incident that came with them (``context``)."""
    figures = []
    for incident in _listed(rule.get("incidents") or []):
        if "context" not in incident:
            continue
        start, last = _epoch(incident["first_anomalous_minute"]), _epoch(incident["last_anomalous_minute"])
        kind = "drop" if incident.get("kind") == "drop" else "spike"
        extreme = "lowest" if kind == "drop" else "peak"
        expected = incident.get("expected_count")
        duration = _minutes(round((last - start) / 60) + 1)
        caption = f"{_utc(start)} UTC, {duration}: {extreme} {_number(incident.get('peak_count'))}"
        caption += f", expected {_number(expected)}" if expected is not None else ""
        figures.append(
            f'<figure><figcaption><span class="{kind}">{kind}</span> {_e(caption)}</figcaption>'
            f"{_incident_chart(rule, incident)}</figure>"
        )
    return f'<div class="contexts">{"".join(figures)}</div>' if figures else ""


def _per_week(count: int, weeks: Any) -> str:
    return f"{count / weeks:.1f}" if isinstance(weeks, int | float) and weeks > 0 else DASH


def _suggested(rule: dict[str, Any]) -> str:
    """A threshold rule's suggested threshold, with what it would have given; a dash otherwise."""
    suggestion = rule.get("suggestion")
    if rule.get("detector") != "threshold":
        return DASH
    if not suggestion:
        return "none (no events)"
    incidents = int(suggestion.get("incidents") or 0)
    return (
        f"{_number(suggestion.get('alert_threshold'))} "
        f"({incidents} incident{'s' * (incidents != 1)}, {_per_week(incidents, rule.get('weeks'))}/week)"
    )


def _summary(rules: list[dict[str, Any]], target_per_week: Any) -> str:
    if not rules:
        return '<p class="none">No rules to replay: the events configuration has none enabled.</p>'
    widths = "".join(f'<col style="width:{width}%">' for width in (16, 15, 7, 8, 7, 8, 12, 11, 16))
    target = _number(float(target_per_week)) if isinstance(target_per_week, int | float) else DASH
    head = (
        f"<colgroup>{widths}</colgroup><tr><th>event</th><th>watches</th>"
        '<th class="n">window</th><th class="n">incidents</th>'
        '<th class="n">per week</th><th class="n">spikes / drops</th>'
        f"<th>suggested threshold (\u2264 {target}/week)</th><th>history</th><th>description</th></tr>"
    )
    rows = []
    for number, rule in enumerate(rules, 1):
        incidents = rule.get("incidents") or []
        drops = sum(1 for i in incidents if i.get("kind") == "drop")
        learning = f'<span class="learning">{_e(rule["learning"])}</span>' if rule.get("learning") else ""
        rows.append(
            f'<tr><td><a href="#rule-{number}"><bdi>{_e(_rule_label(rule))}</bdi></a></td>'
            f'<td>{_e(_watches(rule))}</td><td class="n">{_minutes(int(rule.get("time_window_minutes") or 0))}</td>'
            f'<td class="n">{len(incidents)}</td><td class="n">{_per_week(len(incidents), rule.get("weeks"))}</td>'
            f'<td class="n">{len(incidents) - drops} / {drops}</td><td class="suggested">{_e(_suggested(rule))}</td>'
            f'<td>{learning}</td><td class="desc"><bdi>{_e(rule.get("description"))}</bdi></td></tr>'
        )
    return f'<table class="summary">{head}{"".join(rows)}</table>'


def _rule_section(number: int, rule: dict[str, Any], target_per_week: Any) -> str:
    facts = [_watches(rule)]
    if rule.get("alert_threshold") is None and rule.get("min_events") is None:
        facts.append(f"window {_minutes(int(rule.get('time_window_minutes') or 0))}")
    if rule.get("alert_channel"):
        facts.append(f"channel {rule['alert_channel']}")
    learning = f' <span class="learning">{_e(rule["learning"])}</span>' if rule.get("learning") else ""
    description = f'<p class="meta"><bdi>{_e(rule["description"])}</bdi></p>' if rule.get("description") else ""
    suggestion = ""
    if rule.get("detector") == "threshold" and isinstance(target_per_week, int | float):
        suggestion = (
            f'<p class="meta suggested">suggested alert_threshold for at most {_number(float(target_per_week))} '
            f"incident{'s' * (target_per_week != 1)} a week, from this period's window counts: "
            f"{_e(_suggested(rule))}</p>"
        )
    return (
        f'<section id="rule-{number}"><h2><bdi>{_e(_rule_label(rule))}</bdi></h2>'
        f'<p class="meta">{" · ".join(f"<bdi>{_e(fact)}</bdi>" for fact in facts)}{learning}</p>{description}'
        f"{suggestion}{_chart(rule)}{_incident_table(rule.get('incidents') or [])}{_incident_charts(rule)}</section>"
    )


def render_backtest_html(report: dict[str, Any]) -> str:
    """The whole page for a backtest ``report`` (the shape in the module docstring); no I/O."""
    rules = report.get("rules") or []
    target = report.get("target_per_week", 1.0)
    period = f"{report.get('start_date', '')} to {report.get('end_date', '')} (UTC)"
    meta = f"{period} · {report.get('warehouse', '')} · generated {report.get('generated_at', '')}"
    sections = "".join(_rule_section(number, rule, target) for number, rule in enumerate(rules, 1))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Backtest {_e(period)}</title><style>{CSS}</style></head><body>"
        f'<h1>Backtest of the alert rules</h1><p class="meta"><bdi>{_e(meta)}</bdi></p>'
        f'<p class="meta">{INTRO}</p>{_summary(rules, target)}{sections}</body></html>\n'
    )


def _rule_label(rule: dict[str, Any]) -> str:
    """The rule's event, and its id when it has one of its own: ``checkout (checkout_burst)``
    (``core.events_config.rule_label``'s words; the renderer imports nothing of the product)."""
    name, rule_id = str(rule.get("event_name", "")), rule.get("rule_id")
    return name if not rule_id or rule_id == name else f"{name} ({rule_id})"
