"""Connectors, one module per vendor contract kind (DESIGN §2), and the factory."""

from __future__ import annotations

from bff.broker.connectors.apikey_jwt import DEFAULT_AUTH_PATH, ApiKeyJwtConnector
from bff.broker.connectors.base import Connector, Issued, Send, VendorRequest, join_url
from bff.broker.connectors.header_exchange import HeaderExchangeConnector
from bff.broker.connectors.oauth2 import DEFAULT_TOKEN_PATH, OAuth2ClientCredentialsConnector
from bff.broker.connectors.pair_token import PairTokenConnector
from bff.broker.connectors.static_bearer import DEFAULT_WHOAMI_PATH, StaticBearerConnector
from bff.clock import Clock
from bff.errors import ConfigurationError
from bff.settings import UpstreamSettings

# What a vendor connection runs on: a connector, alone or with the per-pair step.
AnyConnector = Connector | PairTokenConnector

__all__ = [
    "AnyConnector",
    "ApiKeyJwtConnector",
    "Connector",
    "HeaderExchangeConnector",
    "Issued",
    "OAuth2ClientCredentialsConnector",
    "PairTokenConnector",
    "Send",
    "StaticBearerConnector",
    "VendorRequest",
    "build_connector",
]


def build_connector(upstream: UpstreamSettings, clock: Clock) -> AnyConnector:
    """The connector ``upstream`` describes; :class:`ConfigurationError` names what is missing.

    A connection-wide kind with ``pair_token_url`` is wrapped in the per-pair step.
    """
    connector = _direct_connector(upstream, clock)
    if upstream.pair_token_url is None:
        return connector
    if connector.per_pair:
        raise ConfigurationError(
            "BFF_UPSTREAM_PAIR_TOKEN_URL",
            f"is only for connection-wide kinds; {connector.kind} tokens are already per pair",
        )
    assert upstream.base_url is not None  # checked by _direct_connector
    return PairTokenConnector(
        connector,
        join_url(upstream.base_url, upstream.pair_token_url),
        upstream.pair_token_style,
        realm=upstream.realm if upstream.kind == "oauth2-client-credentials" else None,
    )


def _direct_connector(upstream: UpstreamSettings, clock: Clock) -> Connector:
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
    basic_username = None
    if upstream.auth_scheme == "basic":
        basic_username = _required("BFF_UPSTREAM_API_USERNAME", upstream.api_username)
    return StaticBearerConnector(
        base_url,
        api_key,
        whoami_url=upstream.whoami_url or DEFAULT_WHOAMI_PATH,
        basic_username=basic_username,
    )


def _required(setting: str, value: str | None) -> str:
    if not value:
        raise ConfigurationError(setting, "is required for this connector kind")
    return value
