"""Deploy mixpanel-alerts to Google Cloud: a Cloud Run job built from source, run on a schedule.

Why a Cloud Run job (and not Cloud Functions, as the seed had): `run` is a batch that can take
minutes (an export, dlt, a dbt build), needs the dbt project on disk and more memory than a small
function; a job runs it to completion with retries and no HTTP timeout, and Cloud Scheduler starts
it every few minutes. State lives in BigQuery (dlt's pipeline state, the alert ledger), so each
execution starting from a fresh container is exactly what the pipeline expects.

    python deploy/deploy.py --dry-run          # print every gcloud command, run nothing
    python deploy/deploy.py                    # run them

Settings come from the contract's variables (GCP_PROJECT_ID, BIGQUERY_DATASET, ...) or flags.
Secrets are never passed as values: they are wired from Secret Manager by name.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence

ROLES = (
    # the seed's IAM setup: load, query and read BigQuery; read secrets
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
    "EVENTS_CONFIG_GCS_PATH",
    "ALERT_LOOKBACK_MINUTES",
)


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


def commands(args: argparse.Namespace, environ: dict[str, str]) -> list[list[str]]:
    project, region = args.project, args.region
    account = f"{args.service_account}@{project}.iam.gserviceaccount.com"
    env_vars = {name: environ[name] for name in PASSED_VARIABLES if environ.get(name)}
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
         "--set-env-vars=" + ",".join(f"{key}={value}" for key, value in sorted(env_vars.items())),
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


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    environ = dict(os.environ if environ is None else environ)
    args = parse_args(argv, environ)
    for command in commands(args, environ):
        print(shlex.join(command), flush=True)
        if not args.dry_run:
            result = subprocess.run(command, check=False)
            already = result.returncode != 0 and command[1:3] in (["iam", "service-accounts"], ["scheduler", "jobs"])
            if result.returncode != 0 and not already:
                print(f"deploy: failed: {shlex.join(command)}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
