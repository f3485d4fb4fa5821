"""Connectors, one module per vendor contract kind (DESIGN §2), and the factory."""

from __future__ import annotations

from bff.broker.connectors.apikey_jwt import DEFAULT_AUTH_PATH, ApiKeyJwtConnector
from bff.broker.connectors.base import Connector, Issued, Send, VendorRequest
from bff.broker.connectors.header_exchange import HeaderExchangeConnector
from bff.broker.connectors.oauth2 import DEFAULT_TOKEN_PATH, OAuth2ClientCredentialsConnector
from bff.broker.connectors.static_bearer import DEFAULT_WHOAMI_PATH, StaticBearerConnector
from bff.clock import Clock
from bff.errors import ConfigurationError
from bff.settings import UpstreamSettings

__all__ = [
    "ApiKeyJwtConnector",
    "Connector",
    "HeaderExchangeConnector",
    "Issued",
    "OAuth2ClientCredentialsConnector",
    "Send",
    "StaticBearerConnector",
    "VendorRequest",
    "build_connector",
]


def build_connector(upstream: UpstreamSettings, clock: Clock) -> Connector:
    """The connector ``upstream`` describes; :class:`ConfigurationError` names what is missing."""
    if upstream.base_url is None:
        raise ConfigurationError("BFF_UPSTREAM_BASE_URL", "is required to reach the vendor")
    base_url = upstream.base_url
    api_key = _required("BFF_UPSTREAM_API_KEY", upstream.api_key)
    if upstream.kind == "header-exchange":
        secret = _required("BFF_UPSTREAM_API_SECRET", upstream.api_secret)
        return HeaderExchangeConnector(base_url, api_key, secret)
    if upstream.kind == "apikey-jwt":
        return ApiKeyJwtConnector(
            base_url,
            api_key,
            auth_url=upstream.auth_url or DEFAULT_AUTH_PATH,
            auth_param=upstream.auth_param,
            single_use=upstream.single_use,
        )
    if upstream.kind == "oauth2-client-credentials":
        secret = _required("BFF_UPSTREAM_API_SECRET", upstream.api_secret)
        return OAuth2ClientCredentialsConnector(
            base_url,
            api_key,
            secret,
            clock,
            token_url=upstream.auth_url or DEFAULT_TOKEN_PATH,
            basic_auth=upstream.basic_auth,
            realm=upstream.realm,
        )
    return StaticBearerConnector(
        base_url, api_key, whoami_url=upstream.whoami_url or DEFAULT_WHOAMI_PATH
    )


def _required(setting: str, value: str | None) -> str:
    if not value:
        raise ConfigurationError(setting, "is required for this connector kind")
    return value
