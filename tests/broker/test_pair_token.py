"""Every connector kind against the real demo vendor server, with and without the
per-pair step: the connection-wide credential buys one dashboard token per pair,
and only those ever leave the broker."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import anyio
import httpx2
import pytest
from prometheus_client import CollectorRegistry

from bff.broker.broker import SHARED
from bff.broker.connectors import (
    AnyConnector,
    ApiKeyJwtConnector,
    PairTokenConnector,
    VendorRequest,
    build_connector,
)
from bff.broker.scope import TokenScope, VendorToken
from bff.clock import ManualClock
from bff.demo import tokens
from bff.demo.faults import Fault
from bff.demo.server import serve_in_thread
from bff.demo.vendor import PAIR_TOKEN_PATH, PairTokenField, VendorConfig, create_vendor_app
from bff.errors import (
    ConfigurationError,
    UpstreamBadResponse,
    UpstreamRateLimited,
    UpstreamRejected,
)
from bff.settings import UpstreamSettings
from tests.broker.conftest import MakeBroker, sample

A = TokenScope("default", "acme", "emea")
B = TokenScope("default", "acme", "apac")
# (kind, auth_scheme) for every connection-wide way of authenticating.
WIDE = [
    ("apikey-jwt", "bearer"),
    ("oauth2-client-credentials", "bearer"),
    ("static-bearer", "bearer"),
    ("static-bearer", "basic"),
]
# The vendor endpoint each connection-wide kind gets its credential from.
CREDENTIAL_CALLS = {
    "apikey-jwt": "authenticate",
    "oauth2-client-credentials": "oauth",
    "static-bearer": "user",
}


@pytest.fixture
def base_url(vendor: VendorConfig) -> Iterator[str]:
    with serve_in_thread(create_vendor_app(vendor)) as url:
        yield url


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[httpx2.AsyncClient]:
    # Overrides the in-process client: these brokers talk to the real server.
    async with httpx2.AsyncClient() as client:
        yield client


def connector(
    vendor: VendorConfig,
    base_url: str,
    clock: ManualClock,
    kind: str,
    auth_scheme: str = "bearer",
    **upstream: Any,
) -> AnyConnector:
    settings = UpstreamSettings(
        kind=kind,  # type: ignore[arg-type]
        base_url=base_url,
        api_key=vendor.api_key,
        api_secret=vendor.api_secret,
        auth_scheme=auth_scheme,  # type: ignore[arg-type]
        api_username=vendor.api_username if auth_scheme == "basic" else None,
        **upstream,
    )
    return build_connector(settings, clock)


def pair_step(
    vendor: VendorConfig,
    base_url: str,
    clock: ManualClock,
    kind: str,
    auth_scheme: str,
    **more: Any,
) -> AnyConnector:
    return connector(
        vendor, base_url, clock, kind, auth_scheme, pair_token_url=PAIR_TOKEN_PATH, **more
    )


async def dashboard_heading(
    http: httpx2.AsyncClient, base_url: str, token: VendorToken, **headers: str
) -> str:
    response = await http.get(
        f"{base_url}/dashboard/insights.json",
        headers={"authorization": token.authorization, **headers},
    )
    assert response.status_code == 200, response.text
    heading: str = response.json()["heading"]
    return heading


def is_connection_wide(vendor: VendorConfig, token: VendorToken) -> bool:
    return token.value == vendor.api_key or vendor.is_credential(token.value)


# -- without the per-pair step ----------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(("kind", "auth_scheme"), [("header-exchange", "bearer"), *WIDE])
async def test_every_kind_without_the_per_pair_step(
    make_broker: MakeBroker,
    vendor: VendorConfig,
    base_url: str,
    clock: ManualClock,
    client: httpx2.AsyncClient,
    kind: str,
    auth_scheme: str,
) -> None:
    broker = make_broker(connector(vendor, base_url, clock, kind, auth_scheme))
    a, b = await broker.get(A), await broker.get(B)
    if kind == "header-exchange":
        assert a != b
        assert await dashboard_heading(client, base_url, a) == (
            "Insights for tenant acme / sub-tenant emea"
        )
        return
    # One credential for the whole connection: the proxy alone may use it, pinning the pair.
    assert a == b
    assert is_connection_wide(vendor, a)
    assert await dashboard_heading(client, base_url, a) == (
        "Insights for all tenants (partner-wide access)"
    )
    pinned = {"x-tenant-id": "acme", "x-sub-tenant-id": "emea"}
    assert await dashboard_heading(client, base_url, a, **pinned) == (
        "Insights for tenant acme / sub-tenant emea"
    )
    if auth_scheme == "basic":
        basic = base64.b64encode(f"{vendor.api_username}:{vendor.api_key}".encode()).decode()
        assert a.authorization == f"Basic {basic}"
    else:
        assert a.authorization == f"Bearer {a.value}"


# -- with the per-pair step -------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("style", ["headers", "json"])
@pytest.mark.parametrize(("kind", "auth_scheme"), WIDE)
async def test_every_connection_wide_kind_buys_one_token_per_pair(
    make_broker: MakeBroker,
    vendor: VendorConfig,
    base_url: str,
    clock: ManualClock,
    client: httpx2.AsyncClient,
    kind: str,
    auth_scheme: str,
    style: str,
) -> None:
    vendor.pair_token_style = style  # type: ignore[assignment]
    broker = make_broker(
        pair_step(vendor, base_url, clock, kind, auth_scheme, pair_token_style=style)
    )
    a, b = await broker.get(A), await broker.get(B)
    assert a != b
    for token, scope in [(a, A), (b, B)]:
        assert not is_connection_wide(vendor, token)
        assert token.authorization == f"Bearer {token.value}"
        claims = tokens.verify(token.value, vendor.signing_key, clock.now().timestamp())
        assert claims is not None
        assert (claims["tenant_id"], claims["sub_tenant_id"]) == scope[1:]
    assert await broker.get(A) == a  # cached per pair
    assert vendor.calls[CREDENTIAL_CALLS[kind]] == 1  # one credential for every pair
    assert vendor.pair_calls == {("acme", "emea"): 1, ("acme", "apac"): 1}
    assert await dashboard_heading(client, base_url, a) == (
        "Insights for tenant acme / sub-tenant emea"
    )
    # A pair's token cannot be pointed at another pair.
    wrong = await client.get(
        f"{base_url}/dashboard/insights.json",
        headers={
            "authorization": a.authorization,
            "x-tenant-id": "acme",
            "x-sub-tenant-id": "apac",
        },
    )
    assert wrong.status_code == 401
    shared = TokenScope("default", SHARED, SHARED)
    assert [scope for scope, _ in broker.cached()] == [shared, B, A]


@pytest.mark.anyio
async def test_the_oauth2_realm_goes_with_the_per_pair_step(
    make_broker: MakeBroker, vendor: VendorConfig, base_url: str, clock: ManualClock
) -> None:
    vendor.realm = "reseller-42"
    made = pair_step(
        vendor, base_url, clock, "oauth2-client-credentials", "bearer", realm="reseller-42"
    )
    assert (await make_broker(made).get(A)).value


@pytest.mark.anyio
@pytest.mark.parametrize("field", ["data.token", "token", "access_token"])
async def test_the_pair_token_is_read_from_each_answer_shape(
    make_broker: MakeBroker,
    vendor: VendorConfig,
    base_url: str,
    clock: ManualClock,
    field: PairTokenField,
) -> None:
    vendor.pair_token_field = field
    vendor.token_lifetime = 600
    token = await make_broker(pair_step(vendor, base_url, clock, "apikey-jwt", "bearer")).get(A)
    assert not is_connection_wide(vendor, token)
    assert (token.expires_at - token.obtained_at).total_seconds() == 570  # exp minus skew


@pytest.mark.anyio
async def test_get_never_returns_the_connection_wide_credential(
    make_broker: MakeBroker, vendor: VendorConfig, base_url: str, clock: ManualClock
) -> None:
    broker = make_broker(pair_step(vendor, base_url, clock, "static-bearer", "bearer"))
    # The shared key holds the credential; asking for it by that key is refused.
    with pytest.raises(UpstreamRejected, match="needs a tenant and a sub-tenant"):
        await broker.get(TokenScope("default", SHARED, SHARED))
    token = await broker.get(A)
    assert token.value != vendor.api_key
    assert vendor.api_key not in token.authorization


@pytest.mark.anyio
async def test_a_vendor_answering_with_the_credential_itself_is_a_bad_response(
    clock: ManualClock,
) -> None:
    from datetime import timedelta

    credential = VendorToken("the-connection-key", clock.now() + timedelta(hours=1), clock.now())
    inner = ApiKeyJwtConnector("https://vendor.example", "k")
    step = PairTokenConnector(inner, "https://vendor.example/pair")
    sent: list[VendorRequest] = []

    async def send(request: VendorRequest) -> dict[str, Any]:
        sent.append(request)
        return {"data": {"token": "the-connection-key"}}

    with pytest.raises(UpstreamBadResponse, match="connection's own credential"):
        await step.exchange(A, credential, send)
    [request] = sent
    assert request.headers["authorization"] == "Bearer the-connection-key"
    assert (request.headers["x-tenant-id"], request.headers["x-sub-tenant-id"]) == ("acme", "emea")
    assert request.json is None


@pytest.mark.anyio
async def test_concurrent_cold_gets_make_one_credential_call_and_one_call_per_pair(
    make_broker: MakeBroker, vendor: VendorConfig, base_url: str, clock: ManualClock
) -> None:
    vendor.latency = 0.05
    broker = make_broker(pair_step(vendor, base_url, clock, "oauth2-client-credentials", "bearer"))
    pairs = [TokenScope("default", "acme", f"s{i}") for i in range(10)]
    got: dict[TokenScope, set[str]] = {scope: set() for scope in pairs}

    async def get(scope: TokenScope) -> None:
        got[scope].add((await broker.get(scope)).value)

    async with anyio.create_task_group() as group:
        for _ in range(10):
            for scope in pairs:
                group.start_soon(get, scope)
    assert all(len(values) == 1 for values in got.values())
    assert vendor.calls["oauth"] == 1
    assert vendor.calls["pair_token"] == 10
    assert set(vendor.pair_calls.values()) == {1}


@pytest.mark.anyio
async def test_pair_tokens_and_the_credential_are_refreshed_in_the_background(
    make_broker: MakeBroker, vendor: VendorConfig, base_url: str, clock: ManualClock
) -> None:
    vendor.token_lifetime = 1000
    broker = make_broker(pair_step(vendor, base_url, clock, "apikey-jwt", "bearer"))
    first = await broker.get(A)
    clock.advance(0.86 * 970)
    assert await broker.refresh_due() == 2  # A's token and the credential
    renewed = await broker.get(A)
    assert renewed != first and renewed.obtained_at == clock.now()
    assert vendor.pair_calls == {("acme", "emea"): 2}
    assert vendor.calls["authenticate"] == 2


@pytest.mark.anyio
async def test_a_revoked_credential_is_dropped_and_replaced_once(
    make_broker: MakeBroker, vendor: VendorConfig, base_url: str, clock: ManualClock
) -> None:
    broker = make_broker(pair_step(vendor, base_url, clock, "apikey-jwt", "bearer"))
    await broker.get(A)
    vendor.revoke_credentials()  # upstream, before its expiry
    assert (await broker.get(B)).value
    assert vendor.calls["authenticate"] == 2
    assert vendor.calls["pair_token"] == 3  # A; B refused (401); B with the new credential
    assert vendor.statuses[401] == 1


@pytest.mark.anyio
async def test_a_per_pair_401_is_retried_exactly_once_then_remembered(
    make_broker: MakeBroker, vendor: VendorConfig, base_url: str, clock: ManualClock
) -> None:
    vendor.endpoint_faults["pair_token"] = Fault("unauthorized")
    broker = make_broker(pair_step(vendor, base_url, clock, "apikey-jwt", "bearer"))
    with pytest.raises(UpstreamRejected) as caught:
        await broker.get(A)
    assert caught.value.status == 401
    assert vendor.calls["authenticate"] == 2
    assert vendor.calls["pair_token"] == 2
    with pytest.raises(UpstreamRejected):
        await broker.get(A)  # remembered: no call
    assert vendor.calls["pair_token"] == 2


@pytest.mark.anyio
async def test_a_single_use_credential_is_fetched_for_every_pair_token_and_never_kept(
    make_broker: MakeBroker, vendor: VendorConfig, base_url: str, clock: ManualClock
) -> None:
    broker = make_broker(
        pair_step(vendor, base_url, clock, "apikey-jwt", "bearer", single_use=True)
    )
    a = await broker.get(A)
    await broker.get(B)
    assert await broker.get(A) == a  # the pair's token is still cached
    assert vendor.calls["authenticate"] == 2
    assert [scope for scope, _ in broker.cached()] == [B, A]


@pytest.mark.anyio
async def test_purging_a_pair_keeps_the_credential(
    make_broker: MakeBroker, vendor: VendorConfig, base_url: str, clock: ManualClock
) -> None:
    broker = make_broker(pair_step(vendor, base_url, clock, "static-bearer", "basic"))
    a = await broker.get(A)
    await broker.purge(connection_id="default", tenant_id="acme", sub_tenant_id="emea")
    assert await broker.get(A) != a
    assert vendor.calls["user"] == 1
    assert vendor.pair_calls == {("acme", "emea"): 2}


def test_the_per_pair_step_is_only_for_connection_wide_kinds(
    vendor: VendorConfig, clock: ManualClock
) -> None:
    with pytest.raises(ConfigurationError, match="BFF_UPSTREAM_PAIR_TOKEN_URL"):
        pair_step(vendor, "https://vendor.example", clock, "header-exchange", "bearer")
    made = pair_step(vendor, "https://vendor.example/v2", clock, "apikey-jwt", "bearer")
    assert isinstance(made, PairTokenConnector)
    assert made.endpoint == f"https://vendor.example/v2{PAIR_TOKEN_PATH}"
    assert made.per_pair and made.kind == "apikey-jwt"
    with pytest.raises(ConfigurationError, match="BFF_UPSTREAM_API_USERNAME"):
        build_connector(
            UpstreamSettings(
                kind="static-bearer",
                base_url="https://vendor.example",
                api_key="k" * 10,
                auth_scheme="basic",
            ),
            clock,
        )


@pytest.mark.anyio
async def test_a_429_for_the_credential_cools_the_whole_connection(
    make_broker: MakeBroker,
    vendor: VendorConfig,
    base_url: str,
    clock: ManualClock,
    registry: CollectorRegistry,
) -> None:
    vendor.endpoint_faults["authenticate"] = Fault.rate_limit("30")
    broker = make_broker(pair_step(vendor, base_url, clock, "apikey-jwt", "bearer"))
    with pytest.raises(UpstreamRateLimited):
        await broker.get(A)
    with pytest.raises(UpstreamRateLimited) as caught:
        await broker.get(B)
    assert caught.value.retry_after == 30
    assert vendor.calls == {"authenticate": 1}
    assert sample(registry, "bff_upstream_cooldowns_total", extent="connection") == 1
    assert sample(registry, "bff_upstream_circuit_state") == 0
    del vendor.endpoint_faults["authenticate"]
    clock.advance(30)
    assert (await broker.get(B)).value


@pytest.mark.anyio
async def test_no_credential_or_key_reaches_a_log_line_or_an_error(
    make_broker: MakeBroker,
    vendor: VendorConfig,
    base_url: str,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    issued: list[str] = []
    original = vendor._issue

    def spy(fault: Fault | None, extra: Mapping[str, str], *, credential: bool) -> str | None:
        token = original(fault, extra, credential=credential)
        if credential and token:
            issued.append(token)
        return token

    vendor._issue = spy  # type: ignore[method-assign]
    caplog.set_level(logging.DEBUG)
    broker = make_broker(pair_step(vendor, base_url, clock, "oauth2-client-credentials", "bearer"))
    await broker.get(A)
    vendor.revoke_credentials()
    await broker.get(B)  # a 401, logged, then a fresh credential
    vendor.endpoint_faults["pair_token"] = Fault("unauthorized")
    errors: list[str] = []
    with pytest.raises(UpstreamRejected) as caught:
        await broker.get(TokenScope("default", "globex", "x"))
    errors += [str(caught.value), repr(caught.value)]
    assert len(issued) == 3
    assert "fresh one" in caplog.text
    for secret in [*issued, vendor.api_key, vendor.api_secret]:
        assert secret not in caplog.text
        assert all(secret not in text for text in errors)
