"""Sentinel: no credential that speaks for the whole vendor connection reaches a
browser, and each pair's token appears only where its delivery mode puts it.

The matrix: every connector kind (``static-bearer`` as Bearer and as HTTP Basic), by
no per-pair step, the step with the pair in headers, or in a JSON body, by every
delivery mode. Each combination is either refused by the settings
with the one line ``bff serve`` prints, or served for a whole visit (pages, scope
switches, proxied assets, failure pages, logout) in which everything the BFF said is
searched — every body, header (``Set-Cookie`` and ``Location`` included), URL, cookie,
and every log record before and after redaction:

- the connection-wide credential (the apikey-jwt or oauth2 token the vendor issued,
  oauth2's refresh token, the static key, its Basic ``username:key`` and that in
  base64, the API secret) appears nowhere at all;
- each pair token appears on exactly one page, in the one spot the mode allows (post:
  the form field; fragment: the iframe URL's fragment; query: its query), and nowhere
  in proxy mode;
- the vendor dashboard the browser ends up with shows the user's one pair, never
  "all tenants", whatever tenant headers the browser sends through the proxy.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import secrets
from collections.abc import Iterator

import httpx2
import pytest
from starlette.testclient import TestClient

from bff.app import create_app
from bff.clock import ManualClock
from bff.demo.faults import Fault
from bff.demo.run import DemoConnection
from bff.demo.vendor import PAIR_TOKEN_PATH, PairTokenField, VendorConfig
from bff.errors import ConfigurationError
from bff.logs import JsonFormatter
from bff.settings import DELIVERY_MODES, DeliveryMode, Settings
from tests.web.conftest import PUBLIC_URL
from tests.web.dashboard.delivery.test_delivery import open_in_vendor
from tests.web.dashboard.fixtures import (
    DASHBOARD_URL,
    VENDOR_URL,
    RecordingVendor,
    heading_for,
    sign_in_analyst,
    vendor_heading,
)
from tests.web.helpers import form_token

KINDS = (
    DemoConnection("header-exchange"),
    DemoConnection("apikey-jwt"),
    DemoConnection("oauth2-client-credentials"),
    DemoConnection("static-bearer"),
    DemoConnection("static-bearer", auth_scheme="basic"),
)
# The per-pair step's two styles, each answering in one of the shapes bff reads.
STEP_ANSWERS: dict[str, PairTokenField] = {"headers": "data.token", "json": "access_token"}
CONNECTIONS = tuple(
    DemoConnection(kind.kind, kind.auth_scheme, step)
    for kind in KINDS
    for step in (None, "headers", "json")
)
# What a browser would send to pick another tenant through the proxy.
FORGED_PAIR = {"X-Tenant-Id": "initech", "X-Sub-Tenant-Id": "west", "Authorization": "Bearer x"}


def refusal(connection: DemoConnection, delivery: DeliveryMode) -> str | None:
    """The line ``bff serve`` refuses this combination with, or ``None`` if it serves it."""
    if connection.kind == "header-exchange":
        if connection.pair_token_style is None:
            return None
        return (
            "BFF_UPSTREAM_PAIR_TOKEN_URL: is only for connection-wide kinds; "
            "header-exchange tokens are already per pair"
        )
    if delivery == "proxy" or connection.pair_token_style is not None:
        return None
    if connection.auth_scheme == "basic":
        return (
            "BFF_DASHBOARD_DELIVERY: HTTP Basic credentials can only be used by the proxy; "
            "set BFF_DASHBOARD_DELIVERY=proxy, or BFF_UPSTREAM_PAIR_TOKEN_URL so each pair "
            "gets its own dashboard token"
        )
    return (
        f"BFF_DASHBOARD_DELIVERY: {delivery} would put the connection-wide {connection.kind} "
        "token in every user's page; use proxy, or set BFF_UPSTREAM_PAIR_TOKEN_URL so each "
        "pair gets its own dashboard token"
    )


def matrix(*, refused: bool) -> list[object]:
    """The combinations the settings refuse, or those they serve."""
    found: list[object] = []
    for connection in CONNECTIONS:
        for delivery in DELIVERY_MODES:
            if (refusal(connection, delivery) is not None) != refused:
                continue
            name = combination_id(connection, delivery)
            found.append(pytest.param(connection, delivery, id=name))
    return found


def combination_id(connection: DemoConnection, delivery: DeliveryMode) -> str:
    scheme = "-basic" if connection.auth_scheme == "basic" else ""
    step = f"{connection.pair_token_style}-step" if connection.pair_token_style else "no-step"
    return f"{connection.kind}{scheme}-{step}-{delivery}"


def vendor_for(connection: DemoConnection, clock: ManualClock) -> RecordingVendor:
    """The demo vendor with fresh, unguessable credentials, insisting on the step's style."""
    style = connection.pair_token_style
    return RecordingVendor(
        VendorConfig(
            api_key=f"key-{secrets.token_urlsafe(24)}",
            api_secret=f"secret-{secrets.token_urlsafe(24)}",
            api_username=f"partner-{secrets.token_hex(6)}",
            pair_token_style=style,
            pair_token_field=STEP_ANSWERS[style] if style else "data.token",
            clock=clock,
        )
    )


def serve_env(
    settings: Settings, config: VendorConfig, connection: DemoConnection, delivery: DeliveryMode
) -> dict[str, str]:
    """The environment ``bff serve`` would start with for this combination."""
    env = {
        "BFF_SECRET_KEYS": ",".join(settings.secret_keys),
        "BFF_ENCRYPTION_KEYS": ",".join(settings.encryption_keys),
        "BFF_DATABASE_URL": settings.database_url,
        "BFF_PUBLIC_URL": PUBLIC_URL,
        "BFF_UPSTREAM_KIND": connection.kind,
        "BFF_UPSTREAM_BASE_URL": VENDOR_URL,
        "BFF_UPSTREAM_API_KEY": config.api_key,
        "BFF_UPSTREAM_API_SECRET": config.api_secret,
        "BFF_UPSTREAM_AUTH_SCHEME": connection.auth_scheme,
        "BFF_DASHBOARD_URL": DASHBOARD_URL,
        "BFF_DASHBOARD_DELIVERY": delivery,
    }
    if connection.auth_scheme == "basic":
        env["BFF_UPSTREAM_API_USERNAME"] = config.api_username
    if connection.pair_token_style is not None:
        env["BFF_UPSTREAM_PAIR_TOKEN_URL"] = PAIR_TOKEN_PATH
        env["BFF_UPSTREAM_PAIR_TOKEN_STYLE"] = connection.pair_token_style
    return env


def connection_secrets(vendor: RecordingVendor) -> list[str]:
    """Everything that speaks for the whole connection, and each signed part of it."""
    config = vendor.config
    basic = f"{config.api_username}:{config.api_key}"
    found = [config.api_key, config.api_secret, basic, base64.b64encode(basic.encode()).decode()]
    for credential in vendor.credentials:
        found += [credential, *signed_parts(credential)]
    return found


def signed_parts(token: str) -> list[str]:
    """A JWT's payload and signature (its header is the same for every token)."""
    parts = token.split(".")
    return parts[1:] if len(parts) == 3 else []


def allowed_spot(delivery: DeliveryMode, token: str) -> str | None:
    """The one place a dashboard page may carry a pair's ``token`` in this mode."""
    return {
        "proxy": None,
        "post": f'name="token" value="{token}"',
        "fragment": f'src="{DASHBOARD_URL}#token={token}"',
        "query": f'src="{DASHBOARD_URL}?token={token}"',
    }[delivery]


def browse(
    client: TestClient, vendor: RecordingVendor, delivery: DeliveryMode
) -> list[httpx2.Response]:
    """A user's whole visit, including the failure pages; checks that every dashboard
    shows the session's pair."""
    seen: list[httpx2.Response] = []

    def dashboard(pair: tuple[str, str]) -> httpx2.Response:
        page = client.get("/")
        assert page.status_code == 200
        seen.append(page)
        if delivery == "proxy":
            # The browser tries to pick the tenant (and the token): the proxy pins both.
            framed = client.get("/vendor/", headers=FORGED_PAIR)
            seen.append(framed)
            shown = framed.text
        else:
            assert client.portal is not None
            with unlogged("httpx2"):
                # The browser's own request: its log line is the test's, not the BFF's.
                shown = client.portal.call(open_in_vendor, vendor, delivery, page.text)
        assert vendor_heading(shown) == heading_for(pair), "not the user's one pair"
        return page

    sign_in_analyst(client)
    page = dashboard(("acme", "north"))
    if delivery == "proxy":
        for path in ("/vendor/app.js", "/vendor/app.css", "/vendor/insights.json"):
            seen.append(asset := client.get(path, headers=FORGED_PAIR))
            assert asset.status_code == 200
        assert seen[-1].json()["heading"] == heading_for(("acme", "north"))
        seen.append(client.get("/vendor/../x"))
        seen.append(client.get(httpx2.URL(PUBLIC_URL).copy_with(raw_path=b"/vendor/%2e%2e/")))
    seen.append(
        client.post("/scope", data={"scope": "acme/south", "csrf_token": form_token(page.text)})
    )
    page = dashboard(("acme", "south"))
    seen.append(
        client.post("/scope", data={"scope": "initech/west", "csrf_token": form_token(page.text)})
    )
    assert seen[-1].status_code == 403, "not the user's pair"
    seen.append(
        client.post("/scope", data={"scope": "globex/emea", "csrf_token": form_token(page.text)})
    )
    # The vendor is rate limiting: the 503 page (unless the connection's one credential
    # is already held), and the framed notice in the proxy.
    vendor.config.fault = Fault.rate_limit("5")
    seen.append(client.get("/"))
    if delivery == "proxy":
        seen.append(client.get("/vendor/"))
    vendor.config.fault = None
    seen.append(client.get("/nowhere"))
    seen.append(client.get("/metrics"))
    seen.append(client.post("/logout", data={"csrf_token": form_token(page.text)}))
    seen.append(client.get("/"))
    seen.append(client.get("/vendor/"))
    return seen


@contextlib.contextmanager
def unlogged(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = False


def record_text(record: logging.LogRecord) -> str:
    """A record as the code logged it (before redaction) and as it was written (after)."""
    raw = f"{record.getMessage()} {record.args!r} {vars(record)!r}"
    return raw + JsonFormatter().format(record)


def said(response: httpx2.Response, allowed: list[str]) -> dict[str, str]:
    """What the BFF told the browser in ``response``, minus the ``allowed`` token spots."""
    body = response.text
    for spot in allowed:
        body = body.replace(spot, "")
    return {
        "body": body,
        "headers": "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items()),
        "url": str(response.url),
    }


@pytest.mark.parametrize(("connection", "delivery"), matrix(refused=True))
def test_a_credential_for_the_whole_connection_is_refused_outside_the_proxy(
    settings: Settings, clock: ManualClock, connection: DemoConnection, delivery: DeliveryMode
) -> None:
    vendor = vendor_for(connection, clock)
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env(serve_env(settings, vendor.config, connection, delivery), env_file=None)
    assert str(refused.value) == refusal(connection, delivery)
    for secret in connection_secrets(vendor):
        assert secret not in str(refused.value)


@pytest.mark.parametrize(("connection", "delivery"), matrix(refused=False))
def test_tokens_appear_only_where_the_mode_allows(
    settings: Settings,
    clock: ManualClock,
    connection: DemoConnection,
    delivery: DeliveryMode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    vendor = vendor_for(connection, clock)
    served = Settings.from_env(
        serve_env(settings, vendor.config, connection, delivery), env_file=None
    )
    app = create_app(served, clock=clock, vendor_transport=vendor)
    with (
        caplog.at_level(logging.DEBUG),
        TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as client,
    ):
        responses = browse(client, vendor, delivery)
        cookies = [cookie.value or "" for cookie in client.cookies.jar]

    pair_scoped = served.upstream.pair_scoped
    assert len(vendor.tokens) == (2 if pair_scoped else 0), "one token per pair visited"
    if connection.kind in ("apikey-jwt", "oauth2-client-credentials"):
        assert vendor.credentials, "the connection's credential was fetched"
    if delivery == "proxy" and pair_scoped:
        forwarded = {
            r.headers.get("authorization")
            for r in vendor.requests
            if r.url.path.startswith("/dashboard/")
        }
        assert forwarded <= {f"Bearer {token}" for token in vendor.tokens}

    spots = [spot for token in vendor.tokens if (spot := allowed_spot(delivery, token))]
    for spot in spots:
        (page,) = [response for response in responses if spot in response.text]
        assert page.text.count(spot) == 1
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"
    never_shown = connection_secrets(vendor)
    never_shown += [part for token in vendor.tokens for part in signed_parts(token)]
    for response in responses:
        assert "all tenants" not in response.text
        for where, text in said(response, spots).items():
            for secret in never_shown:
                assert secret not in text, f"a secret in the {where} of {response.url}"
    for value in cookies:
        assert not any(secret in value for secret in never_shown)
    for record in caplog.records:
        text = record_text(record)
        assert not any(secret in text for secret in never_shown), record.getMessage()
