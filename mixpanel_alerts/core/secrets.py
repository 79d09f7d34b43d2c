"""MIXPANEL_API_SECRET_NAME: read the Mixpanel secret from Google Secret Manager.

The secret holds the service-account secret when MIXPANEL_SERVICE_ACCOUNT_USERNAME is set, else
the legacy project secret. A short name is looked up in GCP_PROJECT_ID; a full resource name
(``projects/P/secrets/S[/versions/V]``) is used as is; the latest version is read by default.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .config import ConfigError, Settings


def secret_resource(name: str, project_id: str | None) -> str:
    if name.startswith("projects/"):
        resource = name
    elif project_id:
        resource = f"projects/{project_id}/secrets/{name}"
    else:
        raise ConfigError(
            f"MIXPANEL_API_SECRET_NAME={name!r} is a short name: set GCP_PROJECT_ID, or use the full name "
            "projects/PROJECT/secrets/NAME"
        )
    return resource if "/versions/" in resource else resource + "/versions/latest"


def read_secret(resource: str, endpoint: str | None = None) -> str:
    from google.api_core import exceptions as gexc
    from google.auth.credentials import AnonymousCredentials
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud.secretmanager_v1 import SecretManagerServiceClient
    from google.cloud.secretmanager_v1.services.secret_manager_service.transports.rest import (
        SecretManagerServiceRestTransport,
    )

    try:
        if endpoint:  # a local Secret Manager (tests): plain REST, no Google credentials
            parts = urlsplit(endpoint)
            transport = SecretManagerServiceRestTransport(
                host=parts.netloc, url_scheme=parts.scheme or "http", credentials=AnonymousCredentials()
            )
            client = SecretManagerServiceClient(transport=transport)
        else:
            client = SecretManagerServiceClient(transport="rest")
        response = client.access_secret_version(name=resource)
    except DefaultCredentialsError:
        raise ConfigError(
            "MIXPANEL_API_SECRET_NAME needs Google credentials: run `gcloud auth application-default login` "
            "or set GOOGLE_APPLICATION_CREDENTIALS"
        ) from None
    except gexc.NotFound:
        raise ConfigError(
            f"MIXPANEL_API_SECRET_NAME: {resource} does not exist; create it with "
            "`gcloud secrets create NAME --data-file=-`"
        ) from None
    except gexc.Forbidden:  # PermissionDenied is one
        raise ConfigError(
            f"MIXPANEL_API_SECRET_NAME: no permission to read {resource}; grant "
            "roles/secretmanager.secretAccessor to the runtime's service account"
        ) from None
    value = response.payload.data.decode("utf-8").strip()
    if not value:
        raise ConfigError(f"MIXPANEL_API_SECRET_NAME: {resource} is empty")
    return value


def resolve_secrets(settings: Settings) -> Settings:
    """Settings with the secret read from Secret Manager, when MIXPANEL_API_SECRET_NAME asks for it."""
    if not settings.api_secret_name:
        return settings
    if settings.service_account_secret or settings.api_secret:
        return settings  # a secret given directly wins
    value = read_secret(
        secret_resource(settings.api_secret_name, settings.gcp_project_id), settings.secret_manager_endpoint
    )
    if settings.service_account_username:
        return settings.model_copy(update={"service_account_secret": value})
    return settings.model_copy(update={"api_secret": value})
