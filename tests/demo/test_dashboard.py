"""The demo dashboard accepts a token the four delivery modes bring, and nothing else."""

from __future__ import annotations

import base64
import re

import httpx2
import pytest

from bff.clock import ManualClock
from bff.demo import tokens
from bff.demo.dashboard import Viewer, insights
from bff.demo.vendor import HEADER_EXCHANGE_PATH, PAIR_TOKEN_PATH, VendorConfig
from tests.demo.conftest import credentials

HEADING = "Insights for tenant acme / sub-tenant emea"


async def token_for(client: httpx2.AsyncClient, vendor: VendorConfig) -> str:
    response = await client.get(HEADER_EXCHANGE_PATH, headers=credentials(vendor))
    token: str = response.json()["data"]["token"]
    return token


def assert_page_headers(response: httpx2.Response) -> None:
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in response.headers["content-security-policy"]


@pytest.mark.anyio
async def test_bearer_header_form_post_and_query(
    client: httpx2.AsyncClient, vendor: VendorConfig
) -> None:
    token = await token_for(client, vendor)
    for response in [
        await client.get("/dashboard/", headers={"authorization": f"Bearer {token}"}),
        await client.post("/dashboard/", data={"token": token}),
        await client.get("/dashboard/", params={"token": token}),
    ]:
        assert response.status_code == 200
        assert f"<h1>{HEADING}</h1>" in response.text
        assert response.text.count("<rect ") == 6
        assert token not in response.text
        assert_page_headers(response)


@pytest.mark.anyio
async def test_fragment_page_and_its_json_endpoint(
    client: httpx2.AsyncClient, vendor: VendorConfig
) -> None:
    shell = await client.get("/dashboard/")
    assert shell.status_code == 200
    assert 'data-state="awaiting"' in shell.text
    assert_page_headers(shell)
    token = await token_for(client, vendor)
    data = await client.get(
        "/dashboard/insights.json", headers={"authorization": f"Bearer {token}"}
    )
    assert data.json()["heading"] == HEADING
    assert data.json() == insights(Viewer("acme", "emea"))
    script = await client.get("/dashboard/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert 'fetch("insights.json"' in script.text
    assert "Authorization" in script.text
    assert (await client.get("/dashboard/app.css")).status_code == 200
    assert (await client.get("/dashboard/missing.js")).status_code == 404


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["garbage", "other-key", "expired", "empty-form"])
async def test_invalid_tokens_get_a_clear_message(
    client: httpx2.AsyncClient, vendor: VendorConfig, clock: ManualClock, kind: str
) -> None:
    now = int(clock.now().timestamp())
    claims = {"tenant_id": "acme", "sub_tenant_id": "emea", "iat": now, "exp": now + 60}
    if kind == "garbage":
        response = await client.get("/dashboard/", params={"token": "garbage"})
    elif kind == "other-key":
        forged = tokens.issue(claims, "another-signing-key-entirely")
        response = await client.get("/dashboard/", headers={"authorization": f"Bearer {forged}"})
    elif kind == "expired":
        token = await token_for(client, vendor)
        clock.advance(vendor.token_lifetime)
        response = await client.post("/dashboard/", data={"token": token})
    else:
        response = await client.post("/dashboard/", data={})
    assert response.status_code == 401
    assert "<h1>Invalid token</h1>" in response.text
    assert "acme" not in response.text
    assert_page_headers(response)
    data = await client.get("/dashboard/insights.json", headers={"authorization": "Bearer x"})
    assert (data.status_code, data.json()) == (401, {"error": "invalid token"})


@pytest.mark.anyio
async def test_partner_wide_tokens(client: httpx2.AsyncClient, vendor: VendorConfig) -> None:
    response = await client.post("/api/v1/authenticate", json={"api_key": vendor.api_key})
    page = await client.post("/dashboard/", data={"token": response.json()["token"]})
    assert "Insights for all tenants" in page.text
    page = await client.post("/dashboard/", data={"token": vendor.api_key})  # static-bearer
    assert "Insights for all tenants" in page.text


@pytest.mark.anyio
async def test_every_link_asset_and_redirect_is_relative(client: httpx2.AsyncClient) -> None:
    page = await client.get("/dashboard/")
    references = re.findall(r'(?:href|src|action)="([^"]*)"', page.text)
    assert references == ["app.css", "app.js"]
    script = (await client.get("/dashboard/app.js")).text
    assert not re.search(r"""["'`]/""", script)
    redirect = await client.get("/dashboard", params={"a": "1"})
    assert (redirect.status_code, redirect.headers["location"]) == (307, "dashboard/?a=1")


def test_made_up_data_is_deterministic_per_pair() -> None:
    assert insights(Viewer("acme", "emea")) == insights(Viewer("acme", "emea"))
    assert insights(Viewer("acme", "emea"))["series"] != insights(Viewer("acme", "apac"))["series"]


async def pair_token(client: httpx2.AsyncClient, vendor: VendorConfig) -> str:
    response = await client.post(
        PAIR_TOKEN_PATH,
        headers={
            "authorization": f"Bearer {vendor.api_key}",
            "x-tenant-id": "acme",
            "x-sub-tenant-id": "emea",
        },
    )
    token: str = response.json()["data"]["token"]
    return token


PINNED = {"x-tenant-id": "acme", "x-sub-tenant-id": "emea"}


@pytest.mark.anyio
async def test_a_per_pair_token_shows_its_one_pair_and_no_other(
    client: httpx2.AsyncClient, vendor: VendorConfig
) -> None:
    token = await pair_token(client, vendor)
    auth = {"authorization": f"Bearer {token}"}
    page = await client.get("/dashboard/", headers=auth)
    assert f"<h1>{HEADING}</h1>" in page.text
    data = await client.get("/dashboard/insights.json", headers={**auth, **PINNED})
    assert (data.json()["heading"], data.json()["access"]) == (HEADING, "pair")
    other = {"x-tenant-id": "acme", "x-sub-tenant-id": "apac"}
    refused = await client.get("/dashboard/", headers={**auth, **other})
    assert refused.status_code == 401
    assert "<h1>Invalid token</h1>" in refused.text


@pytest.mark.anyio
async def test_a_partner_wide_credential_shows_the_pair_its_server_pins(
    client: httpx2.AsyncClient, vendor: VendorConfig
) -> None:
    bearer = {"authorization": f"Bearer {vendor.api_key}"}
    basic = {
        "authorization": "Basic "
        + base64.b64encode(f"{vendor.api_username}:{vendor.api_key}".encode()).decode()
    }
    for auth in (bearer, basic):
        page = await client.get("/dashboard/", headers=auth)
        assert "<h1>Insights for all tenants (partner-wide access)</h1>" in page.text
        data = await client.get("/dashboard/insights.json", headers={**auth, **PINNED})
        assert (data.json()["heading"], data.json()["access"]) == (HEADING, "partner-wide")
    wrong = {"authorization": "Basic " + base64.b64encode(b"demo-partner:nope").decode()}
    assert (await client.get("/dashboard/", headers=wrong)).status_code == 401


@pytest.mark.anyio
async def test_a_revoked_credential_opens_no_dashboard(
    client: httpx2.AsyncClient, vendor: VendorConfig
) -> None:
    response = await client.post("/api/v1/authenticate", json={"api_key": vendor.api_key})
    auth = {"authorization": f"Bearer {response.json()['token']}"}
    assert (await client.get("/dashboard/", headers=auth)).status_code == 200
    vendor.revoke_credentials()
    assert (await client.get("/dashboard/", headers=auth)).status_code == 401
