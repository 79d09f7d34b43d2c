"""deploy/deploy.py in dry-run: the gcloud commands it would run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "deploy.py"


def dry_run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_dry_run_prints_the_whole_deployment() -> None:
    result = dry_run(
        GCP_PROJECT_ID="acme-data",
        MIXPANEL_PROJECT_ID="12345",
        MIXPANEL_SERVICE_ACCOUNT_USERNAME="bot.mp-service-account",
        EVENTS_CONFIG_GCS_PATH="gs://acme-config/events_config.json",
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
    assert "--set-secrets=SLACK_WEBHOOK_URL=slack-webhook-url:latest" in deploy
    schedule = next(line for line in lines if line.startswith("gcloud scheduler jobs create http"))
    assert "'--schedule=*/5 * * * *'" in schedule
    assert "jobs/mixpanel-alerts:run" in schedule and f"--oauth-service-account-email={account}" in schedule
    assert "must-not-appear" not in text, "secrets are wired by name, never passed as values"


def test_bot_token_and_schedule_flags() -> None:
    result = dry_run("--slack-bot-token-secret", "slack-bot", "--schedule", "*/2 * * * *", GCP_PROJECT_ID="p")
    assert result.returncode == 0, result.stderr
    assert "--set-secrets=SLACK_BOT_TOKEN=slack-bot:latest" in result.stdout
    assert "'--schedule=*/2 * * * *'" in result.stdout


@pytest.mark.parametrize("args", [(), ("--region", "europe-west1")], ids=["default-region", "region"])
def test_missing_project_is_a_usage_error(args: tuple[str, ...]) -> None:
    result = dry_run(*args)
    assert result.returncode == 2
    assert "GCP_PROJECT_ID" in result.stderr
