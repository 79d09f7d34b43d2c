"""Odd export answers for several runs in a row, among good ones, while late events keep arriving:
an HTML page, a JSON error object or a body mostly of garbage with status 200 fails those runs
(exit 1, a short error) and moves nothing; a body in several gzip members is read whole; an event
claiming a processing time a day ahead leaves the margin intact. Nothing is lost, nothing doubled."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mixpanel_alerts.simulator import ExportSimulator, SimEvent, generate_traffic, make_event
from tests.conftest import recent_traffic
from tests.reliability.support import Runner, event_totals

INITIAL = 2_000
LATE_PER_RUN = 60
# G: a run answered normally; B: a run answered oddly (odd 200s: every attempt of it)
PATTERN = "GBBBGBBG"
ATTEMPTS = 5  # the source's request_max_attempts


@dataclasses.dataclass(frozen=True)
class Kind:
    fault: str
    fails: bool  # whether a run answered this way must fail
    # margin 0 for the odd answers: a cursor moved past events not fetched yet would lose them at
    # once (with the default 30 minutes it would take half an hour of bad runs to show)
    margin_minutes: int
    # events arriving between runs: processed now, or (the future case) processed just before the
    # previous run asked but visible to the export only after it, which only the margin catches
    processed_before_last_request: bool = False


KINDS = [
    pytest.param(Kind("html-200", True, 0), id="html"),
    pytest.param(Kind("json-error-200", True, 0), id="json-error"),
    pytest.param(Kind("garbage-200", True, 0), id="garbage"),
    pytest.param(Kind("multi-gzip", False, 0), id="multi-gzip"),
    pytest.param(Kind("future-processing", False, 30, processed_before_last_request=True), id="future-processing"),
]


def late_events(batch: int, processed_at: datetime) -> list[SimEvent]:
    """Events from the last three days that Mixpanel processed at ``processed_at`` (offline
    clients deliver late)."""
    end = processed_at - timedelta(minutes=1)
    traffic = generate_traffic(LATE_PER_RUN, names=["page_view", "checkout_completed"],
                               start=end - timedelta(days=3), end=end, seed=100 + batch)  # fmt: skip
    processed_ms = int(processed_at.timestamp() * 1000)
    return [dataclasses.replace(event, processing_ms=processed_ms) for event in traffic]


@pytest.mark.reliability
@pytest.mark.parametrize("kind", KINDS)
def test_odd_export_answers_among_good_ones(
    start_sim: Callable[..., ExportSimulator],
    make_env: Callable[..., dict[str, str]],
    tmp_path: Path,
    figure: Callable[[str], None],
    kind: Kind,
) -> None:
    sim = start_sim(per_hour_limit=10_000)
    sim.add_events(recent_traffic(INITIAL, seed=41))
    expected = INITIAL
    if kind.fault == "future-processing":  # served by every run: its claimed processing time stays ahead
        now = datetime.now(UTC)
        ahead = make_event("page_view", now - timedelta(minutes=3), processed_at=now - timedelta(minutes=2))
        sim.add_events(
            [dataclasses.replace(ahead, claimed_processing_ms=int((now + timedelta(days=1)).timestamp() * 1000))]
        )
        expected += 1
    env = make_env(sim, SOURCES__MIXPANEL__PROCESSING_MARGIN_MINUTES=str(kind.margin_minutes))
    runner = Runner(tmp_path)

    exits: list[int] = []
    failed_lines: list[int] = []
    notes: list[int] = []
    outputs: list[str] = []
    requests_before = 0
    for number, answer in enumerate(PATTERN):
        if number:
            asked = min(record.at for record in sim.requests[requests_before:])  # the previous run's first ask
            processed_at = (
                datetime.fromtimestamp(asked - 30, UTC) if kind.processed_before_last_request else datetime.now(UTC)
            )
            sim.add_events(late_events(number, processed_at))
            expected += LATE_PER_RUN
        requests_before = len(sim.requests)
        if answer == "B":
            sim.inject(*[kind.fault] * (ATTEMPTS if kind.fails else 1))
        result = runner.run(["collect"], env)
        sim.faults.clear()
        exits.append(result.code)
        outputs.append(result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        if result.code != 0:
            failed_lines.append(len(lines))
        notes.append(sum(1 for line in lines if line.startswith("note:")))
    stored, distinct = event_totals(tmp_path / "mixpanel.duckdb")
    expected_exits = [1 if answer == "B" and kind.fails else 0 for answer in PATTERN]
    figure(
        f"{kind.fault} in runs {PATTERN} (B) with {LATE_PER_RUN} late events before each run after the first "
        f"(margin {kind.margin_minutes} min): events expected {expected}, stored {stored}, distinct {distinct}; "
        f"exits {exits}; lines printed per failed run {failed_lines}; notes per run {notes}"
    )
    assert exits == expected_exits, "\n\n".join(outputs)
    assert (stored, distinct) == (expected, expected), "\n\n".join(outputs)
    assert all(count <= 6 for count in failed_lines), "\n\n".join(outputs)
    if kind.fails:
        errors = [line for output in outputs for line in output.splitlines() if line.startswith("error:")]
        assert len(errors) == PATTERN.count("B")
        assert all("answered 200 with" in line and f"({ATTEMPTS} attempts)" in line for line in errors), errors
    if kind.fault == "future-processing":
        assert notes == [1] * len(PATTERN), "\n\n".join(outputs)
