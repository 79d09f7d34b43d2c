"""Shared fixtures: a simulated Mixpanel export host, a clean CLI environment, DuckDB reads, the
BigQuery emulator's project.

The world is faked only at its boundaries: the export API is ``mixpanel_alerts.simulator`` (a real
HTTP server on 127.0.0.1), the warehouse is a real DuckDB file in ``tmp_path``, and the product is
driven through its console script in a subprocess with an environment built from scratch.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import subprocess as subprocess_module
import sys
import tempfile
import threading
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pytest

from mixpanel_alerts.simulator import ExportSimulator, SimEvent, generate_traffic
from tests.slack_fake import SlackFake

PROJECT_ID = "12345"
SA_USERNAME = "alerts-bot.mp-service-account"
SA_SECRET = "sa-secret-Q7m2Kx9"
API_SECRET = "legacy-secret-Zp4Lw8"
# Output of the CLI must never contain the values of these variables.
SECRET_VARIABLES = ("MIXPANEL_SERVICE_ACCOUNT_SECRET", "MIXPANEL_API_SECRET", "SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN")

ENABLED_NAMES = ("checkout_completed", "page_view")
DISABLED_NAME = "debug_ping"

DB_FILE = "mixpanel.duckdb"
EVENTS_TABLE = "mixpanel_data.mixpanel_events"
REJECTS_TABLE = "mixpanel_data.mixpanel_rejects"
CLI = str(Path(sys.executable).with_name("mixpanel-alerts"))
SUMMARY = re.compile(
    r"loaded (?P<loaded>[\d,]+), duplicates skipped (?P<skipped>[\d,]+), rejected (?P<rejected>[\d,]+)"
)


def rule(name: str, *, enabled: bool = True, **overrides: Any) -> dict[str, Any]:
    """One entry of the events configuration, valid unless overridden."""
    return {
        "name": name,
        "enabled": enabled,
        "alert_threshold": 5,
        "alert_channel": "#alerts-errors",
        "time_window_minutes": 1,
        **overrides,
    }


DEFAULT_EVENTS_CONFIG = {"events": [*(rule(name) for name in ENABLED_NAMES), rule(DISABLED_NAME, enabled=False)]}


def write_events_config(directory: Path, document: Any, name: str = "events_config.json") -> Path:
    path = directory / name
    path.write_text(document if isinstance(document, str) else json.dumps(document, indent=2), encoding="utf-8")
    return path


def recent_traffic(count: int, names: Sequence[str] = ENABLED_NAMES, seed: int = 7) -> list[SimEvent]:
    """``count`` events over the last 20 hours (inside the first run's window yesterday..today)."""
    now = datetime.now(UTC)
    return list(
        generate_traffic(
            count, names=list(names), start=now - timedelta(hours=20), end=now - timedelta(minutes=5), seed=seed
        )
    )


def summary_numbers(output: str) -> dict[str, int]:
    match = SUMMARY.search(output)
    assert match, f"no summary line in output:\n{output}"
    return {key: int(value.replace(",", "")) for key, value in match.groupdict().items()}


@pytest.fixture(scope="session")
def stopping_servers() -> Iterator[list[threading.Thread]]:
    """Fake servers stop in the background (shutdown waits up to half a second); all are joined at the end."""
    stopping: list[threading.Thread] = []
    yield stopping
    for thread in stopping:
        thread.join(timeout=10)


SIMULATOR_OPTIONS: dict[str, Any] = {
    "project_id": PROJECT_ID,
    "service_account": (SA_USERNAME, SA_SECRET),
    "api_secret": API_SECRET,
    "retry_after_seconds": 0,
}


def start_simulator(cls: type[ExportSimulator] = ExportSimulator, **options: Any) -> ExportSimulator:
    """A simulator started with the tests' project and credentials (any subclass, any options)."""
    return cls(**{**SIMULATOR_OPTIONS, **options}).start()


def stop_in_background(simulator: ExportSimulator, stopping: list[threading.Thread]) -> None:
    thread = threading.Thread(target=simulator.stop, daemon=True)
    thread.start()
    stopping.append(thread)


@pytest.fixture
def start_sim(stopping_servers: list[threading.Thread]) -> Iterator[Callable[..., ExportSimulator]]:
    """Start simulators (any subclass, any options); all are stopped after the test."""
    started: list[ExportSimulator] = []

    def start(cls: type[ExportSimulator] = ExportSimulator, **options: Any) -> ExportSimulator:
        simulator = start_simulator(cls, **options)
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        stop_in_background(simulator, stopping_servers)


@pytest.fixture
def slack_fake() -> Iterator[SlackFake]:
    """A local server speaking Slack's webhook and Web API (tests/slack_fake.py)."""
    fake = SlackFake()
    yield fake
    fake.stop()


@pytest.fixture
def sim(start_sim: Callable[..., ExportSimulator]) -> ExportSimulator:
    return start_sim()


def env_maker(directory: Path) -> Callable[..., dict[str, str]]:
    """A clean environment for the CLI run in ``directory`` against a simulator; ``NAME=None``
    removes a variable.

    Nothing of the developer's environment leaks in: no MIXPANEL_*, HOME is ``directory`` (no
    ``~/.dlt``), paths are relative to the working directory ``directory``.
    """

    def make(sim: ExportSimulator | None = None, **overrides: str | None) -> dict[str, str]:
        if not (directory / "events_config.json").exists():
            write_events_config(directory, DEFAULT_EVENTS_CONFIG)
        env = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.defpath}",
            "HOME": str(directory),
            "LANG": "C.UTF-8",
            "MIXPANEL_PROJECT_ID": PROJECT_ID,
            "MIXPANEL_SERVICE_ACCOUNT_USERNAME": SA_USERNAME,
            "MIXPANEL_SERVICE_ACCOUNT_SECRET": SA_SECRET,
            "DUCKDB_PATH": DB_FILE,
            "EVENTS_CONFIG_PATH": "events_config.json",
            "SOURCES__MIXPANEL__REQUEST_BACKOFF_FACTOR": "0.01",
            "RUNTIME__DLTHUB_TELEMETRY": "false",
        }
        if sim is not None:
            env["MIXPANEL_EXPORT_URL"] = sim.url
        for name, value in overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    return make


@pytest.fixture
def make_env(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """A clean environment for the CLI in ``tmp_path`` (``env_maker``)."""
    return env_maker(tmp_path)


@contextlib.contextmanager
def process_context(env: dict[str, str], cwd: Path) -> Iterator[None]:
    """This process as a fresh ``mixpanel-alerts`` process would see it: exactly ``env`` as its
    environment, ``cwd`` as its working directory; both as they were afterwards."""
    saved_env, saved_cwd, saved_tempdir = dict(os.environ), Path.cwd(), tempfile.tempdir
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    tempfile.tempdir = None  # found again from TMPDIR, as a new process would
    try:
        # warnings as a process of its own has them (printed once, the noisy kinds ignored), not the
        # errors pytest makes of them
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
                warnings.filterwarnings("ignore", category=category)
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        tempfile.tempdir = saved_tempdir


def run_in_process(args: Sequence[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``mixpanel-alerts ARGS`` through its ``main`` in this process: the same code path as the
    console script, without a second interpreter's start-up (about 2 s of imports a run)."""
    from mixpanel_alerts.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with process_context(env, cwd), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception:  # what the interpreter would print before exiting 1
            traceback.print_exc()
            code = 1
    return subprocess.CompletedProcess([CLI, *args], code, stdout.getvalue(), stderr.getvalue())


def cli_runner(directory: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``mixpanel-alerts ARGS`` in ``directory`` (in this process; ``subprocess=True`` for a
    process of its own); fails the test if a secret shows in its output. Its ``stdout`` and
    ``stderr`` come without the lines' timestamps; ``raw_stderr`` has them."""

    def run(
        args: Sequence[str], env: dict[str, str], cwd: Path | None = None, *, subprocess: bool = False
    ) -> subprocess_module.CompletedProcess[str]:
        if subprocess:
            result = subprocess_module.run(
                [CLI, *args], env=env, cwd=cwd or directory, capture_output=True, text=True, timeout=180, check=False
            )
        else:
            result = run_in_process(args, env, cwd or directory)
        output = result.stdout + result.stderr
        for name in SECRET_VARIABLES:
            secret = env.get(name)
            assert not secret or secret not in output, f"{name}'s value appears in the output of {args}"
        # tests read the output without the timestamps that start its lines (raw_stderr keeps them)
        result.raw_stderr = result.stderr  # type: ignore[attr-defined]
        result.stdout, result.stderr = untimed(result.stdout), untimed(result.stderr)
        return result

    return run


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``mixpanel-alerts ARGS`` in ``tmp_path`` (``cli_runner``)."""
    return cli_runner(tmp_path)


def run_overlapping(args: Sequence[str], env: dict[str, str], cwd: Path, count: int = 2) -> list[tuple[int, str]]:
    """Start ``count`` runs of ``mixpanel-alerts ARGS`` at once; their exit codes and outputs."""
    runs = [
        subprocess.Popen([CLI, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(count)
    ]
    outputs = [run.communicate(timeout=180)[0] for run in runs]
    return [(run.returncode, output) for run, output in zip(runs, outputs, strict=True)]


def query(db_path: Path, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` against the DuckDB file, opened read-only."""
    with duckdb.connect(str(db_path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def table_exists(db_path: Path, qualified: str) -> bool:
    if not db_path.exists():
        return False
    schema, table = qualified.split(".")
    rows = query(
        db_path,
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    )
    return rows[0][0] == 1


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / DB_FILE


# --- the BigQuery emulator -----------------------------------------------------------------------
# `.ci/run` and `just test` start it (scripts/bq_emulator.sh) and set BIGQUERY_EMULATOR_HOST; locally,
# `eval "$(scripts/bq_emulator.sh start)"` first. Tests that need it skip without it. Credentials are a
# generated service-account key whose token_uri points at a local token endpoint, so the real
# google-auth flow runs.

EMULATOR = os.environ.get("BIGQUERY_EMULATOR_HOST")
PROJECT = "test-project"


class _TokenHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"access_token": "emulator-token", "expires_in": 3600, "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def keyfile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    token_uri = f"http://127.0.0.1:{server.server_address[1]}/token"
    document = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "emulator",
        "private_key": pem,
        "client_email": f"pipeline@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    path = tmp_path_factory.mktemp("gcp") / "service-account.json"
    path.write_text(json.dumps(document))
    yield path
    server.shutdown()


@pytest.fixture
def bigquery(keyfile: Path) -> Any:
    from google.cloud import bigquery as bq
    from google.oauth2 import service_account

    credentials = service_account.Credentials.from_service_account_file(str(keyfile))
    return bq.Client(project=PROJECT, credentials=credentials)


@pytest.fixture
def bigquery_env(make_env: Callable[..., dict[str, str]], keyfile: Path) -> Callable[..., dict[str, str]]:
    """The environment of a run against the emulator's project, with the service-account key."""

    def env(dataset: str, sim: Any = None, **overrides: str) -> dict[str, str]:
        return make_env(
            sim,
            WAREHOUSE="bigquery",
            GCP_PROJECT_ID=PROJECT,
            BIGQUERY_DATASET=dataset,
            GOOGLE_APPLICATION_CREDENTIALS=str(keyfile),
            BIGQUERY_EMULATOR_HOST=EMULATOR,
            # the emulator cannot read gzipped load files; real BigQuery can
            NORMALIZE__DATA_WRITER__DISABLE_COMPRESSION="true",
            **overrides,
        )

    return env


@pytest.fixture
def dataset(bigquery: Any) -> str:
    """A new, empty dataset in the emulator's project."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    bigquery.query(f"create schema {name}").result()
    return name


TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", re.MULTILINE)


def untimed(text: str) -> str:
    """Run output without the timestamp that starts each of its lines."""
    return TIMESTAMP.sub("", text)


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    """What a command printed (stdout, then stderr), without the lines' timestamps."""
    return untimed(result.stdout + result.stderr)


# the fixtures of end-to-end tests: a simulated export host, the CLI, the BigQuery emulator, and
# the module-scoped warehouses collected and detected once for a module's tests
END_TO_END_FIXTURES = {"sim", "start_sim", "run_cli", "bigquery", "bigquery_env", "pipeline", "detected", "loaded"}


# the BigQuery emulator's tests are the longest (a run there takes 30-100 s on a busy machine)
EMULATOR_FIXTURES = {"bigquery", "bigquery_env"}


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark end-to-end tests `slow` as they are collected, before `-m` deselects by mark (a marker
    added in a later hook would count for nothing): `just test-fast` (-m "not slow") is the inner loop."""
    if END_TO_END_FIXTURES & set(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.slow)


@pytest.hookimpl(trylast=True)  # after pytest's own reordering by fixture scope, which would undo it
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, put the emulator's tests first in each worker's share (see ``spread_first``)."""
    workers = int(getattr(config, "workerinput", {}).get("workercount", 0))
    if workers > 1:
        items[:] = spread_first(items, workers, lambda item: bool(EMULATOR_FIXTURES & set(item.fixturenames)))


def spread_first(items: list[Any], workers: int, is_long: Callable[[Any], bool]) -> list[Any]:
    """The order in which xdist's work stealing (``--dist worksteal``) starts the long tests at once
    on every worker: it first cuts the collection into contiguous shares (``len(pending) //
    workers_left`` each, in order) and steals from a share's end, so each share here begins with
    its round-robin part of the long tests, then the others in their order. Every worker computes
    the same order, as xdist requires."""
    long = [item for item in items if is_long(item)]
    others = [item for item in items if not is_long(item)]
    shares: list[list[Any]] = [long[worker::workers] for worker in range(workers)]
    left = len(items)
    for worker, share in enumerate(shares):
        size = left // (workers - worker)
        left -= size
        take = max(size - len(share), 0)
        share += others[:take]
        del others[:take]
    shares[-1] += others
    return [item for share in shares for item in share]


_TEST_CPU: dict[str, float] = {}


def _cpu_seconds() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    if os.environ.get("TEST_TIMELINE"):
        _TEST_CPU[nodeid] = _cpu_seconds()


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    """With TEST_TIMELINE=FILE, one line per test: worker, end time, CPU seconds of the worker and
    its children (a map of where the suite's time goes)."""
    timeline = os.environ.get("TEST_TIMELINE")
    if timeline:
        import time

        cpu = _cpu_seconds() - _TEST_CPU.pop(nodeid, _cpu_seconds())
        with open(timeline, "a", encoding="utf-8") as handle:
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            handle.write(f"{worker}\t{time.time():.1f}\t{cpu:.1f}\t{nodeid}\n")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """With TEST_TIMELINE=FILE, the process's own total (a test name of SESSION): what the tests'
    lines do not account for is start-up and collection."""
    timeline = os.environ.get("TEST_TIMELINE")
    if timeline:
        import time

        with open(timeline, "a", encoding="utf-8") as handle:
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            handle.write(f"{worker}\t{time.time():.1f}\t{_cpu_seconds():.1f}\tSESSION\n")
