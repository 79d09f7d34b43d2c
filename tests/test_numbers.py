"""The one number formatter (mixpanel_alerts/core/numbers.py) of the alert's PNG chart and the
backtest's HTML report: right at every magnitude, exact on an axis, and never two ticks alike."""

from __future__ import annotations

import ast
import random
import re
import sys
from pathlib import Path

import pytest

from mixpanel_alerts import report
from mixpanel_alerts.alerts import chart
from mixpanel_alerts.core import numbers
from mixpanel_alerts.core.numbers import axis_labels, figure

UNITS = {"": 1.0, "k": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def value_of(label: str) -> float:
    """What a label says, read back: ``12.5k`` is 12,500."""
    match = re.fullmatch(r"(-?[\d,]*\.?\d+)([kMBT]?)", label)
    assert match, f"not a number label: {label!r}"
    return float(match.group(1).replace(",", "")) * UNITS[match.group(2)]


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (7, "7"), (950, "950"), (999, "999"), (1000, "1,000"), (1050, "1,050"), (9999, "9,999"),
     (12000, "12,000"), (12500, "12,500"), (99999, "99,999"), (150000, "150,000"), (1.2e6, "1,200,000"),
     (0.25, "0.25"), (2.5, "2.5"), (2.54, "2.54"), (61.7, "61.7"), (99.96, "100"), (0.004, "0.004"),
     (-3, "-3"), (-2.5, "-2.5"), (-0.0, "0"), (float("nan"), "\u2013"), (float("inf"), "\u2013")],
)  # fmt: skip
def test_a_figure_is_written_in_full(value: float, text: str) -> None:
    assert figure(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (7, "7"), (950, "950"), (999, "999"), (1000, "1,000"), (1050, "1,050"), (9999, "9,999"),
     (10000, "10k"), (12000, "12k"), (12500, "12.5k"), (99999, "99.999k"), (150000, "150k"), (1.2e6, "1.2M"),
     (3.5e9, "3.5B"), (2e12, "2T"), (0.25, "0.25"), (2.5, "2.5"), (-12000, "-12k")],
)  # fmt: skip
def test_an_axis_label_alone_is_exact_at_every_magnitude(value: float, text: str) -> None:
    assert axis_labels([value]) == [text]
    assert value_of(text) == pytest.approx(value)


def test_twelve_thousand_is_never_one_point_two_thousand() -> None:
    """The report's own formatter once printed "1.2k" for 12,000 (it divided by 10,000)."""
    for ticks in ([0, 3000, 6000, 9000, 12000], [0, 4000, 8000, 12000, 16000], [12000]):
        labels = axis_labels(ticks)
        assert "1.2k" not in labels and "12k" in labels, labels


@pytest.mark.parametrize(
    ("ticks", "labels"),
    [([0, 2500, 5000, 7500, 10000, 12500], ["0", "2.5k", "5k", "7.5k", "10k", "12.5k"]),
     ([0, 3000, 6000, 9000, 12000], ["0", "3k", "6k", "9k", "12k"]),
     ([0, 2000, 4000, 6000, 8000], ["0", "2,000", "4,000", "6,000", "8,000"]),
     ([0, 300000, 600000, 900000, 1200000], ["0", "0.3M", "0.6M", "0.9M", "1.2M"]),
     ([0, 0.25, 0.5, 0.75, 1], ["0", "0.25", "0.5", "0.75", "1"])],
    ids=["report-2.5-steps", "chart-3-steps", "below-10k", "millions", "fractions"],
)  # fmt: skip
def test_an_axis_is_labelled_in_one_unit(ticks: list[float], labels: list[str]) -> None:
    assert axis_labels(ticks) == labels


def test_ticks_never_print_alike_and_read_back_as_themselves() -> None:
    """Property-style: many axes (the chart's and the report's tick steps, and arbitrary values):
    two different values never share a label; an axis of round ticks is labelled exactly."""
    rng = random.Random(19)
    axes: list[list[float]] = []
    for exponent in range(-2, 16):
        for multiple in (1, 2, 2.5, 3, 4, 5, 6, 8):
            step = multiple * 10.0**exponent
            axes.append([step * index for index in range(7)])
    for _ in range(3000):
        scale = 10 ** rng.uniform(-3, 15)
        axes.append([rng.uniform(-scale, scale) for _ in range(rng.randint(2, 8))])
        axes.append([round(rng.uniform(0, scale), rng.randint(0, 3)) for _ in range(rng.randint(2, 8))])
    for ticks in axes:
        labels = axis_labels(ticks)
        pairs = dict(zip(labels, ticks, strict=True))
        assert len(pairs) == len(set(ticks)), f"two values print alike: {ticks} -> {labels}"
    for ticks in axes[: 18 * 8]:  # the round ticks
        for tick, label in zip(ticks, axis_labels(ticks), strict=True):
            assert value_of(label) == pytest.approx(tick, rel=1e-9, abs=1e-12), (ticks, label)


def test_the_chart_and_the_report_share_the_one_formatter() -> None:
    """Neither keeps its own copy: both label with core.numbers (and the report's page needs
    nothing beyond the standard library and it)."""
    assert chart.axis_labels is report.axis_labels is numbers.axis_labels
    assert report.figure is numbers.figure
    for module in (chart, report):
        assert not hasattr(module, "_compact"), f"{module.__name__} keeps its own formatter"
    tree = ast.parse(Path(numbers.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {name.split(".")[0] for name in imported} - {"__future__"} <= sys.stdlib_module_names
