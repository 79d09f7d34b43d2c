"""Weekdays learn from weekdays, in the project's clock (``scripts/weekly_case.py``, also run by
``just quality``): a business-hours event in New York over seven weeks across the 2026-11-01 DST
change, with four partial outages (10% of the rate for 45 minutes) on weekday afternoons, replayed
by ``mixpanel-alerts backtest`` into a real DuckDB file."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "weekly_case.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("weekly_case_script", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_partial_outages_are_drops_within_minutes_and_the_dst_change_raises_no_false_alarms(tmp_path: Path) -> None:
    weekly = _load_script()
    case = weekly.Case()
    outcomes = weekly.run_case(tmp_path, case)
    local, utc = outcomes[weekly.TIMEZONE], outcomes[None]

    # learned by New York's weekdays and hours: each outage is a drop within its first windows
    assert all(minutes is not None and minutes <= 5 for minutes in local.minutes_to_drop), local
    assert local.false_per_week <= 1.5, local
    assert local.false_after_dst <= local.false_before_dst, local
    # learned by UTC hours, the hour after the change is off by one for a week: false alarms follow
    assert utc.false_after_dst > local.false_after_dst + 3, (utc, local)
