"""The demo vendor speaks the reference contract (seed 004) and misbehaves on request."""

from __future__ import annotations

import base64
from typing import Any

import anyio
import httpx2
import pytest

from bff.clock import ManualClock
from bff.demo import tokens
from bff.demo.faults import Fault
from bff.demo.vendor import (
    APIKEY_JWT_PATH,
    HEADER_EXCHANGE_PATH,
    OAUTH2_TOKEN_PATH,
    PAIR_TOKEN_PATH,
    WHOAMI_PATH,
    VendorConfig,
)
from tests.demo.conftest import credentials


@pytest.mark.anyio
async def test_success_envelope_and_claims(
    client: httpx2.AsyncClient, vendor: VendorConfig, clock: ManualClock
) -> None:
    response = await client.get(HEADER_EXCHANGE_PATH, headers=credentials(vendor))
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("code", "message", "type")} == {
        "code": "RESPONSE_SUCCESS",
        "message": "Request served successfully.",
        "type": "object",
    }
    claims = tokens.verify(body["data"]["token"], vendor.signing_key, clock.now().timestamp())
    assert claims is not None
    assert claims["tenant_id"] == "acme" and claims["sub_tenant_id"] == "emea"
    assert claims["exp"] - claims["iat"] == 24 * 60 * 60
    assert vendor.calls["token"] == 1
    assert vendor.pair_calls == {("acme", "emea"): 1}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("change", "status", "body"),
    [
        ({"x-tenant-id": ""}, 400, {"success": False, "message": "Tenant ID is required"}),
        ({"x-sub-tenant-id": ""}, 400, {"success": False, "message": "Subtenant ID is required"}),
        ({"x-api-secret": "nope"}, 403, {"success": False, "message": "Forbidden"}),
        ({"x-api-key": ""}, 403, {"success": False, "message": "Forbidden"}),
    ],
)
async def test_error_bodies_are_the_contracts(
    client: httpx2.AsyncClient,
    vendor: VendorConfig,
    change: dict[str, str],
    status: int,
    body: dict[str, object],
) -> None:
    headers = {**credentials(vendor), **change}
    response = await client.get(HEADER_EXCHANGE_PATH, headers=headers)
    assert (response.status_code, response.json()) == (status, body)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fault", "status", "message"),
    [
        (Fault.rate_limit(), 429, "Rate limit exceeded. Try again in 60 seconds."),
        (Fault("server_error"), 500, "Internal server error"),
        (Fault("forbidden"), 403, "Forbidden"),
        (Fault("unauthorized"), 401, "Unauthorized"),
    ],
)
async def test_http_faults_use_the_contract_bodies(
    client: httpx2.AsyncClient, vendor: VendorConfig, fault: Fault, status: int, message: str
) -> None:
    vendor.faults.append(fault)
    response = await client.get(HEADER_EXCHANGE_PATH, headers=credentials(vendor))
    assert (response.status_code, response.json()) == (
        status,
        {"success": False, "message": message},
    )
    assert "retry-after" not in response.headers
    # One-shot faults are used up.
    ok = await client.get(HEADER_EXCHANGE_PATH, headers=credentials(vendor))
    assert ok.status_code == 200


@pytest.mark.anyio
async def test_rate_limit_headers(client: httpx2.AsyncClient, vendor: VendorConfig) -> None:
    vendor.fault = Fault.rate_limit("120", connection_wide=True)
    response = await client.get(HEADER_EXCHANGE_PATH, headers=credentials(vendor))
    assert response.headers["retry-after"] == "120"
    assert response.headers["x-ratelimit-scope"] == "global"


@pytest.mark.anyio
async def test_body_faults(client: httpx2.AsyncClient, vendor: VendorConfig) -> None:
    vendor.fault = Fault("html")
    response = await client.get(HEADER_EXCHANGE_PATH, headers=credentials(vendor))
    assert response.headers["content-type"].startswith("text/html")
    vendor.fault = Fault("malformed")
    response = await client.get(HEADER_EXCHANGE_PATH, headers=credentials(vendor))
    with pytest.raises(ValueError):
        response.json()
    vendor.fault = Fault("null_token")
    response = await client.get(HEADER_EXCHANGE_PATH, headers=credentials(vendor))
    assert response.json()["data"] == {"token": None}
    vendor.fault = Fault("opaque_token")
    response = await client.get(HEADER_EXCHANGE_PATH, headers=credentials(vendor))
    assert response.json()["data"]["token"].count(".") == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kind", "exp_offset"), [("no_exp", None), ("expired", -60), ("far_future", 315_360_000)]
)
async def test_exp_faults(
    client: httpx2.AsyncClient, vendor: VendorConfig, kind: str, exp_offset: int | None
) -> None:
    import base64
    import json

    vendor.fault = Fault(kind)  # type: ignore[arg-type]
    response = await client.get(HEADER_EXCHANGE_PATH, headers=credentials(vendor))
    payload = response.json()["data"]["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims.get("exp") == (None if exp_offset is None else claims["iat"] + exp_offset)


@pytest.mark.anyio
async def test_concurrency_limit_answers_429(
    client: httpx2.AsyncClient, vendor: VendorConfig
) -> None:
    vendor.max_in_flight = 2
    vendor.latency = 0.05
    statuses: list[int] = []

    async def call() -> None:
        response = await client.get(HEADER_EXCHANGE_PATH, headers=credentials(vendor))
        statuses.append(response.status_code)

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(call)
    assert sorted(statuses) == [200, 200, 429, 429, 429]
    assert vendor.peak_in_flight == 3  # two served plus each refused arrival, briefly
    assert vendor.in_flight == 0


@pytest.mark.anyio
async def test_apikey_oauth_and_whoami_endpoints(
    client: httpx2.AsyncClient, vendor: VendorConfig
) -> None:
    response = await client.post("/api/v1/authenticate", json={"api_key": vendor.api_key})
    assert set(response.json()) == {"token"}
    response = await client.post("/api/v1/authenticate", json={"api_key": "wrong"})
    assert response.status_code == 401
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(vendor.api_key, vendor.api_secret),
    )
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 86400
    assert set(body) >= {"access_token", "refresh_token", "refresh_token_expires_in"}
    assert response.headers["cache-control"] == "no-store"
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "password"},
        auth=(vendor.api_key, vendor.api_secret),
    )
    assert response.json()["error"] == "unsupported_grant_type"
    response = await client.get("/user", headers={"authorization": f"Bearer {vendor.api_key}"})
    assert response.json()["handle"] == "demo"
    response = await client.get("/user", headers={"authorization": "Bearer nope"})
    assert response.status_code == 401
    assert vendor.calls == {"authenticate": 2, "oauth": 2, "user": 2}


def test_secrets_not_in_repr(vendor: VendorConfig) -> None:
    text = repr(vendor)
    for secret in (vendor.api_key, vendor.api_secret, vendor.signing_key):
        assert secret not in text


async def credentials_of_every_kind(
    client: httpx2.AsyncClient, vendor: VendorConfig
) -> dict[str, str]:
    """An ``Authorization`` value for each connection-wide way of authenticating."""
    apikey = await client.post(APIKEY_JWT_PATH, json={"api_key": vendor.api_key})
    oauth = await client.post(
        OAUTH2_TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        auth=(vendor.api_key, vendor.api_secret),
    )
    basic = base64.b64encode(f"{vendor.api_username}:{vendor.api_key}".encode()).decode()
    return {
        "apikey-jwt": f"Bearer {apikey.json()['token']}",
        "oauth2": f"Bearer {oauth.json()['access_token']}",
        "static-bearer": f"Bearer {vendor.api_key}",
        "static-basic": f"Basic {basic}",
    }


def pair_request(style: str, tenant: str = "acme", sub: str = "emea") -> dict[str, Any]:
    if style == "headers":
        return {"headers": {"x-tenant-id": tenant, "x-sub-tenant-id": sub}}
    return {"json": {"tenant_id": tenant, "sub_tenant_id": sub}}


@pytest.mark.anyio
@pytest.mark.parametrize("style", ["headers", "json"])
async def test_the_per_pair_step_sells_a_pair_token_for_each_connection_wide_credential(
    client: httpx2.AsyncClient, vendor: VendorConfig, clock: ManualClock, style: str
) -> None:
    for name, authorization in (await credentials_of_every_kind(client, vendor)).items():
        request = pair_request(style)
        headers = {"authorization": authorization, **request.pop("headers", {})}
        response = await client.post(PAIR_TOKEN_PATH, headers=headers, **request)
        assert response.status_code == 200, name
        assert response.json()["code"] == "RESPONSE_SUCCESS"
        token = response.json()["data"]["token"]
        claims = tokens.verify(token, vendor.signing_key, clock.now().timestamp())
        assert claims is not None
        assert (claims["tenant_id"], claims["sub_tenant_id"]) == ("acme", "emea")
    assert vendor.pair_calls == {("acme", "emea"): 4}


@pytest.mark.anyio
async def test_the_per_pair_step_refuses_what_is_not_a_connection_wide_credential(
    client: httpx2.AsyncClient, vendor: VendorConfig
) -> None:
    wide = await credentials_of_every_kind(client, vendor)
    pair_token = (await client.get(HEADER_EXCHANGE_PATH, headers=credentials(vendor))).json()
    wrong_basic = base64.b64encode(f"{vendor.api_username}:nope".encode()).decode()
    refused = [
        None,
        f"Bearer {pair_token['data']['token']}",  # one pair's token cannot buy another's
        f"Basic {wrong_basic}",
        "Bearer not-a-token",
        "Basic !!!",
    ]
    for authorization in refused:
        headers = {"x-tenant-id": "acme", "x-sub-tenant-id": "emea"}
        if authorization is not None:
            headers["authorization"] = authorization
        response = await client.post(PAIR_TOKEN_PATH, headers=headers)
        assert (response.status_code, response.json()["message"]) == (401, "Unauthorized")
    vendor.revoke_credentials()
    for name in ("apikey-jwt", "oauth2"):
        response = await client.post(
            PAIR_TOKEN_PATH,
            headers={"authorization": wide[name], "x-tenant-id": "a", "x-sub-tenant-id": "b"},
        )
        assert response.status_code == 401
    assert vendor.pair_calls == {("acme", "emea"): 1}  # the header exchange above, only


@pytest.mark.anyio
async def test_the_per_pair_step_wants_a_pair_in_the_configured_style(
    client: httpx2.AsyncClient, vendor: VendorConfig
) -> None:
    auth = {"authorization": f"Bearer {vendor.api_key}"}
    response = await client.post(PAIR_TOKEN_PATH, headers={**auth, "x-tenant-id": "acme"})
    assert (response.status_code, response.json()["message"]) == (400, "Subtenant ID is required")
    response = await client.post(PAIR_TOKEN_PATH, headers=auth, json={"sub_tenant_id": "x"})
    assert (response.status_code, response.json()["message"]) == (400, "Tenant ID is required")
    vendor.pair_token_style = "json"
    response = await client.post(
        PAIR_TOKEN_PATH, headers={**auth, **pair_request("headers")["headers"]}
    )
    assert response.status_code == 400
    vendor.pair_token_style = "headers"
    response = await client.post(PAIR_TOKEN_PATH, headers=auth, **pair_request("json"))
    assert response.status_code == 400


@pytest.mark.anyio
async def test_the_per_pair_step_answers_in_the_configured_shape(
    client: httpx2.AsyncClient, vendor: VendorConfig
) -> None:
    auth = {"authorization": f"Bearer {vendor.api_key}", **pair_request("headers")["headers"]}
    vendor.pair_token_field = "token"
    assert set((await client.post(PAIR_TOKEN_PATH, headers=auth)).json()) == {"token"}
    vendor.pair_token_field = "access_token"
    body = (await client.post(PAIR_TOKEN_PATH, headers=auth)).json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["expires_in"] == 86400


@pytest.mark.anyio
async def test_whoami_accepts_the_static_key_as_basic(
    client: httpx2.AsyncClient, vendor: VendorConfig
) -> None:
    response = await client.get(WHOAMI_PATH, auth=(vendor.api_username, vendor.api_key))
    assert response.status_code == 200
    response = await client.get(WHOAMI_PATH, auth=("someone-else", vendor.api_key))
    assert response.status_code == 401


@pytest.mark.anyio
async def test_endpoint_faults_hit_only_their_endpoint(
    client: httpx2.AsyncClient, vendor: VendorConfig
) -> None:
    vendor.endpoint_faults["pair_token"] = Fault("unauthorized")
    auth = {"authorization": f"Bearer {vendor.api_key}", **pair_request("headers")["headers"]}
    assert (await client.post(PAIR_TOKEN_PATH, headers=auth)).status_code == 401
    assert (await client.get(HEADER_EXCHANGE_PATH, headers=credentials(vendor))).status_code == 200


@pytest.mark.anyio
async def test_a_429_can_carry_the_vendors_date_and_non_ascii_bytes(
    client: httpx2.AsyncClient, vendor: VendorConfig
) -> None:
    vendor.fault = Fault.rate_limit("²", date="Thu, 01 Jan 2026 11:58:00 GMT")
    response = await client.get(HEADER_EXCHANGE_PATH, headers=credentials(vendor))
    assert response.status_code == 429
    assert response.headers["date"] == "Thu, 01 Jan 2026 11:58:00 GMT"
    assert (b"retry-after", "²".encode()) in response.headers.raw
