"""Mixpanel credentials: the one place that decides how export requests authenticate.

A service account (``MIXPANEL_SERVICE_ACCOUNT_USERNAME`` and ``…_SECRET``, with the project id) is
preferred; the legacy project secret (``MIXPANEL_API_SECRET``) is sent as the basic-auth username
with an empty password. ``MIXPANEL_API_SECRET_NAME`` reads either secret from Secret Manager
(``secrets.resolve_secrets``) before this is asked.
"""

from __future__ import annotations

import dataclasses

from .config import ConfigError, Settings

SERVICE_ACCOUNT = "service account"
LEGACY_SECRET = "legacy project secret"


@dataclasses.dataclass(frozen=True)
class MixpanelCredentials:
    username: str = dataclasses.field(repr=False)
    password: str = dataclasses.field(repr=False)
    project_id: str
    kind: str  # SERVICE_ACCOUNT or LEGACY_SECRET

    @property
    def auth(self) -> tuple[str, str]:
        """HTTP basic auth for the export API."""
        return (self.username, self.password)


def mixpanel_credentials(settings: Settings) -> MixpanelCredentials:
    """The credentials export requests use; a ``ConfigError`` names what is missing."""
    if not (settings.service_account_username or settings.api_secret or settings.api_secret_name):
        raise ConfigError(
            "no Mixpanel credentials: set MIXPANEL_SERVICE_ACCOUNT_USERNAME and MIXPANEL_SERVICE_ACCOUNT_SECRET "
            "(preferred), or MIXPANEL_API_SECRET / MIXPANEL_API_SECRET_NAME"
        )
    if not settings.project_id:
        raise ConfigError("MIXPANEL_PROJECT_ID is not set: it is sent with every export request")
    if settings.service_account_username and settings.service_account_secret:
        return MixpanelCredentials(
            settings.service_account_username, settings.service_account_secret, settings.project_id, SERVICE_ACCOUNT
        )
    if settings.api_secret:
        return MixpanelCredentials(settings.api_secret, "", settings.project_id, LEGACY_SECRET)
    if settings.service_account_username:
        raise ConfigError(
            "MIXPANEL_SERVICE_ACCOUNT_SECRET is not set: a service account needs both its username and its "
            "secret (or MIXPANEL_API_SECRET_NAME to read the secret from Google Secret Manager)"
        )
    raise ConfigError(
        "no Mixpanel secret: set MIXPANEL_SERVICE_ACCOUNT_SECRET (or MIXPANEL_API_SECRET), or "
        "MIXPANEL_API_SECRET_NAME to read it from Google Secret Manager"
    )
