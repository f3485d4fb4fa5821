"""Building blocks for dashboard tests: the BFF wired to the demo vendor in-process.

The vendor is the real demo vendor app reached through ``httpx2.ASGITransport``,
behind a transport that remembers every request and every token the vendor
issued, so tests can prove which pairs were asked for and where tokens went.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bff.app import create_app
from bff.clock import ManualClock
from bff.demo.vendor import (
    APIKEY_JWT_PATH,
    HEADER_EXCHANGE_PATH,
    OAUTH2_TOKEN_PATH,
    PAIR_TOKEN_PATH,
    VendorConfig,
    create_vendor_app,
)
from bff.settings import DeliveryMode, Settings, UpstreamSettings
from tests.web.helpers import make_user, sign_in

VENDOR_URL = "http://vendor.test"
DASHBOARD_URL = f"{VENDOR_URL}/dashboard/"
ANALYST = "analyst@example.com"
ANALYST_PAIRS = (("acme", "north"), ("acme", "south"), ("globex", "emea"))
OTHER_PAIR = ("initech", "west")
_HEADING = re.compile(r"<h1>(Insights for [^<]+)</h1>")
# The endpoints that issue a token for one pair, and those that issue one for the whole
# connection (apikey-jwt's authentication, oauth2's grant).
_PAIR_TOKEN_PATHS = frozenset({HEADER_EXCHANGE_PATH, PAIR_TOKEN_PATH})
_CREDENTIAL_PATHS = frozenset({APIKEY_JWT_PATH, OAUTH2_TOKEN_PATH})


class RecordingVendor(httpx2.AsyncBaseTransport):
    """The demo vendor in-process; records requests and what it issued: ``tokens`` for
    one pair each (header-exchange, the per-pair step) and ``credentials`` for the whole
    connection (apikey-jwt tokens, oauth2 access and refresh tokens)."""

    def __init__(self, config: VendorConfig) -> None:
        self.config = config
        self.app = create_vendor_app(config)
        self._inner = httpx2.ASGITransport(app=self.app)
        self.requests: list[httpx2.Request] = []
        self.tokens: list[str] = []
        self.credentials: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        response = await self._inner.handle_async_request(request)
        path = request.url.path
        if response.status_code != 200 or path not in _PAIR_TOKEN_PATHS | _CREDENTIAL_PATHS:
            return response
        body = await response.aread()
        issued = _issued(json.loads(body))
        if path in _PAIR_TOKEN_PATHS:
            self.tokens.extend(issued)
        else:
            self.credentials.extend(issued)
        return httpx2.Response(response.status_code, headers=response.headers, content=body)

    def pairs_requested(self) -> set[tuple[str, str]]:
        return set(self.config.pair_calls)

    def hosts(self) -> set[str]:
        return {request.url.host for request in self.requests}


def _issued(answer: dict[str, Any]) -> list[str]:
    """Every token in a token endpoint's answer: the three shapes bff reads, and
    oauth2's refresh token."""
    data = answer.get("data")
    found = (
        data.get("token") if isinstance(data, dict) else None,
        answer.get("token"),
        answer.get("access_token"),
        answer.get("refresh_token"),
    )
    return [token for token in found if isinstance(token, str) and token]


def vendor_settings(settings: Settings, config: VendorConfig, delivery: DeliveryMode) -> Settings:
    return dataclasses.replace(
        settings,
        upstream=UpstreamSettings(
            base_url=VENDOR_URL, api_key=config.api_key, api_secret=config.api_secret
        ),
        dashboard_url=DASHBOARD_URL,
        dashboard_delivery=delivery,
    )


def dashboard_app(
    settings: Settings, clock: ManualClock, vendor: RecordingVendor, delivery: DeliveryMode
) -> Starlette:
    return create_app(
        vendor_settings(settings, vendor.config, delivery), clock=clock, vendor_transport=vendor
    )


def sign_in_analyst(client: TestClient, pairs: tuple[tuple[str, str], ...] = ANALYST_PAIRS) -> int:
    user_id = make_user(client, ANALYST, scopes=pairs)
    assert sign_in(client, ANALYST).status_code == 303
    return user_id


def vendor_heading(html: str) -> str | None:
    """The demo vendor's "Insights for tenant … / sub-tenant …" heading, if the page has one."""
    found = _HEADING.search(html)
    return found.group(1) if found else None


def heading_for(pair: tuple[str, str]) -> str:
    return f"Insights for tenant {pair[0]} / sub-tenant {pair[1]}"
