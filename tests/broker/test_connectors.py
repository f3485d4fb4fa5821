"""Each connector kind against the demo vendor's contract, through the broker."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from bff.broker.broker import SHARED
from bff.broker.connectors import (
    ApiKeyJwtConnector,
    HeaderExchangeConnector,
    OAuth2ClientCredentialsConnector,
    StaticBearerConnector,
    build_connector,
)
from bff.broker.scope import TokenScope
from bff.clock import ManualClock
from bff.demo import tokens
from bff.demo.vendor import VendorConfig
from bff.errors import ConfigurationError, UpstreamRejected
from bff.settings import UpstreamSettings
from tests.broker.conftest import VENDOR, MakeBroker, apikey_jwt

PAIR = TokenScope("default", "acme", "emea")


def claims(vendor: VendorConfig, token: str) -> dict[str, object]:
    found = tokens.verify(token, vendor.signing_key, vendor.clock.now().timestamp())
    assert found is not None
    return found


@pytest.mark.anyio
async def test_header_exchange_sends_the_four_headers(
    make_broker: MakeBroker, vendor: VendorConfig
) -> None:
    token = await make_broker().get(PAIR)
    assert claims(vendor, token.value)["tenant_id"] == "acme"
    assert claims(vendor, token.value)["sub_tenant_id"] == "emea"
    assert vendor.pair_calls == {("acme", "emea"): 1}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("scope", "message"),
    [
        (TokenScope("default", "", "emea"), "Tenant ID is required"),
        (TokenScope("default", "acme", ""), "Subtenant ID is required"),
    ],
)
async def test_header_exchange_400_bodies(
    make_broker: MakeBroker, scope: TokenScope, message: str
) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        await make_broker().get(scope)
    assert caught.value.status == 400
    assert caught.value.vendor_message == message


@pytest.mark.anyio
async def test_header_exchange_wrong_secret_is_403_without_the_secret_in_the_error(
    make_broker: MakeBroker, vendor: VendorConfig
) -> None:
    connector = HeaderExchangeConnector(VENDOR, vendor.api_key, "wrong-secret-value")
    with pytest.raises(UpstreamRejected) as caught:
        await make_broker(connector).get(PAIR)
    assert (caught.value.status, caught.value.vendor_message) == (403, "Forbidden")
    assert "wrong-secret-value" not in str(caught.value)
    assert "wrong-secret-value" not in repr(connector)


@pytest.mark.anyio
async def test_apikey_jwt_token_is_shared_by_every_pair(
    make_broker: MakeBroker, vendor: VendorConfig
) -> None:
    broker = make_broker(apikey_jwt(vendor))
    first = await broker.get(PAIR)
    second = await broker.get(TokenScope("default", "other", "pair"))
    assert first == second
    assert vendor.calls["authenticate"] == 1
    assert [scope for scope, _ in broker.cached()] == [TokenScope("default", SHARED, SHARED)]


@pytest.mark.anyio
async def test_apikey_jwt_with_auth_param(make_broker: MakeBroker, vendor: VendorConfig) -> None:
    vendor.auth_param = "tenant-group-7"
    with pytest.raises(UpstreamRejected) as caught:
        await make_broker(apikey_jwt(vendor)).get(PAIR)
    assert caught.value.status == 401
    connector = ApiKeyJwtConnector(VENDOR, vendor.api_key, auth_param="tenant-group-7")
    assert (await make_broker(connector).get(PAIR)).value


@pytest.mark.anyio
async def test_apikey_jwt_single_use_fetches_every_time_and_caches_nothing(
    make_broker: MakeBroker, vendor: VendorConfig
) -> None:
    broker = make_broker(apikey_jwt(vendor, single_use=True))
    values = {(await broker.get(PAIR)).value for _ in range(3)}
    assert len(values) == 3
    assert vendor.calls["authenticate"] == 3
    assert broker.cached() == []


@pytest.mark.anyio
async def test_apikey_jwt_single_use_still_remembers_a_refusal(
    make_broker: MakeBroker, vendor: VendorConfig
) -> None:
    connector = ApiKeyJwtConnector(VENDOR, "revoked-key", single_use=True)
    broker = make_broker(connector)
    for _ in range(3):
        with pytest.raises(UpstreamRejected):
            await broker.get(PAIR)
    assert vendor.calls["authenticate"] == 1


def oauth2(
    vendor: VendorConfig, clock: ManualClock, **options: object
) -> OAuth2ClientCredentialsConnector:
    return OAuth2ClientCredentialsConnector(
        VENDOR,
        vendor.api_key,
        vendor.api_secret,
        clock,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.anyio
@pytest.mark.parametrize("basic_auth", [False, True])
async def test_oauth2_grant_by_form_or_basic_with_realm(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock, basic_auth: bool
) -> None:
    vendor.realm = "reseller-42"
    vendor.token_lifetime = 600
    with pytest.raises(UpstreamRejected):
        await make_broker(oauth2(vendor, clock, basic_auth=basic_auth)).get(PAIR)
    broker = make_broker(oauth2(vendor, clock, basic_auth=basic_auth, realm="reseller-42"))
    token = await broker.get(PAIR)
    # expires_in (600 s) minus the skew (at most a tenth of the life)
    assert (token.expires_at - token.obtained_at).total_seconds() == 570


@pytest.mark.anyio
async def test_oauth2_refreshes_with_refresh_token_then_falls_back_to_a_new_grant(
    vendor: VendorConfig, clock: ManualClock, client: httpx2.AsyncClient
) -> None:
    from bff.broker.upstream import Gateway

    send = Gateway(client, clock, timeout=5).send
    connector = oauth2(vendor, clock)
    await connector.fetch(PAIR, send)
    assert len(vendor.refresh_tokens) == 1
    await connector.fetch(PAIR, send)  # used (and rotated) the refresh token
    assert len(vendor.refresh_tokens) == 1
    vendor.refresh_tokens.clear()  # revoked upstream: refused, then a new grant
    await connector.fetch(PAIR, send)
    assert vendor.calls["oauth"] == 4
    assert vendor.statuses[400] == 1
    clock.advance(vendor.refresh_token_lifetime + 1)  # expired: straight to a new grant
    await connector.fetch(PAIR, send)
    assert vendor.calls["oauth"] == 5


@pytest.mark.anyio
async def test_oauth2_wrong_client_secret(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock
) -> None:
    connector = OAuth2ClientCredentialsConnector(VENDOR, vendor.api_key, "nope-nope", clock)
    with pytest.raises(UpstreamRejected) as caught:
        await make_broker(connector).get(PAIR)
    assert caught.value.status == 401
    assert "nope-nope" not in repr(connector)


@pytest.mark.anyio
async def test_static_bearer_validates_the_key_once(
    make_broker: MakeBroker, vendor: VendorConfig
) -> None:
    broker = make_broker(StaticBearerConnector(VENDOR, vendor.api_key))
    for _ in range(3):
        assert (await broker.get(PAIR)).value == vendor.api_key
    assert vendor.calls["user"] == 1
    revoked = make_broker(StaticBearerConnector(VENDOR, "revoked-key"))
    with pytest.raises(UpstreamRejected) as caught:
        await revoked.get(PAIR)
    assert caught.value.status == 401


def test_build_connector_from_settings(clock: ManualClock) -> None:
    def upstream(**overrides: Any) -> UpstreamSettings:
        values: dict[str, Any] = {
            "base_url": "https://vendor.example/api",
            "api_key": "k" * 10,
            "api_secret": "s" * 10,
        }
        values.update(overrides)
        return UpstreamSettings(**values)

    made = build_connector(upstream(), clock)
    assert made.endpoint == "https://vendor.example/api/api/v1/partner/dashboard/auth/token"
    made = build_connector(upstream(kind="apikey-jwt", auth_url="https://auth.example/t"), clock)
    assert made.endpoint == "https://auth.example/t"
    made = build_connector(upstream(kind="oauth2-client-credentials"), clock)
    assert made.endpoint == "https://vendor.example/api/oauth/token"
    made = build_connector(upstream(kind="static-bearer"), clock)
    assert made.endpoint == "https://vendor.example/api/user"
    with pytest.raises(ConfigurationError, match="BFF_UPSTREAM_API_SECRET"):
        build_connector(upstream(api_secret=None), clock)
    with pytest.raises(ConfigurationError, match="BFF_UPSTREAM_API_KEY"):
        build_connector(upstream(kind="static-bearer", api_key=None), clock)
    with pytest.raises(ConfigurationError, match="BFF_UPSTREAM_BASE_URL"):
        build_connector(upstream(base_url=None), clock)
