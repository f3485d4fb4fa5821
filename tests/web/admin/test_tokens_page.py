"""``/admin/tokens``: each cached key with expiry, last refresh and last error;
refresh now and evict, both audited; never a token value."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bff.app import create_app
from bff.broker.scope import TokenScope
from bff.clock import ManualClock
from bff.demo.faults import Fault
from bff.demo.vendor import VendorConfig
from bff.settings import Settings
from bff.store.models import AuditEntry
from tests.web.dashboard.fixtures import RecordingVendor, vendor_settings
from tests.web.helpers import call, form_token, services_of

PAIR = TokenScope("default", "acme", "north")


@pytest.fixture
def vendor(clock: ManualClock) -> RecordingVendor:
    return RecordingVendor(VendorConfig(clock=clock))


@pytest.fixture
def app(settings: Settings, clock: ManualClock, vendor: RecordingVendor) -> Starlette:
    return create_app(
        vendor_settings(settings, vendor.config, "post"), clock=clock, vendor_transport=vendor
    )


def obtain(client: TestClient, scope: TokenScope = PAIR) -> None:
    broker = services_of(client).broker
    call(client, lambda: broker.get(scope))


def post(admin: TestClient, action: str, scope: TokenScope = PAIR) -> str:
    token = form_token(admin.get("/admin/tokens").text)
    data = {
        "csrf_token": token,
        "connection_id": scope.connection_id,
        "tenant_id": scope.tenant_id,
        "sub_tenant_id": scope.sub_tenant_id,
    }
    response = admin.post(f"/admin/tokens/{action}", data=data)
    assert response.status_code == 303
    location: str = response.headers["location"]
    return location


def audited(client: TestClient) -> list[tuple[str, str, str]]:
    async def read() -> list[tuple[str, str, str]]:
        async with services_of(client).database.session() as db:
            query = select(AuditEntry.action, AuditEntry.target, AuditEntry.detail)
            rows = await db.execute(query.order_by(AuditEntry.id))
            return [(a, t, d) for a, t, d in rows.all()]

    return call(client, read)


def test_nothing_cached_is_an_empty_state(admin: TestClient) -> None:
    page = admin.get("/admin/tokens")
    assert page.status_code == 200
    assert 'aria-current="page">Tokens' in page.text
    assert "No tokens are cached in this process." in page.text
    assert "<table" not in page.text


def test_a_cached_pair_is_listed_without_its_token(
    admin: TestClient, client: TestClient, vendor: RecordingVendor
) -> None:
    obtain(client)
    page = admin.get("/admin/tokens")
    assert page.status_code == 200
    assert "<td><code>default</code></td>" in page.text
    assert "<td>acme</td><td>north</td>" in page.text
    assert '<time datetime="2026-01-01T23:59:30+00:00">2026-01-01 23:59:30</time>' in page.text
    assert "(in 23 h 59 min)" in page.text
    assert '<time datetime="2026-01-01T00:00:00+00:00">2026-01-01 00:00:00</time>' in page.text
    assert vendor.tokens and vendor.tokens[0] not in page.text


def test_refresh_now_obtains_a_new_token(
    admin: TestClient, client: TestClient, vendor: RecordingVendor, clock: ManualClock
) -> None:
    obtain(client)
    assert vendor.config.calls["token"] == 1
    clock.advance(600)
    assert post(admin, "refresh") == "/admin/tokens?done=refreshed"
    assert vendor.config.calls["token"] == 2
    page = admin.get("/admin/tokens?done=refreshed")
    assert "A new token was obtained." in page.text
    assert '<time datetime="2026-01-01T00:10:00+00:00">' in page.text
    assert "(just now)" in page.text
    assert all(token not in page.text for token in vendor.tokens)
    # The new token is the one served.
    obtain(client)
    assert vendor.config.calls["token"] == 2
    assert audited(client) == [("token.refresh", "default acme/north", '{"outcome": "ok"}')]


def test_evict_drops_the_pair(admin: TestClient, client: TestClient) -> None:
    obtain(client)
    obtain(client, TokenScope("default", "acme", "south"))
    assert post(admin, "evict") == "/admin/tokens?done=evicted"
    assert [scope for scope, _ in services_of(client).broker.cached()] == [
        TokenScope("default", "acme", "south")
    ]
    page = admin.get("/admin/tokens?done=evicted")
    assert "The token was evicted" in page.text
    assert "<td>acme</td><td>north</td>" not in page.text
    assert "<td>acme</td><td>south</td>" in page.text
    assert audited(client) == [("token.evict", "default acme/north", '{"dropped": 1}')]


def test_the_last_error_is_shown_and_a_refusal_is_not_retried(
    admin: TestClient, client: TestClient, vendor: RecordingVendor
) -> None:
    vendor.config.fault = Fault("forbidden")
    with pytest.raises(Exception, match=r"refused the request \(403\)"):
        obtain(client)
    page = admin.get("/admin/tokens")
    assert '<span class="badge bad">no valid token</span>' in page.text
    assert "the vendor refused the request (403): Forbidden" in page.text
    assert "next try in 1 min" in page.text
    assert post(admin, "refresh") == "/admin/tokens?done=refresh-failed"
    assert vendor.config.calls["token"] == 1  # the remembered refusal answered
    # Evicting forgets the refusal: the next request asks the vendor again.
    vendor.config.fault = None
    post(admin, "evict")
    obtain(client)
    assert vendor.config.calls["token"] == 2
    assert [action for action, _, _ in audited(client)] == ["token.refresh", "token.evict"]


def test_an_error_after_a_token_keeps_both(
    admin: TestClient, client: TestClient, vendor: RecordingVendor
) -> None:
    obtain(client)
    vendor.config.fault = Fault.rate_limit("30", message='Slow down, Zoë "<b>"')
    assert post(admin, "refresh") == "/admin/tokens?done=refresh-failed"
    page = admin.get("/admin/tokens")
    assert "(in 23 h 59 min)" in page.text  # the valid token keeps being served
    assert "rate limiting us (429): Slow down, Zoë &#34;&lt;b&gt;&#34;" in page.text
    assert '"<b>"' not in page.text


def test_bad_keys_are_refused(admin: TestClient) -> None:
    token = form_token(admin.get("/admin/tokens").text)
    data = {"csrf_token": token, "connection_id": "default", "tenant_id": "acme"}
    refused = admin.post("/admin/tokens/refresh", data=data)
    assert refused.status_code == 422
    assert "sub-tenant id is empty" in refused.text
    unknown = {**data, "connection_id": "nope", "sub_tenant_id": "north"}
    assert admin.post("/admin/tokens/refresh", data=unknown).status_code == 404
