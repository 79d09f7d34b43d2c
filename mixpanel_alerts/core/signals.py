"""SIGTERM and SIGINT stop any command within seconds, with exit code 143 or 130 and one line.

Cloud Run and cron send SIGTERM on a timeout (SIGKILL follows about 10 s later); Ctrl-C sends
SIGINT. The CLI handles both for the whole command (``handled``). The first signal is recorded
(which one, where the run was) and ``Stopped`` is raised in the main thread at once: a blocked
socket read, a lock or thread-pool wait, or a sleep is interrupted, and DuckDB cancels a query the
main thread runs. ``Stopped`` is a ``BaseException`` like ``KeyboardInterrupt`` but not one, so
neither the product's ``except Exception`` handlers nor dlt's step wrappers (they catch
``Exception`` and ``KeyboardInterrupt``) turn it into an error: the ``finally`` blocks on its way
out release the writer turn and the scratch folders and write the run's record. Then ``end`` says
the line and exits. The kernel may give a signal to any thread, which leaves the main thread's
wait as it was: a watcher thread, woken through Python's wake-up fd, records the signal there and
then and nudges the main thread.

A library may still catch ``Stopped``: dbt's runner returns it as its result's ``exception``, and
DuckDB turns it into ``RuntimeError("Query interrupted")``. The recorded signal is the truth, not
the exception: ``raise_if_stopped`` is the check after such a call, and the CLI ends a stopped
command with the stop's code however it came out. Two bounds hold whatever happens:

* a second signal ends the process at once;
* a run still going ``GRACE_SECONDS`` after the first signal is ended then (a load job finishing
  its insert, a library that went on): Cloud Run's SIGKILL comes 10 s after the first.

Both are what ``kill -9`` does, which the reliability suite shows is safe: what was committed
stays, the next run finishes the rest. dlt's own signal handling in its normalize and load steps
must be off (``runtime.intercept_signals``; the CLI sets it): it takes the signal for itself, only
stops its load step from starting new jobs, and forgets the signal when the step ends, so the run
went on to dbt and Slack and exited 0 (issue 19, fault 5).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import linecache
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import NoReturn

from . import logs

SIGNALS = (signal.SIGTERM, signal.SIGINT)
# a stop that takes longer than this (after the first signal) ends the process there
GRACE_SECONDS = 5.0
AFTERWARDS = "what was committed stays, the next run finishes the rest"
# how long the watcher lets the main thread's handler run before it nudges the main thread
NUDGE_AFTER_SECONDS = 0.1

# Where the main thread was when the signal came, for the line the user reads: the outermost frame
# of one of these modules names the step, the innermost of the parts what it was doing. Module
# names only: nothing above the core is imported.
STEPS = (
    ("mixpanel_alerts.backtest", "backtest"),
    ("mixpanel_alerts.pipelines", "collect"),
    ("mixpanel_alerts.detection", "detect"),
    ("mixpanel_alerts.alerts", "alert"),
)
PARTS = (
    ("mixpanel_alerts.pipelines.mixpanel.client", "download"),
    ("mixpanel_alerts.pipelines.mixpanel.body", "download"),
    ("mixpanel_alerts.pipelines.mixpanel.body", "download"),
    ("mixpanel_alerts.pipelines.mixpanel.parser", "parse"),
    ("dlt.normalize", "normalize"),
    ("dlt.load", "load"),
    ("dlt.extract", "extract"),
    ("dbt", "dbt"),
    ("slack_sdk", "Slack"),
    ("mixpanel_alerts.alerts.slack", "Slack"),
)
# dlt's pipeline methods, for a signal that comes between the batches of a step
DLT_STEPS = {"extract": "extract", "normalize": "normalize", "load": "load", "_load": "load"}


@dataclasses.dataclass(frozen=True)
class Stop:
    """The first signal: which one, where the run was, and when (``time.monotonic``)."""

    number: int
    where: str
    at: float

    @property
    def name(self) -> str:
        return signal.Signals(self.number).name

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by this signal: 143 for SIGTERM, 130 for SIGINT."""
        return 128 + self.number

    def message(self, how: str = "") -> str:
        """e.g. ``stopped by SIGTERM during collect (load); what was committed stays, …``"""
        return f"stopped by {self.name} during {self.where}{how}; {AFTERWARDS}"


class Stopped(BaseException):
    """A signal asked the process to stop. Not an error: nothing failed, and the exit code says so."""

    def __init__(self, stop: Stop) -> None:
        super().__init__(stop.message())
        self.stop = stop


@dataclasses.dataclass
class _State:
    command: str = "the command"
    grace_seconds: float = GRACE_SECONDS
    stop: Stop | None = None
    raised: bool = False  # Stopped was raised in the main thread (once: never into its cleanup)
    delivered: int = 0  # signals that came, the watcher's own nudges not counted
    nudges: int = 0  # nudges sent to the main thread whose wake-up byte is still to come
    said: bool = False
    lock: threading.RLock = dataclasses.field(default_factory=threading.RLock)


_state = _State()


def received() -> Stop | None:
    """The signal that asked this process to stop, if one did."""
    return _state.stop


def raise_if_stopped() -> None:
    """Raise ``Stopped`` if a signal came: the check after a call that may have swallowed it."""
    if _state.stop is not None:
        raise Stopped(_state.stop)


@contextlib.contextmanager
def handled(command: str, grace_seconds: float = GRACE_SECONDS) -> Iterator[None]:
    """SIGTERM and SIGINT handled as stops while the command runs (only the main thread can
    install handlers; elsewhere this does nothing). Once a signal came, the handlers and the
    watcher stay until the process ends, so a second signal still ends it at once; otherwise
    everything is as it was afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _state
    state = _state = _State(command=command, grace_seconds=grace_seconds)
    previous = {number: signal.getsignal(number) for number in SIGNALS}
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous_wakeup = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(state, read_end), name="signal-watch", daemon=True).start()
    for number in SIGNALS:
        signal.signal(number, _on_signal)
    try:
        yield
    finally:
        if state.stop is None:
            for number, handler in previous.items():
                signal.signal(number, handler)
            signal.set_wakeup_fd(previous_wakeup)
            os.close(write_end)  # the watcher reads the end of the pipe and ends


def end() -> NoReturn:
    """For the CLI once a stopped command has come out (its ``finally`` blocks have run, the run's
    record is written): say the stop's line and exit with its code. The exit handlers run (logging
    flushes, multiprocessing removes the semaphores dbt made), not the rest of the interpreter's
    teardown, which would wait for library threads (a dlt load job still inserting) and close the
    DuckDB databases (seconds on a run's warehouse): the next run opens them as after ``kill -9``."""
    with contextlib.suppress(Exception):
        atexit._run_exitfuncs()
    _end_now(_state, "")


def _on_signal(number: int, frame: FrameType | None) -> None:
    """The handler Python runs in the main thread, at its next instruction or when its blocking
    call is interrupted: record the stop and raise ``Stopped``, once."""
    state = _state
    stop = _record(state, number, frame)
    with state.lock:
        if state.raised:
            return  # a second signal is the watcher's to act on; a nudge needs nothing more
        state.raised = True
    raise Stopped(stop)


def _watch(state: _State, read_end: int) -> None:
    """Each signal writes its number to the wake-up pipe, whichever thread the kernel gave it to.
    A signal given to another thread does not interrupt what the main thread waits for (a socket
    read, a lock, a thread pool): the watcher records it there and then, nudges the main thread
    with the same signal (which interrupts its wait), and ends the process on a second one."""
    while True:
        try:
            data = os.read(read_end, 64)
        except OSError:
            return
        if not data:
            os.close(read_end)
            return
        for number in data:
            if number not in SIGNALS:
                continue
            with state.lock:
                if state.nudges:
                    state.nudges -= 1
                    continue
                state.delivered += 1
                first = state.delivered == 1
            if not first:
                _end_now(state, ", ended at once by a second signal")
            main = threading.main_thread()
            _record(state, number, sys._current_frames().get(main.ident or 0))
            time.sleep(NUDGE_AFTER_SECONDS)  # the main thread's own handler usually runs by then
            with state.lock:
                if state.raised or main.ident is None:
                    continue
                state.nudges += 1
            signal.pthread_kill(main.ident, number)


def _record(state: _State, number: int, frame: FrameType | None) -> Stop:
    """The first signal's stop; the grace timer starts with it."""
    if not logs.is_debug():
        # first, so that whichever thread raises Stopped has done it: what libraries log as they are
        # stopped (dbt's "Encountered an error", a dlt load job whose folder is gone, a thread pool
        # that did not shut down in time) follows from the stop, which the line says
        logging.disable(logging.ERROR)
    with state.lock:
        if state.stop is None:
            state.stop = Stop(number, _where(frame, state.command), time.monotonic())
            threading.Thread(target=_end_after_grace, args=(state,), name="stop-grace", daemon=True).start()
        return state.stop


def _end_after_grace(state: _State) -> None:
    time.sleep(state.grace_seconds)
    _end_now(state, f", ended after {state.grace_seconds:g} s of winding down")


def _end_now(state: _State, how: str) -> NoReturn:
    """Say the line and exit with the stop's code now, without waiting for anything."""
    stop = state.stop
    if stop is None:
        raise RuntimeError("no signal came: nothing to end")
    _say(state, stop, how)
    os._exit(stop.exit_code)


def _say(state: _State, stop: Stop, how: str = "") -> None:
    """The stop's one line on stderr (a JSON object with LOG_FORMAT=json), written once; written
    to the file descriptor, as a signal handler or the grace timer may run while a ``print``
    holds the stream."""
    message = stop.message(how)
    if logs.is_json():
        line = logs.json_line(message, "WARNING", signal=stop.name, exit_code=stop.exit_code)
    else:
        line = f"{logs.timestamp()} {message}"
    with state.lock:  # held while writing: the grace timer's exit waits for a line being written
        if state.said:
            return
        state.said = True
        with contextlib.suppress(Exception):  # a stream busy in the interrupted frame: its text may be lost
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            os.write(2, (line + "\n").encode("utf-8", "replace"))


def _where(frame: FrameType | None, command: str) -> str:
    """``collect (load)``, ``detect (dbt)``, ``alert (Slack)``, or the command when no step shows."""
    step, part = None, None
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        found = _match(module, STEPS)
        if found is not None:
            step = found  # the outermost wins
        if part is None:
            part = _match(module, PARTS)
            if part is None and module == "dlt.pipeline.pipeline":
                part = _dlt_step(frame)
        frame = frame.f_back
    if step is None:
        return command if part is None else f"{command} ({part})"
    return step if part is None else f"{step} ({part})"


def _dlt_step(frame: FrameType) -> str | None:
    """The step a frame of dlt's ``Pipeline`` is in: the method itself, one of the decorators'
    ``_wrap`` around it (still ending the step's trace after it returned), or ``run`` on the line
    that calls it (between one step's return and the next one's start)."""
    name = frame.f_code.co_name
    if name in DLT_STEPS:
        return DLT_STEPS[name]
    if name == "_wrap":
        return DLT_STEPS.get(getattr(frame.f_locals.get("f"), "__name__", ""))
    if name == "run":
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
        return next((label for step, label in DLT_STEPS.items() if f"self.{step}(" in line), None)
    return None


def _match(module: str, table: tuple[tuple[str, str], ...]) -> str | None:
    for prefix, label in table:
        if module == prefix or module.startswith(prefix + "."):
            return label
    return None
