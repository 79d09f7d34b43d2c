"""Tools of the reliability scenarios: the CLI in its own process group (so ``kill -9`` takes all of
it), spikes that make incidents, a slowly streaming export host, Slack going away and coming back,
and the counts the figures report."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mixpanel_alerts.simulator import GZIP_MIN_BYTES, ExportSimulator, SimEvent, _gzip_cached, _Handler, make_event
from tests.conftest import CLI, EVENTS_TABLE, SECRET_VARIABLES, query, untimed
from tests.slack_fake import BOT_TOKEN, SlackFake

LEDGER = "mixpanel_data.alert_notifications"
FIRING_PREFIX = ":rotating_light:"
RESOLVED_PREFIX = ":white_check_mark:"
MAY_HAVE_ARRIVED = "may have arrived"


# ---------------------------------------------------------------------------------- processes


@dataclasses.dataclass
class Finished:
    code: int  # negative: killed by that signal
    output: str
    seconds: float

    @property
    def killed(self) -> bool:
        return self.code == -signal.SIGKILL


class Spawned:
    """``mixpanel-alerts ARGS`` started in a new session (its own process group), output in a file."""

    def __init__(self, args: Sequence[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.env = env
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as sink:
            self.started = time.monotonic()
            self.process = subprocess.Popen(
                [CLI, *args], env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )

    def running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> Finished:
        """SIGKILL to the whole process group (a no-op if it already ended)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.wait(60)

    def wait(self, timeout: float = 240) -> Finished:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        seconds = time.monotonic() - self.started
        output = self.log.read_text(encoding="utf-8", errors="replace")
        assert_no_secrets(output, self.env)
        return Finished(code, untimed(output), seconds)  # read without the lines' timestamps


class Runner:
    """Numbered runs of the CLI in one working folder, each with its own log file."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.count = 0

    def spawn(self, args: Sequence[str], env: dict[str, str]) -> Spawned:
        self.count += 1
        return Spawned(args, env, self.cwd, self.cwd / "logs" / f"{self.count:03d}-{'-'.join(args)}.log")

    def run(self, args: Sequence[str], env: dict[str, str], timeout: float = 240) -> Finished:
        return self.spawn(args, env).wait(timeout)

    def kill_after(self, args: Sequence[str], env: dict[str, str], seconds: float) -> Finished:
        spawned = self.spawn(args, env)
        deadline = spawned.started + seconds
        while spawned.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        return spawned.kill()

    def kill_when(self, args: Sequence[str], env: dict[str, str], text: str, timeout: float = 120) -> Finished:
        """Kill the run as soon as its output shows ``text``."""
        spawned = self.spawn(args, env)
        deadline = spawned.started + timeout
        while spawned.running() and time.monotonic() < deadline:
            if text in spawned.log.read_text(errors="replace"):
                break
            time.sleep(0.02)
        return spawned.kill()


def assert_no_secrets(output: str, env: dict[str, str]) -> None:
    for name in SECRET_VARIABLES:
        secret = env.get(name)
        assert not secret or secret not in output, f"{name}'s value appears in the output"


def last_stage(output: str) -> str:
    """How far a killed collect got, from its progress lines."""
    stage = "start"
    for line in output.splitlines():
        text = line.strip()
        if text.startswith(("collect:", "downloading", "downloaded")):
            stage = "export"
        elif text.startswith("parsed"):
            stage = "parse"
        elif text.startswith(("loading", "inserting")):
            stage = "load"
        elif text.startswith("collected"):
            stage = "done"
    return stage


def detect_stage(output: str) -> str:
    """How far a killed detect got, from its output."""
    stage = "start"
    for line in output.splitlines():
        if line.startswith("detect: dbt build"):
            stage = "dbt"
        elif line.startswith("detect:") and "dbt nodes" in line:
            stage = "alerts"
        elif line.startswith("alerts:"):
            stage = "done"
    return stage


# ---------------------------------------------------------------------------------- events


def spike(name: str, minutes_ago: int, count: int = 9) -> list[SimEvent]:
    """``count`` events of ``name`` in one minute ``minutes_ago`` minutes back: over a threshold of 5."""
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
    return [make_event(name, minute + timedelta(seconds=1 + index)) for index in range(count)]


def fresh_spike(names: Iterable[str], count: int = 9) -> list[SimEvent]:
    """Spikes in the current minute, already processed, early enough in it that a run starting now
    still sees them inside ALERT_LOOKBACK_MINUTES=1."""
    while not 4 <= datetime.now(UTC).second <= 30:
        time.sleep(0.2)
    now = datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0)
    step = (now - minute - timedelta(seconds=1)) / (count + 1)
    events = []
    for name in names:
        events += [make_event(name, minute + step * (index + 1), processed_at=now) for index in range(count)]
    return events


def processed_now(events: Iterable[SimEvent]) -> list[SimEvent]:
    """The events as Mixpanel would have them when they arrive now: processed now."""
    now_ms = int(time.time() * 1000)
    return [dataclasses.replace(event, processing_ms=now_ms) for event in events]


def event_totals(db_path: Path) -> tuple[int, int]:
    """Rows and distinct event ids in the raw table (0, 0 if it does not exist)."""
    if not db_path.exists():
        return 0, 0
    try:
        rows = query(db_path, f"select count(*), count(distinct event_id) from {EVENTS_TABLE}")
    except Exception:  # no table yet: the killed run never got that far and nothing recovered it
        return 0, 0
    return int(rows[0][0]), int(rows[0][1])


class _SlowHandler(_Handler):
    """Streams a body in small pieces over ``stream_seconds``: kills land during the download too."""

    def _send_body(self, body: bytes, fault: str | None) -> None:
        sim = self.server.simulator
        seconds = float(getattr(sim, "stream_seconds", 0.0))
        if fault is not None or seconds <= 0:
            super()._send_body(body, fault)
            return
        use_gzip = "gzip" in self.headers.get("Accept-Encoding", "") and len(body) > GZIP_MIN_BYTES
        payload = _gzip_cached(body) if use_gzip else body
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        if use_gzip:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        pieces = 40
        size = max(len(payload) // pieces + 1, 1)
        try:
            for offset in range(0, len(payload), size):
                self.wfile.write(payload[offset : offset + size])
                self.wfile.flush()
                time.sleep(seconds / pieces)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class SlowExportSimulator(ExportSimulator):
    stream_seconds = 2.5

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._server.RequestHandlerClass = _SlowHandler


# ---------------------------------------------------------------------------------- Slack


def slack_env(mode: str, fake: SlackFake) -> dict[str, str]:
    """The settings that send alerts to ``fake`` with a bot token (``bot``) or a webhook."""
    if mode == "bot":
        return {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": fake.api_url}
    return {"SLACK_WEBHOOK_URL": fake.webhook_url}


def payload(message: dict[str, Any]) -> dict[str, Any]:
    metadata = message.get("metadata") or {}
    return metadata.get("event_payload") or {} if isinstance(metadata, dict) else {}


def message_counts(fake: SlackFake, names: Iterable[str], prefix: str = FIRING_PREFIX) -> dict[str, int]:
    """Messages per event name: firing alerts (``prefix`` FIRING_PREFIX) or resolved notices."""
    counts = dict.fromkeys(names, 0)
    for message in list(fake.messages):
        text = str(message.get("text", ""))
        if not text.startswith(prefix):
            continue
        for name in counts:
            if f"{name}: " in text or f"{name} is back" in text:
                counts[name] += 1
    return counts


def firing_messages(fake: SlackFake, name: str) -> list[dict[str, Any]]:
    return [
        message
        for message in list(fake.messages)
        if str(message.get("text", "")).startswith(FIRING_PREFIX) and f"{name}: " in str(message.get("text", ""))
    ]


def repeated_dedup_keys(fake: SlackFake) -> dict[str, int]:
    """Dedup keys stamped on more than one message (bot messages carry them as metadata)."""
    keys = Counter(str(payload(message).get("dedup_key")) for message in list(fake.messages) if payload(message))
    return {key: count for key, count in keys.items() if count > 1}


def says_may_have_arrived(message: dict[str, Any]) -> bool:
    return MAY_HAVE_ARRIVED in json.dumps(message.get("blocks") or []) + str(message.get("text", ""))


class SlackOutage:
    """Slack unreachable: the fake's server is stopped (connections refused) and later started again
    on the same port, with its messages and faults kept."""

    def __init__(self, fake: SlackFake) -> None:
        self.fake = fake
        self.port = int(fake.server.server_address[1])
        self.handler = fake.server.RequestHandlerClass
        self.down = False

    def start(self) -> None:
        self.fake.server.shutdown()
        self.fake.server.server_close()
        self.down = True

    def end(self) -> None:
        if not self.down:
            return
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        server.daemon_threads = True
        self.fake.server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.down = False


# ---------------------------------------------------------------------------------- warehouse


def ledger_rows(db_path: Path) -> list[dict[str, Any]]:
    columns = ("event_name", "kind", "status", "attempts", "maybe_sent", "dedup_key", "slack_ts", "incident_id")
    try:
        rows = query(db_path, f"select {', '.join(columns)} from {LEDGER} order by event_name, kind")
    except Exception:
        return []
    return [dict(zip(columns, row, strict=True)) for row in rows]


def ledger_statuses(db_path: Path) -> Counter[str]:
    return Counter(row["status"] for row in ledger_rows(db_path))


def scratch_leftovers(tmpdir: Path) -> list[str]:
    root = tmpdir / f"mixpanel-alerts-{os.getuid()}"
    return sorted(path.name for path in root.iterdir()) if root.is_dir() else []


def lock_leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.glob("*.collect.lock"))


# ---------------------------------------------------------------------------------- signals


def pipeline_files(tmpdir: Path, pattern: str) -> list[Path]:
    """Files of a run's dlt working folder (``$TMPDIR/mixpanel-alerts-UID/pipeline-…/``)."""
    return sorted((tmpdir / f"mixpanel-alerts-{os.getuid()}").glob(f"pipeline-*/mixpanel_alerts/{pattern}"))


def normalize_committed(tmpdir: Path) -> bool:
    """Whether dlt's normalize step has committed its load package and its load step has started
    no job of it yet (dlt once dropped a signal that came there: it checked its flag before the
    commit, and forgot it as the step ended)."""
    packages = pipeline_files(tmpdir, "load/normalized/*")
    return bool(packages) and all(
        any(package.glob("new_jobs/*"))
        and not any(any(package.glob(f"{state}_jobs/*")) for state in ("started", "completed"))
        for package in packages
    )


def signal_when(
    spawned: Spawned,
    numbers: tuple[int, ...],
    there: Callable[[], bool],
    timeout: float = 180,
    together: bool = False,
) -> tuple[Finished, float, bool]:
    """Send the first of ``numbers`` once ``there()`` holds (frozen, checked, signalled, let go),
    then each other a tenth of a second after the one before: the run's end, the seconds from the
    last signal to its exit, and whether the first landed there. ``together`` sends them all while
    the run is frozen (distinct signals: two of one kind pending at once are one), so the second
    arrives while the first is being handled however fast the stop would have been."""
    deadline = time.monotonic() + timeout
    while spawned.running() and not there() and time.monotonic() < deadline:
        time.sleep(0.003)
    os.killpg(spawned.process.pid, signal.SIGSTOP)
    landed = there()
    sent = time.monotonic()
    for number in numbers if together else numbers[:1]:
        os.kill(spawned.process.pid, number)
    os.killpg(spawned.process.pid, signal.SIGCONT)
    for number in () if together else numbers[1:]:
        time.sleep(0.1)
        sent = time.monotonic()
        os.kill(spawned.process.pid, number)
    finished = spawned.wait(90)
    return finished, finished.seconds - (sent - spawned.started), landed
