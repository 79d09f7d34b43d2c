"""The console script: every command is listed and described; no usage telemetry by default."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import output_of, recent_traffic


def test_top_level_help_lists_the_commands(make_env, run_cli):
    result = run_cli(["--help"], make_env())

    assert result.returncode == 0, output_of(result)
    assert "Usage: mixpanel-alerts" in result.stdout
    for command in ("collect", "backfill", "check"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("command", "described"),
    [
        pytest.param("collect", ["Extract/load", "MIXPANEL_LATE_ARRIVAL_DAYS"], id="collect"),
        pytest.param("backfill", ["--start-date", "--end-date", "never alerts"], id="backfill"),
        pytest.param("check", ["Validate the configuration"], id="check"),
    ],
)
def test_command_help_describes_the_command(make_env, run_cli, command, described):
    result = run_cli([command, "--help"], make_env())

    assert result.returncode == 0, output_of(result)
    text_of_help = " ".join(result.stdout.split())  # help is wrapped to the terminal width
    assert f"Usage: mixpanel-alerts {command}" in text_of_help
    for text in described:
        assert text in text_of_help


def test_unknown_command_is_a_usage_error(make_env, run_cli):
    result = run_cli(["colect"], make_env())

    assert result.returncode == 2
    assert "No such command" in output_of(result)


class TelemetryCollector(BaseHTTPRequestHandler):
    """Stands in for dlt's telemetry endpoint and records what reaches it."""

    received: list[str]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append(body.decode("utf-8", "replace"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def telemetry_endpoint() -> Iterator[tuple[str, list[str]]]:
    received: list[str] = []
    handler = type("Collector", (TelemetryCollector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_collect_sends_no_usage_telemetry_unless_asked(sim, make_env, run_cli, telemetry_endpoint):
    """dlt's anonymous telemetry is off by default; RUNTIME__DLTHUB_TELEMETRY=true turns it on."""
    endpoint, received = telemetry_endpoint
    sim.add_events(recent_traffic(20))

    # processes of their own: dlt starts its telemetry once a process
    result = run_cli(
        ["collect"],
        make_env(sim, RUNTIME__DLTHUB_TELEMETRY=None, RUNTIME__DLTHUB_TELEMETRY_ENDPOINT=endpoint),
        subprocess=True,
    )
    assert result.returncode == 0, output_of(result)
    assert received == []

    result = run_cli(
        ["collect"],
        make_env(sim, RUNTIME__DLTHUB_TELEMETRY="true", RUNTIME__DLTHUB_TELEMETRY_ENDPOINT=endpoint),
        subprocess=True,
    )
    assert result.returncode == 0, output_of(result)
    assert received, "with telemetry asked for, dlt reports the run (so the check above can fail)"


def test_version_and_short_help(make_env, run_cli):
    version = run_cli(["--version"], make_env())
    assert version.returncode == 0, output_of(version)
    assert re.fullmatch(r"mixpanel-alerts \d+\.\d+\.\d+\S*\n", version.stdout)
    for args in (["-h"], ["collect", "-h"]):
        short = run_cli(args, make_env())
        assert short.returncode == 0, output_of(short)
        assert "Usage: mixpanel-alerts" in short.stdout
        assert "``" not in short.stdout, "reStructuredText backticks leak into the help"
