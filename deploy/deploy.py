"""Deploy mixpanel-alerts to Google Cloud: a Cloud Run job built from source, run on a schedule.

Why a Cloud Run job (and not Cloud Functions, as the system this project grew from had): `run` is a batch that can take
minutes (an export, dlt, a dbt build), needs the dbt project on disk and more memory than a small
function; a job runs it to completion with retries and no HTTP timeout, and Cloud Scheduler starts
it every few minutes. State lives in BigQuery (dlt's pipeline state, the alert ledger), so each
execution starting from a fresh container is exactly what the pipeline expects.

    python deploy/deploy.py --dry-run          # print every gcloud command, run nothing
    python deploy/deploy.py                    # run them

Settings come from the product's environment variables (GCP_PROJECT_ID, BIGQUERY_DATASET, ...) or flags.
Secrets are never passed as values: they are wired from Secret Manager by name. The job needs an events
configuration: EVENTS_CONFIG (passed to it), EVENTS_CONFIG_GCS_PATH, or config/events_config.json in the
--source folder (built into the image); without one, or with an invalid local one, nothing is deployed.
Informational lines go to stderr; stdout is the list of gcloud commands.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from mixpanel_alerts.core.config import ConfigError, Settings
from mixpanel_alerts.core.events_config import parse_events_config

ROLES = (
    # the IAM setup of the original system: load, query and read BigQuery; read secrets
    "roles/bigquery.dataEditor",
    "roles/bigquery.jobUser",
    "roles/bigquery.dataViewer",
    "roles/secretmanager.secretAccessor",
)
PASSED_VARIABLES = (
    "MIXPANEL_PROJECT_ID",
    "MIXPANEL_SERVICE_ACCOUNT_USERNAME",
    "MIXPANEL_REGION",
    "MIXPANEL_PROJECT_TIMEZONE",
    "MIXPANEL_LATE_ARRIVAL_DAYS",
    "MIXPANEL_START_DATE",
    "BIGQUERY_DATASET",
    "BIGQUERY_TABLE",
    "BIGQUERY_LOCATION",
    "EVENTS_CONFIG",
    "EVENTS_CONFIG_GCS_PATH",
    "ALERT_LOOKBACK_MINUTES",
    "ALERT_DIGEST_THRESHOLD",
    "OPS_ALERT_CHANNEL",
    "PIPELINE_STALE_MINUTES",
    "LOG_FORMAT",
)
# the job's EVENTS_CONFIG_PATH: relative to its working directory, the image's /app, i.e. the --source folder
JOB_EVENTS_CONFIG_PATH = Settings().events_config_path
GCS_PATH = re.compile(r"gs://[^/]+/.+")
# --set-env-vars is a comma-separated list; when a value holds a comma, the first of these found in no value
# delimits it instead (`gcloud topic escaping`: --set-env-vars=^@^K=V@K2=V2)
DELIMITERS = (",", "@", "|", "~", ";", "#", "%", "!")
# creating these fails on a redeploy because they exist: only that failure is expected
CREATES_OF_EXISTING = (["iam", "service-accounts", "create"], ["scheduler", "jobs", "create"])
ALREADY_EXISTS = re.compile(r"already[ _]exists", re.IGNORECASE)


def parse_args(argv: Sequence[str] | None, environ: dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", default=environ.get("GCP_PROJECT_ID"), help="GCP project (GCP_PROJECT_ID)")
    parser.add_argument("--region", default=environ.get("GCP_REGION", "us-central1"), help="Cloud Run region")
    parser.add_argument("--job", default="mixpanel-alerts", help="Cloud Run job name")
    parser.add_argument("--service-account", default="mixpanel-alerts", help="runtime service account (short name)")
    parser.add_argument("--schedule", default="*/5 * * * *", help="cron schedule of `mixpanel-alerts run`")
    parser.add_argument("--time-zone", default="Etc/UTC", help="time zone of the schedule")
    parser.add_argument(
        "--mixpanel-secret",
        default=environ.get("MIXPANEL_API_SECRET_NAME", "mixpanel-api-secret"),
        help="Secret Manager secret holding the Mixpanel secret (MIXPANEL_API_SECRET_NAME)",
    )
    parser.add_argument(
        "--slack-secret",
        default="slack-webhook-url",
        help="Secret Manager secret holding SLACK_WEBHOOK_URL (or use --slack-bot-token-secret)",
    )
    parser.add_argument("--slack-bot-token-secret", default=None, help="Secret Manager secret holding SLACK_BOT_TOKEN")
    parser.add_argument("--source", default=".", help="the repository to build from")
    parser.add_argument("--dry-run", action="store_true", help="print every gcloud command; run nothing")
    args = parser.parse_args(argv)
    if not args.project:
        parser.error("set GCP_PROJECT_ID or pass --project")
    return args


def events_config_source(args: argparse.Namespace, environ: dict[str, str]) -> str:
    """Which events configuration the job will use, in the job's precedence (load_events_config's).

    A local one (EVENTS_CONFIG, or the file built into the image) is validated here; raises ConfigError when
    the job would have none or an invalid one, since the deployed job would fail at its first run.
    """
    inline = environ.get("EVENTS_CONFIG", "").strip()
    gcs_path = environ.get("EVENTS_CONFIG_GCS_PATH", "").strip()
    if inline:
        parse_events_config(inline, "EVENTS_CONFIG")
        ignored = f"; EVENTS_CONFIG_GCS_PATH={gcs_path} is ignored while it is set" if gcs_path else ""
        return f"EVENTS_CONFIG (passed to the job; checked here){ignored}"
    if gcs_path:
        if not GCS_PATH.fullmatch(gcs_path):
            raise ConfigError(f"EVENTS_CONFIG_GCS_PATH={gcs_path!r} must look like gs://bucket/path/events_config.json")
        return f"{gcs_path} (read by the job at each run; not checked here)"
    path = Path(args.source) / JOB_EVENTS_CONFIG_PATH
    if not path.is_file():
        raise ConfigError(
            f"no events configuration for the job: set EVENTS_CONFIG_GCS_PATH (gs://bucket/path), "
            f"EVENTS_CONFIG (the JSON), or create {path} (--source's {JOB_EVENTS_CONFIG_PATH}, built into the image)"
        )
    parse_events_config(path.read_text(encoding="utf-8"), str(path))
    return f"{path} (built into the image; checked here)"


def env_vars_flag(env_vars: dict[str, str]) -> str:
    """`--set-env-vars=K=V,...`, with a delimiter other than the comma when a value holds one (JSON does)."""
    items = [f"{key}={value}" for key, value in sorted(env_vars.items())]
    delimiter = next((d for d in DELIMITERS if not any(d in item for item in items)), None)
    if delimiter is None:
        raise ConfigError(f"no delimiter for --set-env-vars: each of {' '.join(DELIMITERS)} is in some value")
    prefix = "" if delimiter == "," else f"^{delimiter}^"
    return f"--set-env-vars={prefix}{delimiter.join(items)}"


def one_line_json(text: str) -> str:
    """EVENTS_CONFIG compacted, so that each printed command stays one line (the job parses it the same)."""
    return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)


def commands(args: argparse.Namespace, environ: dict[str, str]) -> list[list[str]]:
    project, region = args.project, args.region
    account = f"{args.service_account}@{project}.iam.gserviceaccount.com"
    # the job strips its variables too: a blank one is unset
    env_vars = {name: environ[name].strip() for name in PASSED_VARIABLES if environ.get(name, "").strip()}
    if "EVENTS_CONFIG" in env_vars:
        env_vars["EVENTS_CONFIG"] = one_line_json(env_vars["EVENTS_CONFIG"])
    env_vars.update(
        {"WAREHOUSE": "bigquery", "GCP_PROJECT_ID": project, "MIXPANEL_API_SECRET_NAME": args.mixpanel_secret}
    )
    slack = (
        f"SLACK_BOT_TOKEN={args.slack_bot_token_secret}:latest"
        if args.slack_bot_token_secret
        else f"SLACK_WEBHOOK_URL={args.slack_secret}:latest"
    )
    steps: list[list[str]] = [
        ["gcloud", "services", "enable", "run.googleapis.com", "cloudscheduler.googleapis.com",
         "cloudbuild.googleapis.com", "bigquery.googleapis.com", "secretmanager.googleapis.com",
         f"--project={project}"],
        ["gcloud", "iam", "service-accounts", "create", args.service_account,
         "--display-name=mixpanel-alerts pipeline", f"--project={project}"],
    ]  # fmt: skip
    for role in ROLES:
        steps.append(
            ["gcloud", "projects", "add-iam-policy-binding", project,
             f"--member=serviceAccount:{account}", f"--role={role}", "--condition=None"]
        )  # fmt: skip
    if env_vars.get("EVENTS_CONFIG_GCS_PATH"):
        bucket = env_vars["EVENTS_CONFIG_GCS_PATH"].removeprefix("gs://").split("/", 1)[0]
        steps.append(
            ["gcloud", "storage", "buckets", "add-iam-policy-binding", f"gs://{bucket}",
             f"--member=serviceAccount:{account}", "--role=roles/storage.objectViewer"]
        )  # fmt: skip
    steps += [
        ["gcloud", "run", "jobs", "deploy", args.job, f"--source={args.source}", f"--region={region}",
         f"--project={project}", f"--service-account={account}", "--command=mixpanel-alerts", "--args=run",
         "--tasks=1", "--parallelism=1", "--max-retries=1", "--task-timeout=15m", "--memory=2Gi", "--cpu=2",
         env_vars_flag(env_vars),
         f"--set-secrets={slack}"],
        # the scheduler's identity may start the job
        ["gcloud", "run", "jobs", "add-iam-policy-binding", args.job, f"--region={region}", f"--project={project}",
         f"--member=serviceAccount:{account}", "--role=roles/run.invoker"],
        ["gcloud", "scheduler", "jobs", "create", "http", f"{args.job}-run", f"--location={region}",
         f"--project={project}", f"--schedule={args.schedule}", f"--time-zone={args.time_zone}",
         "--http-method=POST",
         f"--uri=https://run.googleapis.com/v2/projects/{project}/locations/{region}/jobs/{args.job}:run",
         f"--oauth-service-account-email={account}"],
    ]  # fmt: skip
    return steps


def update_of(create: list[str]) -> list[str] | None:
    """What to run when `create` failed because its resource exists: None when the existing one will do.

    A scheduler job is updated with the create's flags (schedule, time zone, uri, method, account), or a
    redeploy would keep the old schedule; an existing service account needs nothing.
    """
    if create[1:5] == ["scheduler", "jobs", "create", "http"]:
        return [*create[:3], "update", *create[4:]]
    return None


def run(command: list[str]) -> list[str] | None:
    """Run one step; returns the command that failed, or None."""
    if command[1:4] not in CREATES_OF_EXISTING:
        # not captured: gcloud's progress and prompts (deploy --source) stay live
        return None if subprocess.run(command, check=False).returncode == 0 else command
    # captured (and still shown) to tell "already exists" from any other failure
    result = subprocess.run(command, check=False, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(result.stderr)
    sys.stderr.flush()
    if result.returncode == 0:
        return None
    if not ALREADY_EXISTS.search(result.stderr):
        return command
    update = update_of(command)
    if update is None:
        return None
    print(shlex.join(update), flush=True)
    return None if subprocess.run(update, check=False).returncode == 0 else update


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    environ = dict(os.environ if environ is None else environ)
    args = parse_args(argv, environ)
    try:
        source = events_config_source(args, environ)
        steps = commands(args, environ)
    except ConfigError as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 2
    print(f"deploy: events configuration: {source}", file=sys.stderr)
    for command in steps:
        print(shlex.join(command), flush=True)
        if args.dry_run:
            update = update_of(command)
            if update is not None:
                note = f"deploy: if {command[5]} already exists, it is updated with the same flags instead"
                print(f"{note}: {shlex.join(update)}", file=sys.stderr)
        else:
            failed = run(command)
            if failed is not None:
                print(f"deploy: failed: {shlex.join(failed)}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
