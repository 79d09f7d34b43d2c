"""Numbers as the product writes them for people, in one place: the PNG chart of an alert and the
HTML report of a backtest label their axes and their tables with these, so they agree.

- ``figure``: a count or an expectation in full, with thousands separators: ``0``, ``7``, ``950``,
  ``12,000``, ``2.5``, ``0.25``.
- ``axis_labels``: the labels of an axis's ticks, in one unit for the whole axis (``12k``, ``12.5k``,
  ``1.2M`` once the largest tick reaches 10,000), each exact where it can be, no two alike.

Standard library only: the report's page is rendered from it with nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

NOT_A_NUMBER = "\u2013"
# an axis switches to a unit when its largest tick reaches this (below: "9,999", not "10k")
COMPACT_FROM = 10_000
UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))
# decimals an axis label may carry to be exact; beyond, only as many as keep the labels distinct
EXACT_DECIMALS = 6
MAX_DECIMALS = 17


def figure(value: float) -> str:
    """A count or an expectation in full: whole numbers as they are (``12,000``), fractions with the
    decimals their size deserves: two below 10 (``2.5``, ``0.25``), one below 100 (``61.7``), none
    above; a tiny one keeps one significant digit (``0.004``), so it never reads as ``0``."""
    if not math.isfinite(value):
        return NOT_A_NUMBER
    if value == 0:
        return "0"
    size = abs(value)
    if size >= 100 or float(value).is_integer():
        decimals = 0
    elif size >= 10:
        decimals = 1
    elif size >= 0.01:
        decimals = 2
    else:
        decimals = -math.floor(math.log10(size))
    return _trimmed(f"{value:,.{decimals}f}")


def axis_labels(values: Sequence[float]) -> list[str]:
    """The labels of ``values`` (an axis's ticks), in the unit of the largest: ``0, 2.5k, 5k, 7.5k,
    10k, 12.5k``. Each label is the value exactly when at most EXACT_DECIMALS decimals of the unit
    can say it; otherwise the labels carry the fewest decimals that keep different values apart."""
    finite = [value for value in values if math.isfinite(value)]
    largest = max((abs(value) for value in finite), default=0.0)
    divisor, suffix = next(((size, unit) for size, unit in UNITS if largest >= max(size, COMPACT_FROM)), (1.0, ""))
    scaled = [value / divisor for value in finite]
    decimals = next((d for d in range(EXACT_DECIMALS + 1) if all(_exact(v, d) for v in scaled)), None)
    if decimals is None:
        distinct = len(set(finite))
        decimals = next(
            (d for d in range(MAX_DECIMALS + 1) if len({_label(v, d, "") for v in scaled}) == distinct),
            MAX_DECIMALS,
        )
    return [_label(value / divisor, decimals, suffix) if math.isfinite(value) else NOT_A_NUMBER for value in values]


def _exact(scaled: float, decimals: int) -> bool:
    """Whether ``decimals`` decimals say ``scaled`` (up to the float's own rounding noise)."""
    return abs(round(scaled, decimals) - scaled) <= 1e-9 * max(1.0, abs(scaled))


def _label(scaled: float, decimals: int, suffix: str) -> str:
    text = _trimmed(f"{scaled:,.{decimals}f}")
    return "0" if text in ("0", "-0") else text + suffix


def _trimmed(text: str) -> str:
    """``2.50`` as ``2.5``, ``3.00`` as ``3``: the same value, without the zeros that say nothing."""
    return text.rstrip("0").rstrip(".") if "." in text else text
