"""EVENTS_CONFIG_GCS_PATH against a local HTTP server speaking the GCS JSON API's media download
(google-cloud-storage honours STORAGE_EMULATOR_HOST)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from mixpanel_alerts.simulator import make_event
from tests.conftest import output_of, query, rule, write_events_config

EVENT = "checkout_completed"


class JsonApiHandler(BaseHTTPRequestHandler):
    """What the fake Google APIs below share: quiet, and JSON (or raw bytes) replies."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_json(self, status: int, payload: dict[str, Any] | bytes) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class LocalApi:
    """A fake Google API on 127.0.0.1, served from a thread until ``stop``."""

    def serve(self, handler: type[JsonApiHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()


class GcsFake(LocalApi):
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.forbidden: set[str] = set()
        fake = self

        class Handler(JsonApiHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                prefix = "/download/storage/v1/b/"
                bucket, _, name = path.removeprefix(prefix).partition("/o/")
                name = unquote(name)
                if bucket in fake.forbidden:
                    self.send_json(403, {"error": {"code": 403, "message": "forbidden"}})
                elif (bucket, name) in fake.objects:
                    self.send_json(200, fake.objects[(bucket, name)])
                else:
                    self.send_json(404, {"error": {"code": 404, "message": "No such object"}})

        self.serve(Handler)


@pytest.fixture
def gcs() -> Iterator[GcsFake]:
    fake = GcsFake()
    yield fake
    fake.stop()


@pytest.fixture
def gcs_env(gcs: GcsFake, make_env: Callable[..., dict[str, str]]) -> Callable[..., dict[str, str]]:
    def env(sim: Any = None, **overrides: str | None) -> dict[str, str]:
        return make_env(
            sim,
            STORAGE_EMULATOR_HOST=gcs.url,
            EVENTS_CONFIG_GCS_PATH="gs://config-bucket/alerts/events_config.json",
            **overrides,
        )

    return env


def test_events_config_from_gcs_is_used(
    gcs: GcsFake, gcs_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    start_sim: Callable[..., Any], tmp_path: Any, db_path: Any,
) -> None:  # fmt: skip
    gcs.objects[("config-bucket", "alerts/events_config.json")] = json.dumps({"events": [rule(EVENT)]}).encode()
    write_events_config(tmp_path, {"events": [rule("page_view")]})  # the file loses to GCS
    sim = start_sim()
    sim.add_events([make_event(EVENT, datetime.now(UTC) - timedelta(minutes=10))])
    result = run_cli(["collect"], gcs_env(sim))
    assert result.returncode == 0, output_of(result)
    assert json.loads(sim.requests[-1].params["event"]) == [EVENT]
    assert query(db_path, "select event_name from mixpanel_data.mixpanel_events") == [(EVENT,)]


def test_events_config_variable_wins_over_gcs(
    gcs_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], start_sim: Callable[..., Any]
) -> None:
    sim = start_sim()
    env = gcs_env(sim, EVENTS_CONFIG=json.dumps({"events": [rule("signup")]}))
    result = run_cli(["collect"], env)  # the GCS object does not exist: it must not be read
    assert result.returncode == 0, output_of(result)
    assert json.loads(sim.requests[-1].params["event"]) == ["signup"]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda gcs: None, "no such object"),
        (lambda gcs: gcs.forbidden.add("config-bucket"), "roles/storage.objectViewer"),
        (lambda gcs: gcs.objects.__setitem__(("config-bucket", "alerts/events_config.json"), b"{oops"), "line 1"),
    ],
    ids=["missing", "no-permission", "malformed"],
)
def test_gcs_config_problems_exit_2_with_the_fix(
    gcs: GcsFake, gcs_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    start_sim: Callable[..., Any], setup: Callable[[GcsFake], None], expected: str,
) -> None:  # fmt: skip
    setup(gcs)
    sim = start_sim()
    result = run_cli(["collect"], gcs_env(sim))
    assert result.returncode == 2, output_of(result)
    assert "EVENTS_CONFIG_GCS_PATH" in output_of(result) or "gs://config-bucket" in output_of(result)
    assert expected in output_of(result)
    assert sim.requests == []


class SecretManagerFake(LocalApi):
    """``GET /v1/projects/P/secrets/S/versions/V:access`` as Secret Manager's REST API answers it."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.denied: set[str] = set()
        self.requests: list[str] = []
        fake = self

        class Handler(JsonApiHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                fake.requests.append(path)
                resource = path.removeprefix("/v1/").removesuffix(":access")
                secret = resource.split("/versions/")[0]
                if secret in fake.denied:
                    self.send_json(403, {"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}})
                elif secret in fake.secrets:
                    data = base64.b64encode(fake.secrets[secret].encode()).decode()
                    self.send_json(200, {"name": resource, "payload": {"data": data}})
                else:
                    self.send_json(404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})

        self.serve(Handler)


@pytest.fixture
def secret_manager() -> Iterator[SecretManagerFake]:
    fake = SecretManagerFake()
    yield fake
    fake.stop()


@pytest.mark.parametrize("mode", ["service-account", "legacy-secret"])
def test_mixpanel_secret_from_secret_manager(
    secret_manager: SecretManagerFake, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    start_sim: Callable[..., Any], mode: str,
) -> None:  # fmt: skip
    sim = start_sim()
    sim.add_events([make_event(EVENT, datetime.now(UTC) - timedelta(minutes=10))])
    assert sim.service_account is not None and sim.api_secret is not None
    if mode == "service-account":
        secret_manager.secrets["projects/gcp-proj/secrets/mixpanel-secret"] = sim.service_account[1]
        overrides = {"MIXPANEL_SERVICE_ACCOUNT_SECRET": None}
    else:
        secret_manager.secrets["projects/gcp-proj/secrets/mixpanel-secret"] = sim.api_secret
        overrides = {"MIXPANEL_SERVICE_ACCOUNT_USERNAME": None, "MIXPANEL_SERVICE_ACCOUNT_SECRET": None}
    env = make_env(
        sim,
        MIXPANEL_API_SECRET_NAME="mixpanel-secret",
        GCP_PROJECT_ID="gcp-proj",
        SECRET_MANAGER_ENDPOINT=secret_manager.url,
        **overrides,
    )
    result = run_cli(["collect"], env)
    assert result.returncode == 0, output_of(result)
    assert secret_manager.requests == ["/v1/projects/gcp-proj/secrets/mixpanel-secret/versions/latest:access"]
    assert sim.requests[-1].auth == ("service_account" if mode == "service-account" else "secret")
    assert secret_manager.secrets["projects/gcp-proj/secrets/mixpanel-secret"] not in output_of(result)


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda fake: None, "does not exist"),
        (lambda fake: fake.denied.add("projects/gcp-proj/secrets/mixpanel-secret"), "secretAccessor"),
    ],
    ids=["missing-secret", "no-permission"],
)
def test_secret_manager_problems_exit_2_with_the_fix(
    secret_manager: SecretManagerFake, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any],
    start_sim: Callable[..., Any], setup: Callable[[SecretManagerFake], None], expected: str,
) -> None:  # fmt: skip
    setup(secret_manager)
    sim = start_sim()
    env = make_env(
        sim,
        MIXPANEL_API_SECRET_NAME="mixpanel-secret",
        GCP_PROJECT_ID="gcp-proj",
        SECRET_MANAGER_ENDPOINT=secret_manager.url,
        MIXPANEL_SERVICE_ACCOUNT_SECRET=None,
    )
    result = run_cli(["collect"], env)
    assert result.returncode == 2, output_of(result)
    assert "MIXPANEL_API_SECRET_NAME" in output_of(result) and expected in output_of(result)
    assert sim.requests == []


class BigQueryDenied(LocalApi):
    """A BigQuery REST endpoint that denies what a project's IAM would deny: job creation
    (no roles/bigquery.jobUser) or the dataset (no roles/bigquery.dataEditor)."""

    def __init__(self, deny: str) -> None:
        self.deny = deny
        fake = self

        class Handler(JsonApiHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                path = urlsplit(self.path).path
                if path == "/token":
                    self.send_json(200, {"access_token": "t", "expires_in": 3600, "token_type": "Bearer"})
                elif "/jobs" in path or "/queries" in path:
                    if fake.deny == "jobs":
                        self.send_json(403, _denied("bigquery.jobs.create"))
                    else:
                        project = path.split("/projects/")[1].split("/")[0]
                        self.send_json(200, _done_job(project))
                elif "/datasets/" in path:
                    self.send_json(403, _denied("bigquery.datasets.get"))
                else:
                    self.send_json(404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})

            do_GET = do_POST = _answer  # noqa: N815

        self.serve(Handler)


def _service_account_key(token_uri: str) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {
        "type": "service_account",
        "project_id": "acme-data",
        "private_key_id": "k",
        "private_key": pem.decode(),
        "client_email": "pipeline@acme-data.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }


def _done_job(project: str) -> dict[str, Any]:
    return {
        "jobReference": {"projectId": project, "jobId": "j1", "location": "US"},
        "status": {"state": "DONE"},
        "jobComplete": True,
        "totalRows": "1",
        "schema": {"fields": [{"name": "f0_", "type": "INTEGER"}]},
        "rows": [{"f": [{"v": "1"}]}],
        "configuration": {"query": {"query": "select 1"}},
    }


def _denied(permission: str) -> dict[str, Any]:
    message = f"Access Denied: User does not have {permission} permission"
    return {"error": {"code": 403, "message": message, "status": "PERMISSION_DENIED",
                      "errors": [{"reason": "accessDenied", "message": message}]}}  # fmt: skip


@pytest.mark.parametrize(
    ("deny", "role"),
    [("jobs", "roles/bigquery.jobUser"), ("dataset", "roles/bigquery.dataEditor")],
    ids=["no-job-user", "no-data-editor"],
)
def test_check_names_the_missing_bigquery_role(
    make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], start_sim: Callable[..., Any],
    tmp_path: Any, deny: str, role: str,
) -> None:  # fmt: skip
    fake = BigQueryDenied(deny)
    try:
        credentials = tmp_path / "service-account.json"
        credentials.write_text(json.dumps(_service_account_key(fake.url + "/token")))
        env = make_env(
            start_sim(),
            WAREHOUSE="bigquery",
            GCP_PROJECT_ID="acme-data",
            BIGQUERY_EMULATOR_HOST=fake.url,
            GOOGLE_APPLICATION_CREDENTIALS=str(credentials),
        )
        result = run_cli(["check"], env)
        assert result.returncode == 2, output_of(result)
        assert role in output_of(result)
    finally:
        fake.stop()
