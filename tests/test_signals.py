"""SIGTERM and SIGINT stop a command within seconds, with exit code 143 or 130 and one line, and the
next run finishes the rest: the fast representatives. tests/reliability/test_signals.py stops each
step (download, normalize, load, the dbt build, a Slack post) and checks what the next run sends.

The CLI runs as a process of its own (its own session) and gets real signals. To land a signal in
a step that lasts a fraction of a second, the run is frozen (SIGSTOP) as soon as its scratch folder
or its output shows the step, checked to be still there, signalled, and let go (SIGCONT): the
signal is then handled exactly there.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mixpanel_alerts.core.signals import AFTERWARDS, GRACE_SECONDS
from mixpanel_alerts.simulator import ExportSimulator
from tests.conftest import recent_traffic, untimed
from tests.reliability.support import (
    Runner,
    SlowExportSimulator,
    Spawned,
    event_totals,
    normalize_committed,
    signal_when,
)

EVENTS = 20_000


def said(spawned: Spawned, start: str) -> bool:
    """Whether a line of the run's output (without its timestamp) starts with ``start``."""
    output = untimed(spawned.log.read_text(encoding="utf-8", errors="replace"))
    return any(line.strip().startswith(start) for line in output.splitlines())


def stop_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("stopped by ")]


def test_sigterm_as_dlt_normalize_ends_stops_the_run_and_the_next_collect_stores_every_event_once(
    start_sim: Callable[..., ExportSimulator], make_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    """Issue 19, fault 5: SIGTERM at the end of dlt's normalize step (its package committed, the
    load about to start) was dropped, and the run went on through the load, dbt and the alerts to
    exit 0 (12 s later here). Now the run stops there, with 143 and one line; the next collect
    stores the rest: every event once."""
    sim = start_sim(per_hour_limit=10_000)
    sim.add_events(recent_traffic(EVENTS, seed=41))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = make_env(sim, TMPDIR=str(scratch))
    runner = Runner(tmp_path)

    stopped, seconds, landed = signal_when(
        runner.spawn(["run"], env), (signal.SIGTERM,), lambda: normalize_committed(scratch)
    )
    print(f"SIGTERM as dlt's normalize step ends: exit {stopped.code} {seconds:.2f} s after the signal")
    recovery = runner.run(["collect"], env)

    assert landed, f"the signal did not land between dlt's normalize and load steps:\n{stopped.output}"
    assert stopped.code == 143, stopped.output
    assert seconds < GRACE_SECONDS, f"took {seconds:.1f} s to stop:\n{stopped.output}"
    # the package is committed and the load about to start: the main thread is at one or the other
    assert stop_lines(stopped.output) in (
        [f"stopped by SIGTERM during collect ({part}); {AFTERWARDS}"] for part in ("normalize", "load")
    ), stopped.output
    assert stopped.output.rstrip().splitlines()[-1].startswith("stopped by "), "the run said more after it stopped"
    assert "collected " not in stopped.output and "detect:" not in stopped.output, "the run went on after the signal"
    assert "error" not in stopped.output.lower() and "Traceback" not in stopped.output, stopped.output
    assert recovery.code == 0, recovery.output
    assert event_totals(tmp_path / "mixpanel.duckdb") == (EVENTS, EVENTS)


def test_sigint_while_downloading_stops_the_collect_and_the_next_one_stores_every_event_once(
    start_sim: Callable[..., ExportSimulator], make_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    """Ctrl-C while the export streams in: the blocked socket read is interrupted, 130 at once."""
    events = 5_000
    sim = start_sim(SlowExportSimulator, per_hour_limit=10_000)
    assert isinstance(sim, SlowExportSimulator)
    sim.stream_seconds = 30.0  # the body trickles in for half a minute
    sim.add_events(recent_traffic(events, seed=43))
    env = make_env(sim)
    runner = Runner(tmp_path)

    spawned = runner.spawn(["collect"], env)

    def streaming() -> bool:  # Mixpanel has the request, the body is not all in
        return bool(sim.requests) and not said(spawned, "downloaded ")

    stopped, seconds, landed = signal_when(spawned, (signal.SIGINT,), streaming)
    print(f"SIGINT while downloading: exit {stopped.code} {seconds:.2f} s after the signal")
    sim.stream_seconds = 0.0
    recovery = runner.run(["collect"], env)

    assert landed, stopped.output
    assert stopped.code == 130, stopped.output
    assert seconds < GRACE_SECONDS, f"took {seconds:.1f} s to stop:\n{stopped.output}"
    assert stop_lines(stopped.output) == [f"stopped by SIGINT during collect (download); {AFTERWARDS}"]
    assert "error" not in stopped.output.lower() and "Traceback" not in stopped.output, stopped.output
    assert recovery.code == 0, recovery.output
    assert event_totals(tmp_path / "mixpanel.duckdb") == (events, events)


# a command whose library catches the stop and goes on, as dbt's runner catches every exception
SWALLOWING = """
import sys, time
from mixpanel_alerts.core import logs, signals

logs.set_format(sys.argv[2])
with signals.handled("swallowing", grace_seconds=float(sys.argv[1])):
    while True:
        try:
            print("ready", flush=True)
            time.sleep(60)
        except signals.Stopped:
            print("caught and going on", flush=True)
"""


def start_swallowing(grace_seconds: float, log_format: str = "text") -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SWALLOWING, str(grace_seconds), log_format],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    return process


def test_a_stop_that_a_library_swallows_ends_the_process_after_the_grace() -> None:
    process = start_swallowing(grace_seconds=1.0)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    seconds = time.monotonic() - sent

    assert process.returncode == 143, output
    assert "caught and going on" in output
    assert stop_lines(untimed(output)) == [
        f"stopped by SIGTERM during swallowing, ended after 1 s of winding down; {AFTERWARDS}"
    ]
    assert 1.0 <= seconds < 3.0, seconds


def test_a_second_signal_ends_the_process_at_once_with_the_first_ones_code_and_a_json_line() -> None:
    process = start_swallowing(grace_seconds=60.0, log_format="json")
    assert process.stdout is not None
    process.send_signal(signal.SIGINT)
    assert process.stdout.readline() == "caught and going on\n"
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    seconds = time.monotonic() - sent

    assert process.returncode == 130, output
    line = json.loads(output.splitlines()[-1])
    assert line["message"] == f"stopped by SIGINT during swallowing, ended at once by a second signal; {AFTERWARDS}"
    assert (line["severity"], line["signal"], line["exit_code"]) == ("WARNING", "SIGINT", 130)
    assert seconds < 1.0, seconds


def test_a_signal_anywhere_between_dlts_first_and_last_step_is_said_with_its_step(tmp_path: Path) -> None:
    """A signal names the dlt step the run was in, wherever in dlt's code it lands: also between
    two steps, where the main thread is in ``Pipeline.run`` or in a decorator still ending the last
    step's trace (CI once stopped there and said only ``during collect``). Every call and return in
    dlt's pipeline layer (the code that runs between the steps and calls each one) during a real run
    into DuckDB is asked where it is, as a signal's handler would."""
    import dlt

    from mixpanel_alerts.core import signals

    pipeline = dlt.pipeline(
        "where_a_signal_lands",
        destination=dlt.destinations.duckdb(str(tmp_path / "where.duckdb")),
        pipelines_dir=str(tmp_path / "pipelines"),
        dataset_name="events",
    )
    said: list[str] = []

    def profile(frame: Any, event: str, arg: object) -> None:
        module = str(frame.f_globals.get("__name__", ""))
        if event in ("call", "return") and module.startswith(("dlt.pipeline", "dlt.common.pipeline")):
            said.append(signals._where(frame, "collect"))

    sys.setprofile(profile)
    try:
        pipeline.run([{"id": n, "name": f"event {n}"} for n in range(100)], table_name="events")
    finally:
        sys.setprofile(None)

    steps = [n for n, where in enumerate(said) if where != "collect"]
    assert {said[n] for n in steps} == {f"collect ({step})" for step in ("extract", "normalize", "load")}
    unnamed = [n for n in range(steps[0], steps[-1]) if said[n] == "collect"]
    assert not unnamed, f"{len(unnamed)} of {steps[-1] - steps[0]} points between the steps name none"
