"""The demo partner's server side against a fake bff (in-process) and a real one: one
token reused until near its expiry, launch URLs for its page, and bff's refusals
turned into one clear sentence."""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from bff.clock import ManualClock
from bff.demo.partner import (
    DEMO_USER,
    TOKEN_MARGIN,
    PartnerConfig,
    create_partner_app,
)
from bff.demo.run import banner, running_demo
from bff.demo.seed import PARTNER_APP_NAME, PARTNER_PAIRS, seed_partner_app
from bff.operations.partner_apps import authenticate_client, hash_secret
from bff.store.database import Database
from bff.store.schema import prepare_schema
from bff.store.users import ensure_scope

BFF = "http://bff.test"
ORIGIN = "http://partner.test"
CLIENT_ID = "bffp_demo"
CLIENT_SECRET = "bffs_secret-value"
_LAUNCH_URL = re.compile(r'data-launch-url="([^"]+)"')


@dataclasses.dataclass
class FakeBff:
    """bff's partner API as far as the demo partner uses it, with knobs and counters."""

    token_status: int = 200
    launch_status: int = 201
    launch_body: dict[str, Any] | None = None
    launch_headers: dict[str, str] = dataclasses.field(default_factory=dict)
    # Tokens bff stops honouring (as after a key rotation).
    forgotten: set[str] = dataclasses.field(default_factory=set)
    tokens_issued: list[str] = dataclasses.field(default_factory=list)
    launches: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def app(self) -> Starlette:
        async def token(request: Request) -> Response:
            form = await request.form()
            expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if (
                self.token_status != 200
                or request.headers.get("authorization") != f"Basic {expected}"
                or form.get("grant_type") != "client_credentials"
            ):
                return JSONResponse(
                    {"error": "invalid_client"},
                    401,
                    headers={"www-authenticate": 'Basic realm="bff"'},
                )
            issued = f"token-{len(self.tokens_issued) + 1}"
            self.tokens_issued.append(issued)
            return JSONResponse(
                {"access_token": issued, "token_type": "Bearer", "expires_in": 3600}
            )

        async def launches(request: Request) -> Response:
            scheme, _, presented = request.headers.get("authorization", "").partition(" ")
            if scheme != "Bearer" or presented not in self.tokens_issued:
                return _problem(401, "Unauthorized", "invalid token")
            if presented in self.forgotten:
                return _problem(401, "Unauthorized", "unknown key id")
            body = await request.json()
            self.launches.append({"token": presented, **body})
            if self.launch_status != 201:
                answer = self.launch_body or {"title": "Refused"}
                return JSONResponse(
                    answer,
                    self.launch_status,
                    media_type="application/problem+json",
                    headers=self.launch_headers,
                )
            ticket = f"ticket-{len(self.launches)}"
            return JSONResponse(
                self.launch_body
                or {"url": f"{BFF}/embed/launch?ticket={ticket}", "expires_in": 60},
                201,
            )

        return Starlette(
            routes=[
                Route("/api/v1/oauth/token", token, methods=["POST"]),
                Route("/api/v1/embed/launches", launches, methods=["POST"]),
            ]
        )


def _problem(status: int, title: str, detail: str) -> Response:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status,
        media_type="application/problem+json",
    )


CONFIG = PartnerConfig(
    bff_url=BFF,
    origin=ORIGIN,
    client_id=CLIENT_ID,
    client_secret=CLIENT_SECRET,
    pairs=(("acme", "north"), ("globex", "emea")),
)


@pytest.fixture
def bff() -> FakeBff:
    return FakeBff()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def partner(bff: FakeBff, clock: ManualClock) -> Iterator[TestClient]:
    app = create_partner_app(CONFIG, transport=httpx2.ASGITransport(bff.app()), clock=clock)
    with TestClient(app, base_url=ORIGIN, raise_server_exceptions=False) as client:
        yield client


def launch(client: TestClient, pair: str | None = None, origin: str = ORIGIN) -> Any:
    return client.post("/launch", json={"pair": pair} if pair else {}, headers={"origin": origin})


def test_the_page_embeds_a_fresh_launch_with_bffs_script(partner: TestClient, bff: FakeBff) -> None:
    page = partner.get("/")
    assert page.status_code == 200
    found = _LAUNCH_URL.search(page.text)
    assert found and found.group(1) == f"{BFF}/embed/launch?ticket=ticket-1"
    assert f'<script src="{BFF}/static/embed.js"></script>' in page.text
    assert '<script src="/partner.js"></script>' in page.text
    assert '<ol id="events"' in page.text and 'id="renew"' in page.text
    # Neither the client secret nor the bearer token reaches the browser.
    assert CLIENT_SECRET not in page.text and "token-1" not in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    policy = page.headers["content-security-policy"]
    assert f"frame-src {BFF};" in policy and f"script-src 'self' {BFF};" in policy
    assert "frame-ancestors 'none'" in policy
    # The launch is for the demo user, the first pair, and a page on this origin.
    (asked,) = bff.launches
    assert asked["user"] == DEMO_USER
    assert (asked["tenant_id"], asked["sub_tenant_id"]) == ("acme", "north")
    assert asked["origin"] == ORIGIN


def test_the_page_can_show_another_of_its_pairs_but_no_other(
    partner: TestClient, bff: FakeBff
) -> None:
    assert partner.get("/", params={"pair": "globex/emea"}).status_code == 200
    assert (bff.launches[-1]["tenant_id"], bff.launches[-1]["sub_tenant_id"]) == (
        "globex",
        "emea",
    )
    refused = partner.get("/", params={"pair": "globex/apac"})
    assert refused.status_code == 404
    assert "may not show that pair" in refused.text
    assert len(bff.launches) == 1


def test_one_token_serves_many_launches_until_near_its_expiry(
    partner: TestClient, bff: FakeBff, clock: ManualClock
) -> None:
    for _ in range(3):
        assert launch(partner).status_code == 200
    assert bff.tokens_issued == ["token-1"]
    assert {asked["token"] for asked in bff.launches} == {"token-1"}

    clock.advance(3600 - TOKEN_MARGIN - 1)
    assert launch(partner).status_code == 200
    assert bff.tokens_issued == ["token-1"]
    clock.advance(1)
    assert launch(partner).status_code == 200
    assert bff.tokens_issued == ["token-1", "token-2"]
    assert bff.launches[-1]["token"] == "token-2"


def test_a_token_bff_no_longer_honours_is_replaced_once(partner: TestClient, bff: FakeBff) -> None:
    assert launch(partner).status_code == 200
    bff.forgotten.add("token-1")
    answer = launch(partner)
    assert answer.status_code == 200
    assert bff.tokens_issued == ["token-1", "token-2"]
    assert [asked["token"] for asked in bff.launches] == ["token-1", "token-2"]


def test_the_json_endpoint_answers_a_launch_url_for_its_own_page_only(
    partner: TestClient, bff: FakeBff
) -> None:
    answer = launch(partner, "globex/emea")
    assert answer.status_code == 200
    assert answer.json() == {"url": f"{BFF}/embed/launch?ticket=ticket-1"}
    assert answer.headers["cache-control"] == "no-store"
    assert launch(partner, origin="https://evil.example").status_code == 403
    assert partner.post("/launch", json={}).status_code == 403  # no Origin at all
    assert launch(partner, "globex/apac").status_code == 404
    assert len(bff.launches) == 1


def test_wrong_credentials_give_a_clear_page_without_a_traceback(
    partner: TestClient, bff: FakeBff
) -> None:
    bff.token_status = 401
    page = partner.get("/")
    assert page.status_code == 502
    assert "bff refused a token (HTTP 401: invalid_client)" in page.text
    assert "revoked or its secret regenerated" in page.text
    assert "Traceback" not in page.text and "data-launch-url" not in page.text
    answer = launch(partner)
    assert answer.status_code == 502
    assert answer.json()["error"].startswith("bff refused a token (HTTP 401: invalid_client).")


def test_a_refused_launch_names_bffs_reason(partner: TestClient, bff: FakeBff) -> None:
    bff.launch_status = 403
    bff.launch_body = {"title": "Forbidden", "status": 403, "detail": "pair not allowed"}
    answer = launch(partner)
    assert answer.status_code == 502
    assert answer.json() == {
        "error": "bff refused a launch (HTTP 403: Forbidden; pair not allowed)."
    }


def test_a_rate_limited_launch_says_when_to_try_again(partner: TestClient, bff: FakeBff) -> None:
    bff.launch_status = 429
    bff.launch_body = {"title": "Too Many Requests", "status": 429}
    bff.launch_headers = {"retry-after": "7"}
    assert launch(partner).json()["error"] == (
        "bff refused a launch (HTTP 429: Too Many Requests). Try again in 7 s."
    )


def test_an_answer_without_a_launch_url_is_refused(partner: TestClient, bff: FakeBff) -> None:
    bff.launch_body = {"url": "javascript:alert(1)", "expires_in": 60}
    assert launch(partner).json() == {"error": "bff's answer to a launch holds no launch URL."}


def test_bff_out_of_reach_is_one_sentence(clock: ManualClock) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    app = create_partner_app(CONFIG, transport=httpx2.MockTransport(refuse), clock=clock)
    with TestClient(app, base_url=ORIGIN, raise_server_exceptions=False) as client:
        page = client.get("/")
        answer = launch(client)
    assert page.status_code == 502
    assert "bff did not answer the request for a token (ConnectError: connection refused)." in (
        page.text
    )
    assert "Traceback" not in page.text
    assert answer.status_code == 502
    assert answer.json()["error"].startswith("bff did not answer the request for a token")


def test_the_page_script_is_served_by_the_partner_itself(partner: TestClient) -> None:
    script = partner.get("/partner.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "BffEmbed.mount" in script.text


@pytest.mark.anyio
async def test_the_seeded_partner_app_keeps_only_the_secrets_hash(tmp_path: Path) -> None:
    path = tmp_path / "demo.db"
    database = Database(f"sqlite:///{path}")
    try:
        await prepare_schema(database)
        async with database.session() as session:
            for tenant, sub_tenant in PARTNER_PAIRS:
                await ensure_scope(session, tenant, sub_tenant)
        clock = ManualClock()
        created = await seed_partner_app(database, "http://localhost:8001", now=clock.now())
        assert created.app.name == PARTNER_APP_NAME
        assert created.app.allowed_origins == ("http://localhost:8001",)
        assert created.app.pairs == tuple(sorted(PARTNER_PAIRS))
        found = await authenticate_client(
            database, created.app.client_id, created.client_secret, clock.now()
        )
        assert found is not None and found.app.id == created.app.id
    finally:
        await database.dispose()
    stored = path.read_bytes()
    assert created.client_secret.encode() not in stored
    assert hash_secret(created.client_secret).encode() in stored


def test_a_real_demo_serves_the_partner_page_on_another_site(tmp_path: Path) -> None:
    with running_demo(port=0, directory=tmp_path, partner_page=True) as demo:
        assert demo.partner_url and demo.partner_url.startswith("http://localhost:")
        assert demo.url.startswith("http://127.0.0.1:")
        assert demo.partner_app and demo.partner_app.allowed_origins == (demo.partner_url,)
        assert f"Partner page:   {demo.partner_url}/" in banner(demo)
        assert demo.partner is not None
        assert demo.partner.client_secret not in banner(demo)
        with httpx2.Client(base_url=demo.partner_url, timeout=10) as browser:
            page = browser.get("/")
            assert page.status_code == 200, page.text
            found = _LAUNCH_URL.search(page.text)
            assert found and found.group(1).startswith(f"{demo.url}/embed/launch?ticket=")
            again = browser.post(
                "/launch", json={"pair": "globex/emea"}, headers={"origin": demo.partner_url}
            )
            assert again.status_code == 200
            assert again.json()["url"].startswith(f"{demo.url}/embed/launch?ticket=")
            assert again.json()["url"] != found.group(1)


def test_a_demo_without_the_partner_page_seeds_no_partner_app(tmp_path: Path) -> None:
    with running_demo(port=0, directory=tmp_path) as demo:
        assert demo.partner_url is None and demo.partner_app is None
        assert "Partner page" not in banner(demo)
