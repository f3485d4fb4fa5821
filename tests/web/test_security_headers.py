"""Security headers on every response, and the CSP builder."""

from __future__ import annotations

import dataclasses
import re

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from bff.app import create_app
from bff.settings import Settings
from bff.web.security import content_security_policy, csp_nonce
from tests.web.conftest import PUBLIC_URL


async def nonce_probe(request: Request) -> Response:
    return PlainTextResponse(csp_nonce(request))


async def own_policy(request: Request) -> Response:
    policy = content_security_policy(
        csp_nonce(request),
        frame_src=["https://vendor.example"],
        frame_ancestors=["https://partner.example"],
    )
    return PlainTextResponse(
        "embed",
        headers={
            "Content-Security-Policy": policy,
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "private, max-age=5",
        },
    )


async def boom(request: Request) -> Response:
    raise RuntimeError("internal detail")


@pytest.fixture(autouse=True)
def _routes(app: Starlette) -> None:
    app.router.routes.extend(
        [Route("/_nonce", nonce_probe), Route("/_own", own_policy), Route("/_boom", boom)]
    )


def directives(policy: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for directive in policy.split(";"):
        name, *values = directive.split()
        found[name] = values
    return found


def assert_hardened(response: httpx2.Response, *, hsts: bool = True) -> None:
    headers = response.headers
    policy = directives(headers["content-security-policy"])
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["cache-control"] == "no-store"
    assert ("strict-transport-security" in headers) is hsts


def test_pages_are_hardened(client: TestClient) -> None:
    response = client.get("/login")
    assert_hardened(response)
    assert response.headers["strict-transport-security"] == "max-age=31536000"
    policy = directives(response.headers["content-security-policy"])
    assert policy["frame-src"] == ["'none'"]  # no dashboard URL configured
    assert policy["form-action"] == ["'self'"]
    assert any(value.startswith("'nonce-") for value in policy["script-src"])


def test_error_pages_are_hardened(app: Starlette) -> None:
    with TestClient(app, base_url=PUBLIC_URL, raise_server_exceptions=False) as client:
        missing = client.get("/no/such/page")
        failed = client.get("/_boom")
    assert missing.status_code == 404
    assert_hardened(missing)
    assert failed.status_code == 500
    assert "internal detail" not in failed.text and "Traceback" not in failed.text
    assert_hardened(failed)


def test_each_request_has_its_own_nonce_and_routes_see_it(client: TestClient) -> None:
    first, second = client.get("/_nonce"), client.get("/_nonce")
    assert first.text != second.text and len(first.text) >= 16
    for response in (first, second):
        assert f"'nonce-{response.text}'" in response.headers["content-security-policy"]


def test_a_route_may_set_its_own_policy(client: TestClient) -> None:
    response = client.get("/_own")
    policy = directives(response.headers["content-security-policy"])
    assert policy["frame-ancestors"] == ["https://partner.example"]
    assert policy["frame-src"] == ["https://vendor.example"]
    assert "x-frame-options" not in response.headers
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "private, max-age=5"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_static_files_may_be_cached(client: TestClient) -> None:
    response = client.get("/static/bff.css")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("cache-control", "")
    assert response.headers["x-content-type-options"] == "nosniff"


def test_frame_src_is_the_vendor_origin_only(settings: Settings) -> None:
    configured = dataclasses.replace(
        settings, dashboard_url="https://dash.vendor.example:8443/embed/dashboard?x=1"
    )
    with TestClient(create_app(configured), base_url=PUBLIC_URL) as client:
        policy = directives(client.get("/login").headers["content-security-policy"])
    assert policy["frame-src"] == ["https://dash.vendor.example:8443"]


def test_no_hsts_over_plain_http(base_settings: Settings) -> None:
    local = dataclasses.replace(base_settings, public_url="http://127.0.0.1:8000")
    with TestClient(create_app(local), base_url="http://127.0.0.1:8000") as client:
        assert_hardened(client.get("/login"), hsts=False)


def test_the_login_page_needs_no_inline_script_or_style(client: TestClient) -> None:
    page = client.get("/login").text
    assert not re.search(r"<script(?![^>]*nonce=)", page)
    assert not re.search(r"<style(?![^>]*nonce=)", page)
    assert "style=" not in page and "onclick" not in page


@pytest.mark.parametrize(
    "source", ["https://a.example; script-src *", "https://a.example, default-src *", "a b", ""]
)
def test_the_policy_builder_refuses_injection(source: str) -> None:
    with pytest.raises(ValueError):
        content_security_policy("nonce", frame_src=[source])


def test_the_policy_builder_defaults() -> None:
    policy = directives(content_security_policy("abc", frame_src=[]))
    assert policy["frame-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["script-src"] == ["'self'", "'nonce-abc'"]
