"""The demo vendor speaks the reference contract (seed 004) and misbehaves on request."""

from __future__ import annotations

import anyio
import httpx2
import pytest

from bff.clock import ManualClock
from bff.demo import tokens
from bff.demo.faults import Fault
from bff.demo.vendor import HEADER_EXCHANGE_PATH, VendorConfig
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
