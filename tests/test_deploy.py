"""deploy/deploy.py: the gcloud commands it would run (dry run), what it refuses, and how it runs them (a fake
gcloud); the Dockerfile it builds from."""

from __future__ import annotations

import fnmatch
import json
import posixpath
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mixpanel_alerts.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "deploy.py"
GCS_PATH = "gs://acme-config/events_config.json"


def rule(name: str, **overrides: object) -> dict[str, object]:
    return {
        "name": name,
        "enabled": True,
        "alert_threshold": 5,
        "alert_channel": "#alerts",
        "time_window_minutes": 1,
        **overrides,
    }


def deploy(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The script from the repository's root, so the default `--source=.` is this repository."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def dry_run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return deploy("--dry-run", *args, **env)


def set_env_vars(deploy_line: str) -> dict[str, str]:
    """The job's environment from `gcloud run jobs deploy ... --set-env-vars=...`, parsed the way gcloud does
    (`gcloud topic escaping`: `^DELIM^` first changes the delimiter from a comma)."""
    flag = next(arg for arg in shlex.split(deploy_line) if arg.startswith("--set-env-vars="))
    value = flag.removeprefix("--set-env-vars=")
    delimiter = ","
    if value.startswith("^") and value.index("^", 1) > 1:
        end = value.index("^", 1)
        delimiter, value = value[1:end], value[end + 1 :]
    return dict(item.split("=", 1) for item in value.split(delimiter))


def test_dry_run_prints_the_whole_deployment() -> None:
    result = dry_run(
        GCP_PROJECT_ID="acme-data",
        MIXPANEL_PROJECT_ID="12345",
        MIXPANEL_SERVICE_ACCOUNT_USERNAME="bot.mp-service-account",
        EVENTS_CONFIG_GCS_PATH=GCS_PATH,
        MIXPANEL_SERVICE_ACCOUNT_SECRET="must-not-appear",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(line.startswith("gcloud ") for line in lines)
    text = result.stdout
    account = "mixpanel-alerts@acme-data.iam.gserviceaccount.com"
    for role in ("bigquery.dataEditor", "bigquery.jobUser", "bigquery.dataViewer", "secretmanager.secretAccessor"):
        assert f"--member=serviceAccount:{account} --role=roles/{role}" in text
    assert "gs://acme-config --member=serviceAccount:" in text and "roles/storage.objectViewer" in text
    deploy = next(line for line in lines if line.startswith("gcloud run jobs deploy"))
    assert "--source=." in deploy and "--command=mixpanel-alerts" in deploy and "--args=run" in deploy
    assert "WAREHOUSE=bigquery" in deploy and "MIXPANEL_API_SECRET_NAME=mixpanel-api-secret" in deploy
    assert set_env_vars(deploy)["EVENTS_CONFIG_GCS_PATH"] == GCS_PATH
    assert "--set-secrets=SLACK_WEBHOOK_URL=slack-webhook-url:latest" in deploy
    schedule = next(line for line in lines if line.startswith("gcloud scheduler jobs create http"))
    assert "'--schedule=*/5 * * * *'" in schedule
    assert "jobs/mixpanel-alerts:run" in schedule and f"--oauth-service-account-email={account}" in schedule
    assert "must-not-appear" not in text, "secrets are wired by name, never passed as values"
    # the configuration in the bucket cannot be read from here: the deployer is told which one the job uses
    assert f"events configuration: {GCS_PATH} (read by the job at each run; not checked here)" in result.stderr


def test_bot_token_and_schedule_flags() -> None:
    # no events variable: the job reads config/events_config.json of the image, i.e. of this repository
    result = dry_run("--slack-bot-token-secret", "slack-bot", "--schedule", "*/2 * * * *", GCP_PROJECT_ID="p")
    assert result.returncode == 0, result.stderr
    assert "--set-secrets=SLACK_BOT_TOKEN=slack-bot:latest" in result.stdout
    assert "'--schedule=*/2 * * * *'" in result.stdout
    assert "events configuration: config/events_config.json" in result.stderr
    # a redeploy updates the existing scheduler job with the same flags; the dry run says so
    note = next(line for line in result.stderr.splitlines() if "gcloud scheduler jobs update http" in line)
    assert "already exists" in note and "'--schedule=*/2 * * * *'" in note


@pytest.mark.parametrize("args", [(), ("--region", "europe-west1")], ids=["default-region", "region"])
def test_missing_project_is_a_usage_error(args: tuple[str, ...]) -> None:
    result = dry_run(*args)
    assert result.returncode == 2
    assert "GCP_PROJECT_ID" in result.stderr


# --- the image ---------------------------------------------------------------------------------------------------
# There is no Docker engine on this machine, so `docker build` is not run: these read the Dockerfile and the files
# that filter the build context instead.


def dockerfile_copies() -> tuple[str, dict[str, str]]:
    """The image's working directory, and each folder or file COPYed into it -> where it lands (absolute)."""
    workdir, copies = "/", {}
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words[:1] == ["WORKDIR"]:
            workdir = posixpath.join(workdir, words[1])
        elif words[:1] == ["COPY"] and not any(word.startswith("--") for word in words[1:]):
            *sources, destination = words[1:]
            target = posixpath.normpath(posixpath.join(workdir, destination))
            for source in sources:
                name = source.rstrip("/")
                # `COPY a b ./` puts each in ./; `COPY a ./a` names the destination
                copies[name] = target if len(sources) == 1 and not destination.endswith("/") else f"{target}/{name}"
    return workdir, copies


def test_the_image_holds_everything_the_job_reads() -> None:
    workdir, copies = dockerfile_copies()
    # the job runs in WORKDIR; its default events configuration is a path relative to it
    default_config = Settings().events_config_path
    assert not default_config.is_absolute() and (ROOT / default_config).is_file()
    needed = ["mixpanel_alerts", "pipelines", "alerts", "dbt_project", default_config.parts[0]]
    for folder in needed:
        assert copies.get(folder) == f"{workdir}/{folder}", f"the Dockerfile does not COPY {folder}/ to {workdir}"


@pytest.mark.parametrize("ignore_file", [".dockerignore", ".gitignore"])
def test_the_build_context_keeps_the_events_configuration(ignore_file: str) -> None:
    # .dockerignore filters the build; `gcloud run jobs deploy --source` uploads the source filtered by
    # .gcloudignore, which gcloud generates from .gitignore when there is none
    if ignore_file == ".gitignore":
        assert not (ROOT / ".gcloudignore").exists(), "check .gcloudignore instead of .gitignore"
    patterns = [
        line.strip().rstrip("/")
        for line in (ROOT / ignore_file).read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]
    config = Settings().events_config_path.as_posix()
    paths = ["mixpanel_alerts", "pipelines", "alerts", "dbt_project", "pyproject.toml", config.split("/")[0], config]
    for path in paths:
        for pattern in patterns:
            for candidate in (path, path.split("/")[-1]):
                assert not fnmatch.fnmatch(candidate, pattern), f"{ignore_file}: {pattern!r} excludes {path}"


# --- the events configuration ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "deploy"])
def test_no_events_configuration_is_refused(dry: bool, tmp_path: Path) -> None:
    log, env = fake_gcloud(tmp_path)
    source = tmp_path / "checkout"
    source.mkdir()
    args = ("--source", str(source), *(("--dry-run",) if dry else ()))
    result = deploy(*args, GCP_PROJECT_ID="p", **env)
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    for named in ("EVENTS_CONFIG_GCS_PATH", "EVENTS_CONFIG", f"{source}/config/events_config.json"):
        assert named in message
    assert result.stdout == "" and not log.exists(), "nothing is deployed"


INVALID = {"events": [rule("signup"), rule("checkout", alert_threshold=0)]}


@pytest.mark.parametrize("where", ["EVENTS_CONFIG", "file"])
def test_an_invalid_local_events_configuration_is_refused(where: str, tmp_path: Path) -> None:
    env = {"GCP_PROJECT_ID": "p"}
    if where == "EVENTS_CONFIG":
        env["EVENTS_CONFIG"] = json.dumps(INVALID)
    else:
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "events_config.json").write_text(json.dumps(INVALID), encoding="utf-8")
    result = dry_run("--source", str(tmp_path), **env)
    assert result.returncode == 2
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "'checkout'" in message and "'alert_threshold'" in message
    assert ("EVENTS_CONFIG" if where == "EVENTS_CONFIG" else "config/events_config.json") in message
    assert result.stdout == ""


def test_a_bad_gcs_path_is_refused() -> None:
    result = dry_run(GCP_PROJECT_ID="p", EVENTS_CONFIG_GCS_PATH="acme-config/events_config.json")
    assert result.returncode == 2
    assert "EVENTS_CONFIG_GCS_PATH" in result.stderr and "gs://bucket/" in result.stderr


def test_events_config_is_passed_to_the_job_with_a_safe_delimiter(tmp_path: Path) -> None:
    # commas (JSON) and '@' (the first alternate delimiter tried) in the value; indented over several lines
    document = {"events": [rule("signup", description="ops@acme, page them"), rule("checkout")]}
    result = dry_run(
        "--source", str(tmp_path), GCP_PROJECT_ID="p", EVENTS_CONFIG=json.dumps(document, indent=2), BIGQUERY_TABLE="t"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(line.startswith("gcloud ") for line in lines), "one line per command"
    deploy_line = next(line for line in lines if line.startswith("gcloud run jobs deploy"))
    assert "--set-env-vars=^" in deploy_line
    env = set_env_vars(deploy_line)
    assert json.loads(env["EVENTS_CONFIG"]) == document
    assert env["WAREHOUSE"] == "bigquery" and env["BIGQUERY_TABLE"] == "t" and env["GCP_PROJECT_ID"] == "p"
    assert "events configuration: EVENTS_CONFIG" in result.stderr


def test_a_valid_file_under_source_is_used(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "events_config.json").write_text(json.dumps({"events": [rule("a")]}), encoding="utf-8")
    result = dry_run("--source", str(tmp_path), GCP_PROJECT_ID="p")
    assert result.returncode == 0, result.stderr
    assert f"events configuration: {tmp_path}/config/events_config.json" in result.stderr
    assert "EVENTS_CONFIG=" not in result.stdout


# --- running the commands: a fake gcloud -------------------------------------------------------------------------

FAKE_GCLOUD = """
# A stand-in for gcloud: appends its arguments (one JSON line) to $FAKE_GCLOUD_LOG. For the commands named in
# $FAKE_GCLOUD_EXISTS (first three words, comma-separated) it fails the way gcloud does when the resource exists;
# for the one in $FAKE_GCLOUD_FAIL, with another error.
import json
import os
import sys

args = sys.argv[1:]
with open(os.environ["FAKE_GCLOUD_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(args) + "\\n")
command = " ".join(args[:3])
where = "(gcloud." + ".".join(args[:4]) + ")"
if command in os.environ.get("FAKE_GCLOUD_EXISTS", "").split(","):
    if args[0] == "iam":
        sys.exit(f"ERROR: {where} Resource in projects [p] is the subject of a conflict: Service account {args[4]} "
                 "already exists within project projects/p.")
    sys.exit(f"ERROR: {where} ALREADY_EXISTS: Job projects/p/locations/us-central1/jobs/{args[4]} already exists.")
if command == os.environ.get("FAKE_GCLOUD_FAIL"):
    sys.exit(f"ERROR: {where} PERMISSION_DENIED: The caller does not have permission")
"""


def fake_gcloud(tmp_path: Path, exists: str = "", fail: str = "") -> tuple[Path, dict[str, str]]:
    """A `gcloud` first on PATH; returns its log and the environment that selects it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "gcloud"
    script.write_text(f"#!{sys.executable}\n{FAKE_GCLOUD}", encoding="utf-8")
    script.chmod(0o755)
    log = tmp_path / "gcloud.log"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "FAKE_GCLOUD_LOG": str(log),
        "FAKE_GCLOUD_EXISTS": exists,
        "FAKE_GCLOUD_FAIL": fail,
    }
    return log, env


def ran(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


DEPLOY_ENV = {"GCP_PROJECT_ID": "p", "EVENTS_CONFIG_GCS_PATH": GCS_PATH}


@pytest.mark.parametrize("redeploy", [False, True], ids=["first-deploy", "redeploy"])
def test_a_redeploy_applies_the_new_schedule(redeploy: bool, tmp_path: Path) -> None:
    exists = "iam service-accounts create,scheduler jobs create" if redeploy else ""
    log, env = fake_gcloud(tmp_path, exists=exists)
    result = deploy("--schedule", "*/10 * * * *", **DEPLOY_ENV, **env)
    assert result.returncode == 0, result.stderr
    commands = ran(log)
    create = next(command for command in commands if command[:4] == ["scheduler", "jobs", "create", "http"])
    updates = [command for command in commands if command[:4] == ["scheduler", "jobs", "update", "http"]]
    # every planned command ran, in order, the service account's "already exists" notwithstanding
    planned = dry_run("--schedule", "*/10 * * * *", **DEPLOY_ENV).stdout.splitlines()
    assert [command for command in commands if command not in updates] == [shlex.split(line)[1:] for line in planned]
    if not redeploy:
        assert updates == []
        return
    assert "ALREADY_EXISTS" in result.stderr, "gcloud's own message is still shown"
    # the existing job gets the flags the create had, the new schedule among them; it is the last step
    assert updates == [commands[-1]] and updates[0][4:] == create[4:]
    assert "--schedule=*/10 * * * *" in updates[0] and "--time-zone=Etc/UTC" in updates[0]
    assert any(arg.startswith("--uri=https://run.googleapis.com/") for arg in updates[0])
    assert "--http-method=POST" in updates[0]
    assert "--oauth-service-account-email=mixpanel-alerts@p.iam.gserviceaccount.com" in updates[0]
    assert result.stdout.splitlines()[-1].startswith("gcloud scheduler jobs update http mixpanel-alerts-run ")


@pytest.mark.parametrize(
    "fail", ["iam service-accounts create", "scheduler jobs create", "run jobs deploy"], ids=lambda c: c.split()[0]
)
def test_any_other_failure_stops_the_deploy(fail: str, tmp_path: Path) -> None:
    log, env = fake_gcloud(tmp_path, fail=fail)
    result = deploy(**DEPLOY_ENV, **env)
    assert result.returncode == 1
    commands = ran(log)
    assert " ".join(commands[-1][:3]) == fail, "nothing runs after the failed command"
    assert "PERMISSION_DENIED" in result.stderr
    assert f"deploy: failed: gcloud {fail}" in result.stderr
