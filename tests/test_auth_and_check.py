"""Authentication paths (service account, legacy secret) for collect and for ``check``."""

from __future__ import annotations

import pytest

from tests.conftest import API_SECRET, EVENTS_TABLE, output_of, query, recent_traffic, table_exists

SERVICE_ACCOUNT = {}  # make_env's default: username, secret and project id
LEGACY_SECRET = {
    "MIXPANEL_SERVICE_ACCOUNT_USERNAME": None,
    "MIXPANEL_SERVICE_ACCOUNT_SECRET": None,
    "MIXPANEL_API_SECRET": API_SECRET,
}


@pytest.mark.parametrize(
    ("credentials", "auth_kind"),
    [
        pytest.param(SERVICE_ACCOUNT, "service_account", id="service-account"),
        pytest.param(LEGACY_SECRET, "secret", id="legacy-secret"),
    ],
)
def test_collect_authenticates_and_loads(sim, make_env, run_cli, db_path, credentials, auth_kind):
    """The simulator accepts the legacy secret only as basic-auth username with an empty password."""
    events = recent_traffic(30)
    sim.add_events(events)

    result = run_cli(["collect"], make_env(sim, **credentials))

    assert result.returncode == 0, output_of(result)
    assert [(r.auth, r.status) for r in sim.requests] == [(auth_kind, 200)]
    assert sim.requests[0].params["project_id"] == "12345"
    assert query(db_path, f"select count(*) from {EVENTS_TABLE}") == [(len(events),)]


@pytest.mark.parametrize(
    ("credentials", "named_variable"),
    [
        pytest.param(
            {"MIXPANEL_SERVICE_ACCOUNT_SECRET": "wrong-secret-Hq3"},
            "MIXPANEL_SERVICE_ACCOUNT_SECRET",
            id="service-account",
        ),
        pytest.param({**LEGACY_SECRET, "MIXPANEL_API_SECRET": "wrong-secret-Hq3"}, "MIXPANEL_API_SECRET", id="legacy"),
    ],
)
def test_collect_with_wrong_secret_exits_1_with_401_explanation(
    sim, make_env, run_cli, db_path, credentials, named_variable
):
    sim.add_events(recent_traffic(5))

    result = run_cli(["collect"], make_env(sim, **credentials))

    output = output_of(result)
    assert result.returncode == 1, output
    assert [(r.auth, r.status) for r in sim.requests] == [("invalid", 401)]
    assert "401" in output
    assert named_variable in output
    assert "MIXPANEL_REGION" in output
    assert "wrong-secret-Hq3" not in output
    assert not table_exists(db_path, EVENTS_TABLE)


def test_check_with_service_account_exits_0(sim, make_env, run_cli):
    result = run_cli(["check"], make_env(sim))

    output = output_of(result)
    assert result.returncode == 0, output
    assert [(r.auth, r.status) for r in sim.requests] == [("service_account", 200)]
    assert "service account" in output
    assert "2027-03-03" not in output


def test_check_with_legacy_secret_warns_about_retirement(sim, make_env, run_cli):
    result = run_cli(["check"], make_env(sim, **LEGACY_SECRET))

    output = output_of(result)
    assert result.returncode == 0, output
    assert [(r.auth, r.status) for r in sim.requests] == [("secret", 200)]
    warning = next(line for line in output.splitlines() if "2027-03-03" in line)
    assert "MIXPANEL_API_SECRET" in warning
    assert "MIXPANEL_SERVICE_ACCOUNT_USERNAME" in warning


def test_check_with_wrong_secret_fails_and_names_the_fix(sim, make_env, run_cli):
    result = run_cli(["check"], make_env(sim, MIXPANEL_SERVICE_ACCOUNT_SECRET="wrong-secret-Hq3"))

    output = output_of(result)
    assert result.returncode != 0, output
    assert [r.status for r in sim.requests] == [401]
    assert "MIXPANEL_SERVICE_ACCOUNT_SECRET" in output
    assert "wrong-secret-Hq3" not in output


def test_check_with_wrong_project_names_project_id(sim, make_env, run_cli):
    result = run_cli(["check"], make_env(sim, MIXPANEL_PROJECT_ID="99999"))

    output = output_of(result)
    assert result.returncode != 0, output
    assert [r.status for r in sim.requests] == [403]
    assert "MIXPANEL_PROJECT_ID" in output


@pytest.mark.parametrize("fault", ["html-200", "json-error-200"])
def test_check_fails_when_something_else_answers_at_the_export_host(sim, make_env, run_cli, fault):
    """A proxy's page or an error object with status 200 is no export: check says what came back."""
    sim.inject(*[fault] * 5)
    result = run_cli(["check"], make_env(sim))

    output = output_of(result)
    assert result.returncode == 1, output
    line = next(line for line in output.splitlines() if "mixpanel:" in line)
    assert line.lstrip().startswith("failed") and "not JSON lines of events" in line, line


def test_check_send_test_posts_to_each_rules_channel_with_a_bot_token(sim, make_env, run_cli, slack_fake, tmp_path):
    """One test message per channel, naming its rules; a channel the bot cannot post to is a
    configuration error (exit 2) that names it; without --send-test nothing is posted."""
    from tests.conftest import rule, write_events_config
    from tests.slack_fake import BOT_TOKEN

    write_events_config(
        tmp_path,
        {
            "events": [
                rule("errors_a", alert_channel="#alerts-errors"),
                rule("errors_b", alert_channel="#alerts-errors"),
                rule("checkout", alert_channel="#alerts-checkout"),
                rule("quiet", alert_channel="#alerts-nowhere", enabled=False),
            ]
        },
    )
    env = make_env(sim, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack_fake.api_url)
    assert run_cli(["check"], env).returncode == 0 and slack_fake.messages == [], "no --send-test, no post"

    result = run_cli(["check", "--send-test"], env)
    output = output_of(result)
    assert result.returncode == 0, output
    posted = sorted((message["channel"], message["text"]) for message in slack_fake.messages)
    assert [channel for channel, _ in posted] == ["C0CHECKOUT", "C0ERRORS"]
    assert "errors_a, errors_b" in dict(posted)["C0ERRORS"] and "checkout" in dict(posted)["C0CHECKOUT"]
    # the pipeline's own alerts: OPS_ALERT_CHANNEL, by default the first enabled rule's channel
    assert "the pipeline itself" in dict(posted)["C0ERRORS"]
    assert "#alerts-errors: test message posted" in output

    write_events_config(tmp_path, {"events": [rule("lost", alert_channel="#not-a-channel")]})
    refused = run_cli(["check", "--send-test"], env)
    assert refused.returncode == 2, output_of(refused)
    expected = "#not-a-channel (lost, the pipeline itself): Slack refused the test message (channel_not_found)"
    assert f"{expected}: invite the bot" in output_of(refused)


def test_check_send_test_posts_once_to_a_webhook_and_says_when_slack_refuses(sim, make_env, run_cli, slack_fake):
    env = make_env(sim, SLACK_WEBHOOK_URL=slack_fake.webhook_url)
    result = run_cli(["check", "--send-test"], env)
    assert result.returncode == 0, output_of(result)
    assert [message["via"] for message in slack_fake.messages] == ["webhook"]
    assert "test message posted to the webhook's channel" in output_of(result)

    slack_fake.inject("no_service")
    refused = run_cli(["check", "--send-test"], env)
    assert refused.returncode == 2, output_of(refused)
    assert "SLACK_WEBHOOK_URL refused the test message" in output_of(refused)
    assert slack_fake.webhook_url not in output_of(refused), "the webhook URL is a secret"

    quiet = run_cli(["check", "--send-test"], make_env(sim))
    assert quiet.returncode == 2 and "no Slack configured" in output_of(quiet)


def test_check_names_the_bot_scopes_a_feature_needs(sim, make_env, run_cli, slack_fake):
    from tests.slack_fake import BOT_TOKEN

    env = make_env(sim, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack_fake.api_url)
    assert "without" not in output_of(run_cli(["check"], env)).split("slack:", 1)[1].splitlines()[0]
    slack_fake.scopes -= {"files:write", "reactions:read"}
    line = output_of(run_cli(["check"], env)).split("slack:", 1)[1].splitlines()[0]
    assert "without files:write (alerts carry the sparkline, not a chart)" in line
    assert "reactions:read (a :no_bell: reaction does not mute)" in line
