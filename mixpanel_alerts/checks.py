"""``mixpanel-alerts check``: reach each configured service and say what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from .alerts.health import ops_channel
from .core.config import ConfigError, Settings
from .core.credentials import mixpanel_credentials
from .core.duckdb_file import file_problem
from .core.errors import first_line
from .core.events_config import EventsConfig
from .core.scratch import scratch_dir
from .detection import learning_lines
from .pipelines.mixpanel.client import (
    ExportClient,
    ExportError,
    NotAnExportAnswerError,
    export_base_url,
    rate_limiter_for,
)
from .pipelines.mixpanel.parser import answer_check
from .pipelines.mixpanel.window import ExportWindow

# how each check's line is said: (status: ok, config, failed or note; the check's name; what it found)
Report = Callable[[str, str, str], None]


def run_checks(settings: Settings, events_config: EventsConfig, report: Report, *, send_test: bool = False) -> int:
    """Run every check, each said with ``report``; return the exit code (0 all good, 2
    configuration, 1 unreachable). ``send_test``: also post a test message to each configured
    Slack channel."""
    results = [
        ("mixpanel", check_mixpanel(settings, events_config)),
        ("warehouse", check_warehouse(settings)),
        ("slack", check_slack(settings)),
    ]
    if send_test:
        results += [("slack test", result) for result in send_test_messages(settings, events_config)]
    code = 0
    for name, (status, message) in results:
        report(status, name, message)
        if status == "config":
            code = max(code, 2)
        elif status == "failed" and code == 0:
            code = 1
    if dict(results)["warehouse"][0] == "ok":
        for line in baseline_learning(settings):
            report("note", "baseline", line)
    return code


def baseline_learning(settings: Settings) -> list[str]:
    """The baseline rules still learning, as of the last detect; nothing when the warehouse has no
    detection yet or cannot be read now (the warehouse check says why)."""
    try:
        return learning_lines(settings)
    except Exception:  # a note only: whatever stops the read, the warehouse check has said it
        return []


def check_mixpanel(settings: Settings, events_config: EventsConfig) -> tuple[str, str]:
    try:
        credentials = mixpanel_credentials(settings)
        base_url = export_base_url(settings.region, settings.export_url)
    except (ConfigError, ExportError) as exc:
        return "config", str(exc)
    today = datetime.now(UTC).astimezone(ZoneInfo(settings.project_timezone)).date()
    client = ExportClient(
        base_url=base_url,
        project_id=credentials.project_id,
        auth=credentials.auth,
        limiter=rate_limiter_for(base_url, credentials.project_id, 3, 60),
        max_attempts=2,
        backoff_factor=1.0,
        request_timeout=60,
    )
    names = events_config.enabled_names[:1]
    params = {**ExportWindow(today, today).params(names), "limit": "1"}
    with scratch_dir("check") as spool_dir:
        try:
            download = client.download(params, spool_dir, accept=answer_check(names, settings.project_timezone))
        except NotAnExportAnswerError as exc:  # something else answers at the export host
            return "failed", str(exc)
        except ExportError as exc:
            status = "config" if exc.status is not None and 400 <= exc.status < 500 else "failed"
            return status, str(exc)
        except Exception as exc:  # a check reports any failure to reach the service as its result
            return "failed", f"could not reach {base_url}: {first_line(exc)}"
    return "ok", (
        f"{base_url} accepted the {credentials.kind} for project {credentials.project_id} "
        f"({download.bytes_received} bytes for today's first event)"
    )


def check_warehouse(settings: Settings) -> tuple[str, str]:
    if settings.warehouse == "bigquery":
        return check_bigquery(settings)
    import duckdb

    path = settings.duckdb_path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(path)) as con:
            tables = con.execute(
                "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                [settings.dataset, settings.table],
            ).fetchone()
    except (duckdb.Error, OSError) as exc:
        problem = file_problem(path, exc)
        return "failed", str(problem) if problem is not None else f"DUCKDB_PATH={path}: {first_line(exc)}"
    exists = "exists" if tables and tables[0] else "will be created by the first collect"
    return "ok", f"DuckDB {path}: raw table {settings.dataset}.{settings.table} {exists}"


def bot_client(settings: Settings) -> Any:
    """A Slack Web API client with the bot token, at SLACK_API_URL."""
    from slack_sdk import WebClient

    base_url = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    return WebClient(token=settings.slack_bot_token, base_url=base_url, timeout=30)


def slack_error(exc: Any) -> str:
    """The ``error`` of a ``SlackApiError`` (``channel_not_found``…), or empty."""
    return str(exc.response.get("error", "")) if exc.response is not None else ""


def check_slack(settings: Settings) -> tuple[str, str]:
    if settings.slack_bot_token:
        from slack_sdk.errors import SlackApiError

        try:
            identity = bot_client(settings).auth_test()
        except SlackApiError as exc:
            error = slack_error(exc)
            return "config", f"SLACK_BOT_TOKEN was refused by Slack ({error}): create a bot token with chat:write"
        except Exception as exc:  # a check reports any failure to reach the service as its result
            return "failed", f"could not reach SLACK_API_URL={settings.slack_api_url}: {type(exc).__name__}"
        who = f"bot {identity.get('user')} in {identity.get('team')}"
        scopes = {
            scope.strip() for scope in str(identity.headers.get("x-oauth-scopes", "")).split(",") if scope.strip()
        }
        missing = [f"{scope} ({what})" for scope, what in OPTIONAL_SCOPES.items() if scopes and scope not in scopes]
        lacking = f"; without {', '.join(missing)}" if missing else ""
        return "ok", f"bot token accepted ({who}); posts to each rule's channel{lacking}"
    if settings.slack_webhook_url:
        if not settings.slack_webhook_url.startswith(("https://", "http://")):
            return "config", "SLACK_WEBHOOK_URL must be an https URL such as https://hooks.slack.com/services/..."
        return "ok", "webhook configured (not tested: a webhook can only be checked by posting to it)"
    return "ok", "not configured: alerts are shown in the terminal (set SLACK_WEBHOOK_URL or SLACK_BOT_TOKEN)"


TEST_MESSAGE = "mixpanel-alerts test message: alerts for {what} will arrive here."
# scopes a bot works without, and what is missing then
OPTIONAL_SCOPES = {
    "files:write": "alerts carry the sparkline, not a chart",
    "reactions:read": "a :no_bell: reaction does not mute",
    "channels:history": "a post whose answer was lost cannot be looked for",
}


def send_test_messages(settings: Settings, events_config: EventsConfig) -> list[tuple[str, str]]:
    """``check --send-test``: one test message to each channel alerts go to (with a bot token, each
    enabled rule's ``alert_channel`` and the pipeline's, OPS_ALERT_CHANNEL; with a webhook, its own
    channel), each result on a line."""
    if settings.slack_bot_token:
        from slack_sdk.errors import SlackApiError

        client = bot_client(settings)
        channels: dict[str, list[str]] = {}
        for rule in events_config.enabled:
            channels.setdefault(rule.alert_channel, []).append(rule.name)
        channels.setdefault(ops_channel(settings, events_config), []).append("the pipeline itself")
        results = []
        for channel, names in channels.items():
            what = ", ".join(names)
            try:
                client.chat_postMessage(channel=channel, text=TEST_MESSAGE.format(what=what))
            except SlackApiError as exc:
                error = slack_error(exc)
                missing = error in ("not_in_channel", "channel_not_found")
                fix = "invite the bot to it" if missing else "see Slack's error"
                results.append(("config", f"{channel} ({what}): Slack refused the test message ({error}): {fix}"))
            except Exception as exc:  # a check reports any failure to reach the service as its result
                results.append(("failed", f"{channel}: could not reach SLACK_API_URL: {type(exc).__name__}"))
            else:
                results.append(("ok", f"{channel}: test message posted (alerts for {what})"))
        return results or [("ok", "no enabled rule: no channel to post a test message to")]
    if settings.slack_webhook_url:
        import requests

        try:
            answer = requests.post(
                settings.slack_webhook_url, json={"text": TEST_MESSAGE.format(what="every rule")}, timeout=30
            )
        except requests.RequestException as exc:
            return [("failed", f"could not reach SLACK_WEBHOOK_URL: {type(exc).__name__}")]
        if answer.status_code >= 400:
            return [("config", f"SLACK_WEBHOOK_URL refused the test message (HTTP {answer.status_code}: "
                               f"{answer.text[:80]}): create the webhook again")]  # fmt: skip
        return [("ok", "test message posted to the webhook's channel")]
    return [("config", "--send-test: no Slack configured (set SLACK_WEBHOOK_URL or SLACK_BOT_TOKEN)")]


def check_bigquery(settings: Settings) -> tuple[str, str]:
    """Reach BigQuery with Application Default Credentials (or GOOGLE_APPLICATION_CREDENTIALS);
    name the IAM role that is missing when access is denied."""
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import bigquery

    where = f"{settings.gcp_project_id}.{settings.dataset}"
    try:
        credentials = None
        if settings.gcp_service_account_info:
            from google.oauth2 import service_account

            credentials = service_account.Credentials.from_service_account_info(settings.gcp_service_account_info)
        client = bigquery.Client(project=settings.gcp_project_id, location=settings.location, credentials=credentials)
    except DefaultCredentialsError:
        return "config", (
            "no Google credentials: run `gcloud auth application-default login`, or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file"
        )
    # a check answers within about a minute, even when Google is unreachable
    retry = bigquery.DEFAULT_RETRY.with_deadline(30)
    try:
        client.query("select 1", retry=retry, job_retry=None, timeout=30).result(timeout=30)
    except gexc.Forbidden:
        return "config", f"cannot run queries in {settings.gcp_project_id}: grant roles/bigquery.jobUser"
    except Exception as exc:  # a check reports any failure to reach the service as its result
        return "failed", f"could not reach BigQuery for {settings.gcp_project_id}: {type(exc).__name__}: {exc}"
    try:
        client.get_dataset(settings.dataset, retry=retry, timeout=30)
    except gexc.NotFound:
        return "ok", f"BigQuery {where}: dataset will be created by the first collect (needs roles/bigquery.dataEditor)"
    except gexc.Forbidden:
        return "config", f"no access to dataset {where}: grant roles/bigquery.dataEditor and roles/bigquery.dataViewer"
    return "ok", f"BigQuery {where} reachable (location {settings.location})"
