"""The backtest page: one chart and one summary row per rule, data never becomes markup, nothing is
fetched from the network, and a 60-day series stays small while its one-minute anomalies stay visible.
"""

from __future__ import annotations

import ast
import re
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from mixpanel_alerts import report
from mixpanel_alerts.report import render_backtest_html
from tests.hostile import HOSTILE_NAMES

START = datetime(2026, 10, 1, tzinfo=UTC)


class Page(HTMLParser):
    """The parsed page: every element with its attributes, and the text."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.summary_rows = 0
        self._in_summary = False
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag == "table":
            self._in_summary = dict(attrs).get("class") == "summary"
        if tag == "tr" and self._in_summary:
            self.summary_rows += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def tags(self, name: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for tag, a in self.elements if tag == name and all(a.get(k) == v for k, v in attrs.items())]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def series(minutes: int, count: int = 100, band: bool = True) -> list[dict[str, Any]]:
    edges = {"expected": float(count), "lower": count * 0.5, "upper": count * 1.5} if band else {}
    none = {"expected": None, "lower": None, "upper": None}
    return [{"minute": iso(START + timedelta(minutes=i)), "count": count} | none | edges for i in range(minutes)]


def incident(kind: str, minute: int, length: int = 1) -> dict[str, Any]:
    return {
        "kind": kind,
        "first_anomalous_minute": iso(START + timedelta(minutes=minute)),
        "last_anomalous_minute": iso(START + timedelta(minutes=minute + length - 1)),
        "peak_count": 900 if kind == "spike" else 0,
        "expected_count": 100.0,
    }


def rule(name: str = "Checkout Completed", **fields: Any) -> dict[str, Any]:
    return {
        "event_name": name,
        "detector": "baseline",
        "direction": "both",
        "time_window_minutes": 5,
        "alert_threshold": None,
        "min_events": 10,
        "description": "Checkouts against the last 7 days.",
        "alert_channel": "#alerts",
        "learning": None,
        "weeks": 1.0,
        "series": series(1440),
        "incidents": [incident("spike", 600), incident("drop", 900, 45)],
    } | fields


def backtest(*rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "generated_at": "2026-12-01T08:00:00Z",
        "start_date": "2026-10-01",
        "end_date": "2026-11-30",
        "warehouse": "duckdb data/mixpanel.duckdb (mixpanel_data.mixpanel_events)",
        "rules": list(rules),
    }


def test_one_chart_and_one_summary_row_per_rule() -> None:
    rules = [rule(f"event {n}") for n in range(3)]
    page = Page(render_backtest_html(backtest(*rules)))
    assert len(page.tags("svg")) == 3
    assert page.summary_rows == 1 + 3  # the header row, then a row per rule
    assert [a["href"] for a in page.tags("a")] == ["#rule-1", "#rule-2", "#rule-3"]
    assert [a["id"] for a in page.tags("section")] == ["rule-1", "rule-2", "rule-3"]


def test_summary_counts_incidents_per_week_and_kind() -> None:
    incidents = [incident("spike", m) for m in (10, 20, 30)] + [incident("drop", 40)]
    page = Page(render_backtest_html(backtest(rule(weeks=3.0, incidents=incidents, learning="learning: 3 of 7 days"))))
    cells = [text.strip() for text in page.text if text.strip()]
    row = cells[cells.index("5 min") + 1 : cells.index("5 min") + 6]
    assert row == ["4", "1.3", "3 / 1", "\u2013", "learning: 3 of 7 days"]  # no suggested threshold: a baseline


@pytest.mark.parametrize("name", [*HOSTILE_NAMES, "<script>alert(1)</script>"], ids=repr)
def test_text_from_the_data_never_becomes_markup(name: str) -> None:
    hostile = rule(name, description=name, alert_channel=name, learning=name, incidents=[with_context(600)])
    markup = render_backtest_html(backtest(hostile) | {"warehouse": name})
    page = Page(markup)
    assert not page.tags("script")
    assert [tag for tag, _ in page.elements if tag not in ALLOWED_TAGS] == []
    assert page.tags("svg")[0]["aria-label"] == f"{name}: window counts and incidents"
    assert page.tags("svg")[1]["aria-label"] == f"{name}: the spike from 2026-10-01 10:00 UTC"
    assert "".join(page.text).count(name) >= 5  # heading, summary, description, channel, learning
    if any(char in name for char in '<>&"'):
        assert name not in markup


ALLOWED_TAGS = {
    *("html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "section", "span", "bdi", "a"),
    *("div", "figure", "figcaption"),
    *("table", "colgroup", "col", "tr", "th", "td"),
    *("svg", "g", "rect", "line", "polyline", "polygon", "circle", "text", "tspan"),
}


def test_nothing_is_fetched_from_the_network() -> None:
    markup = render_backtest_html(backtest(rule(), rule("Payment Failed", detector="threshold", alert_threshold=50)))
    page = Page(markup)
    links = [value for _, attrs in page.elements for key, value in attrs.items() if key in {"src", "href", "action"}]
    assert links and all(value and value.startswith("#") for value in links)
    assert not page.tags("link") and not page.tags("img") and not page.tags("script")
    assert not re.search(r"https?:|url\(|@import|//[a-z]", markup, re.IGNORECASE)


def test_sixty_days_stay_small_and_keep_one_minute_anomalies() -> None:
    sixty_days = series(60 * 1440)
    sixty_days[30_000]["count"] = 10_000  # one minute, far above the rest
    sixty_days[50_000]["count"] = 0  # one minute at zero
    one_minute = [incident("spike", 30_000), incident("drop", 50_000)]
    at_spike = rule(series=sixty_days, incidents=one_minute, weeks=60 / 7, alert_threshold=10_000)
    markup = render_backtest_html(backtest(at_spike))
    assert len(markup.encode()) < 100_000
    page = Page(markup)

    envelope = page.tags("polygon", fill=report.COLOURS["count"])[0]["points"] or ""
    heights = [float(pair.split(",")[1]) for pair in envelope.split()]
    (threshold,) = page.tags("line", stroke=report.COLOURS["threshold"], x1=str(report.LEFT))
    assert min(heights) == float(threshold["y1"] or 0)  # the one-minute spike reaches the line at its count
    assert max(heights) == report.TOP + report.PLOT_H  # the drop reaches zero

    for kind in ("spike", "drop"):
        (span,) = page.tags("g", **{"class": kind})
        after = page.elements[page.elements.index(("g", span)) :]
        shade = next(attrs for tag, attrs in after if tag == "rect")
        assert float(shade["width"] or 0) >= 2.0  # a one-minute incident in 60 days is still seen


@pytest.mark.parametrize(
    "rules",
    [
        [],
        [rule(series=[])],
        [rule(incidents=[])],
        [rule(series=series(600, count=0, band=False), detector="threshold", min_events=None, incidents=[])],
        [rule(series=series(1440, band=False), detector="threshold", alert_threshold=500)],
        [rule(series=series(1), weeks=0)],
        [rule(series=series(1440)[::-1], incidents=[incident("spike", 10**6)])],  # unordered, incident outside
    ],
    ids=["no rules", "no series", "no incidents", "all zero", "no band", "one point", "unordered"],
)
def test_edge_cases_render_a_whole_page(rules: list[dict[str, Any]]) -> None:
    markup = render_backtest_html(backtest(*rules))
    page = Page(markup)
    assert len(page.tags("svg")) == len(rules)
    assert not re.search(r"\bnan\b|\binf\b", markup)
    assert markup.rstrip().endswith("</html>")
    if not rules:
        assert "No rules to replay" in markup


def test_lines_band_and_legend_follow_the_rule() -> None:
    threshold = rule(detector="threshold", alert_threshold=150, min_events=None, series=series(1440, band=False))
    page = Page(render_backtest_html(backtest(threshold, rule())))
    first, second = (
        markup for markup in re.findall(r"<svg.*?</svg>", render_backtest_html(backtest(threshold, rule())))
    )
    assert "threshold (150)" in first and "expected band" not in first and "minimum" not in first
    assert "expected band" in second and "minimum (10)" in second and "threshold" not in second
    assert len(page.tags("polygon", fill=report.COLOURS["band"])) == 1


@pytest.mark.parametrize(
    ("minutes", "label"),
    [(60, "00:10"), (1440, "03:00"), (14 * 1440, "Oct 04"), (60 * 1440, "Oct 05")],
    ids=["1 hour", "1 day", "14 days", "60 days"],
)
def test_time_axis_has_readable_ticks(minutes: int, label: str) -> None:
    page = Page(render_backtest_html(backtest(rule(series=series(minutes)))))
    ticks = [line for line in page.tags("line") if line["x1"] == line["x2"] and line["y1"] == str(report.TOP)]
    assert 4 <= len(ticks) <= 13
    assert label in page.text


def test_incident_list_shows_the_first_ten() -> None:
    many = [incident("spike", minute) for minute in range(0, 1200, 100)]
    markup = render_backtest_html(backtest(rule(incidents=many[::-1])))
    assert markup.count('<td class="spike">spike</td>') == 10
    listed = markup[markup.index("first anomalous minute") :]
    assert "2026-10-01 00:00" in listed and "2026-10-01 15:00" in listed and "2026-10-01 16:40" not in listed
    assert "and 2 more incidents not listed." in markup


def test_the_renderer_imports_only_the_standard_library_and_the_number_formatter() -> None:
    """The page renders anywhere: the standard library, the one number formatter it shares with
    the alert's chart (itself standard library only: tests/test_numbers.py) and the one UTC
    normaliser (standard library only too)."""
    tree = ast.parse(Path(report.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "." for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and not node.level}
    ours = {"mixpanel_alerts.core.numbers", "mixpanel_alerts.core.times"}
    assert {name.split(".")[0] for name in imported - ours} - {"__future__"} <= (sys.stdlib_module_names)
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))


def count_axis(markup: str) -> list[str]:
    """The count axis's labels of the first chart, bottom to top."""
    svg = re.findall(r"<svg.*?</svg>", markup)[0]
    labels = re.findall(rf'<text x="{report.LEFT - 7}" y="([\d.]+)" text-anchor="end">([^<]*)</text>', svg)
    return [label for _, label in sorted(labels, key=lambda pair: -float(pair[0]))]


@pytest.mark.parametrize(
    ("count", "threshold", "labels"),
    [(12_000, 15_000, ["0", "5k", "10k", "15k", "20k"]),
     (9_000, None, ["0", "2k", "4k", "6k", "8k", "10k"]),
     (7_000, None, ["0", "2,000", "4,000", "6,000", "8,000"]),
     (1_150_000, None, ["0", "0.25M", "0.5M", "0.75M", "1M", "1.25M"]),
     (3, None, ["0", "1", "2", "3", "4"])],
    ids=["above-10k", "reaching-10k", "below-10k", "millions", "small"],
)  # fmt: skip
def test_count_axis_labels_are_right_at_every_magnitude(count: int, threshold: int | None, labels: list[str]) -> None:
    """From 10,000 up the report once printed 12,000 as "1.2k" and 5,000 as "5000"."""
    big = rule(series=series(600, count=count, band=False), detector="threshold", alert_threshold=threshold,
               min_events=None, incidents=[])  # fmt: skip
    assert count_axis(render_backtest_html(backtest(big))) == labels


@pytest.mark.parametrize(
    ("fields", "label"),
    [({"detector": "threshold", "alert_threshold": None, "min_events": 3}, "minimum 3 per 5 min"),
     ({"detector": "threshold", "alert_threshold": 32, "min_events": None}, "threshold 32 per 5 min"),
     ({"detector": "threshold", "alert_threshold": 32, "min_events": 3}, "threshold 32 / minimum 3 per 5 min"),
     ({"detector": "threshold", "alert_threshold": 12_000, "min_events": None, "time_window_minutes": 90},
      "threshold 12,000 per 1 h 30 min"),
     ({"detector": "baseline", "direction": "both", "alert_threshold": None, "min_events": None}, "baseline (both)"),
     ({"detector": "baseline", "direction": "up", "alert_threshold": None, "min_events": 20},
      "baseline (up) / minimum 20 per 5 min")],
    ids=["minimum-only", "threshold-only", "threshold-and-minimum", "large-threshold", "baseline", "baseline-minimum"],
)  # fmt: skip
def test_each_rule_is_labelled_by_what_it_watches(fields: dict[str, Any], label: str) -> None:
    """A min_events-only rule was once labelled "threshold (up)": the direction of the threshold
    it does not have. The summary row and the rule's section say what it watches."""
    markup = render_backtest_html(backtest(rule(**{"direction": "up", **fields})))
    page = Page(markup)
    cells = [text.strip() for text in page.text if text.strip()]
    assert cells.count(label) == 2, cells  # the summary's row and the section's first fact
    assert "(up)" not in markup.replace("baseline (up)", "")


def with_context(minute: int, kind: str = "spike", length: int = 1, hours: int = 3) -> dict[str, Any]:
    """An incident with the minutes ``hours`` either side of it (a count of 100 in a band of
    50-150, the incident's minutes at its peak), as ``backtest`` reads them."""
    found = incident(kind, minute, length)
    begins, ends = minute - hours * 60, minute + length + hours * 60
    points = series(ends)[max(0, begins) :]
    for point in points[hours * 60 : hours * 60 + length]:
        point["count"] = found["peak_count"]
    return found | {"context": points, "context_from": iso(START + timedelta(minutes=begins)),
                    "context_to": iso(START + timedelta(minutes=ends))}  # fmt: skip


def charts(markup: str) -> list[str]:
    return re.findall(r"<svg.*?</svg>", markup)


def axis_top(svg: str) -> float:
    """The highest label of a chart's count axis, as a number."""
    labels = re.findall(r'text-anchor="end">([\d.,]+k?)</text>', svg)
    value = labels[-1].replace(",", "")
    return float(value[:-1]) * 1000 if value.endswith("k") else float(value)


@pytest.mark.parametrize(
    ("upper", "top", "cut"),
    [(150.0, 200.0, False), (5_000.0, 250.0, True), (None, 125.0, False)],
    ids=["band-inside", "band-50x-the-counts", "no-band"],
)
def test_the_count_axis_follows_the_counts_and_a_cut_band_is_marked(upper: float | None, top: float, cut: bool) -> None:
    """A bursty event's band can reach 50 times its counts: the axis follows the counts (100 here,
    the band shown up to twice them), the band is cut at the top, a zigzag marks the cut and the
    legend says how far it reaches. Before, the axis reached 5,000 and the counts hugged the floor."""
    points = [point | {"upper": upper, "lower": None if upper is None else 50.0} for point in series(1440)]
    markup = render_backtest_html(backtest(rule(series=points, incidents=[], min_events=None)))
    (svg,) = charts(markup)
    assert axis_top(svg) == top
    zigzags = Page(svg).tags("polyline", stroke=report.COLOURS["cut"])
    assert bool(zigzags) == cut
    assert ("band cut (up to 5,000)" in svg) == cut
    if cut:  # the teeth run along the top edge of the plot, the whole day
        ys = {float(pair.split(",")[1]) for pair in (zigzags[0]["points"] or "").split()}
        xs = [float(pair.split(",")[0]) for pair in (zigzags[0]["points"] or "").split()]
        assert ys == {report.TOP, report.TOP + report.CUT_TOOTH_H}
        assert xs[0] == report.LEFT and xs[-1] >= report.LEFT + report.PLOT_W - 1


@pytest.mark.parametrize(
    ("threshold", "drawn"), [(150, True), (10_000, False)], ids=["near-the-counts", "100x-the-counts"]
)
def test_a_threshold_far_above_the_counts_is_named_not_drawn(threshold: int, drawn: bool) -> None:
    far = rule(detector="threshold", alert_threshold=threshold, min_events=None, series=series(600, band=False),
               incidents=[])  # fmt: skip
    (svg,) = charts(render_backtest_html(backtest(far)))
    assert bool(Page(svg).tags("line", stroke=report.COLOURS["threshold"], x1=str(report.LEFT))) == drawn
    assert axis_top(svg) == (200.0 if drawn else 125.0)
    assert (f"threshold ({threshold:,}, above)" in svg) == (not drawn)


def test_each_listed_incident_gets_a_chart_of_the_hours_around_it() -> None:
    """Three hours either side, per minute, with the band and the incident shaded; as many as
    the incidents listed (10), in the order of the list."""
    found = [with_context(minute) for minute in range(200, 200 + 12 * 400, 400)]
    markup = render_backtest_html(backtest(rule(series=series(6000), incidents=found[::-1])))
    _, *small = charts(markup)
    assert len(small) == report.LISTED_INCIDENTS
    first = Page(small[0])
    assert first.tags("svg")[0]["viewbox"] == f"0 0 {report.INCIDENT_FRAME.width} {report.INCIDENT_FRAME.height}"
    assert first.tags("svg")[0]["aria-label"] == "Checkout Completed: the spike from 2026-10-01 03:20 UTC"
    times = [label for label in first.text if re.fullmatch(r"\d\d:\d\d", label)]
    assert times == ["02:00", "04:00", "06:00"]  # of 00:20 to 06:21
    assert len(first.tags("g", **{"class": "spike"})) == 1  # its own, not its neighbours 6 hours away
    assert len(first.tags("polygon", fill=report.COLOURS["band"])) == 1
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", markup)
    assert re.sub("<[^>]+>", "", captions[0]) == "spike 2026-10-01 03:20 UTC, 1 min: peak 900, expected 100"
    assert axis_top(small[0]) == 1000  # the peak of 900 is on the axis


def test_incidents_without_their_hours_get_no_chart() -> None:
    markup = render_backtest_html(backtest(rule()))
    assert len(charts(markup)) == 1 and "<figure" not in markup


def test_a_threshold_rule_shows_its_suggested_threshold() -> None:
    suggestion = {"alert_threshold": 41, "incidents": 2, "per_week": 1.0, "target_per_week": 1.0}
    threshold = rule("Payment Failed", detector="threshold", alert_threshold=20, min_events=None,
                     series=series(1440, count=30, band=False), suggestion=suggestion, weeks=2.0)  # fmt: skip
    page = Page(render_backtest_html(backtest(threshold, rule()) | {"target_per_week": 1.0}))
    cells = [text.strip() for text in page.text if text.strip()]
    assert "suggested threshold (\u2264 1/week)" in cells
    assert cells.count("41 (2 incidents, 1.0/week)") == 1  # the threshold rule's row
    assert cells.count("\u2013") >= 1  # the baseline rule's
    assert any("suggested alert_threshold for at most 1 incident a week" in cell for cell in cells)
    assert "suggested (41)" in "".join(cells)  # the line on its chart
    assert len(page.tags("line", stroke=report.COLOURS["suggested"], x1=str(report.LEFT))) == 1
