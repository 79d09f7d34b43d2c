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
