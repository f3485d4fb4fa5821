"""``GET /`` and the scope switcher: the pair always comes from the mappings."""

from __future__ import annotations

import re

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bff.clock import ManualClock
from bff.demo.faults import Fault
from bff.demo.vendor import VendorConfig
from bff.operations.live import Live
from bff.operations.mappings import unmap_pair
from bff.settings import Settings
from bff.store.models import User, UserScope
from bff.store.users import map_user
from bff.web.auth.access import Pair
from bff.web.auth.sessions import REVALIDATE_SECONDS
from tests.web.dashboard.fixtures import (
    ANALYST,
    ANALYST_PAIRS,
    OTHER_PAIR,
    RecordingVendor,
    dashboard_app,
    sign_in_analyst,
)
from tests.web.helpers import call, form_token, make_user, services_of, session_cookie, sign_in

_SELECTED = re.compile(r'<option value="([^"]+)" selected>')


@pytest.fixture
def vendor(clock: ManualClock) -> RecordingVendor:
    return RecordingVendor(VendorConfig(clock=clock))


@pytest.fixture
def app(settings: Settings, clock: ManualClock, vendor: RecordingVendor) -> Starlette:
    return dashboard_app(settings, clock, vendor, "post")


def selected(html: str) -> str | None:
    found = _SELECTED.search(html)
    return found.group(1) if found else None


def switch(client: TestClient, value: str | None, *, token: str | None = None) -> int:
    data = {"csrf_token": token or form_token(client.get("/").text)}
    if value is not None:
        data["scope"] = value
    return client.post("/scope", data=data).status_code


def active_pair(client: TestClient) -> tuple[str, str] | None:
    cookie = session_cookie(client)
    assert cookie is not None
    svc = services_of(client)
    session_id = svc.auth.cookies.unsign_session(cookie)
    assert session_id is not None

    async def load() -> tuple[str, str] | None:
        session = await svc.sessions.load(session_id)
        assert session is not None
        return session.scope

    return call(client, load)


def test_signed_out_visitors_are_sent_to_sign_in(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


def test_a_user_without_mappings_is_told_an_admin_must_grant_access(
    client: TestClient, vendor: RecordingVendor
) -> None:
    make_user(client, "new@example.com")
    sign_in(client, "new@example.com")
    page = client.get("/")
    assert page.status_code == 403
    assert "An administrator must grant you access" in page.text
    assert "<iframe" not in page.text
    assert vendor.requests == []


def test_one_mapping_shows_the_dashboard_without_a_switcher(
    client: TestClient, vendor: RecordingVendor
) -> None:
    sign_in_analyst(client, pairs=(("globex", "emea"),))
    page = client.get("/")
    assert page.status_code == 200
    assert '<iframe class="dashboard"' in page.text
    assert "scope-switcher" not in page.text
    assert "globex / emea" in page.text
    assert vendor.pairs_requested() == {("globex", "emea")}


def test_several_mappings_offer_a_switcher_starting_at_the_first(
    client: TestClient, vendor: RecordingVendor
) -> None:
    sign_in_analyst(client)
    page = client.get("/")
    assert page.status_code == 200
    assert selected(page.text) == "acme/north"
    for tenant, sub_tenant in ANALYST_PAIRS:
        assert f'<option value="{tenant}/{sub_tenant}"' in page.text
    assert active_pair(client) == ("acme", "north")
    assert vendor.pairs_requested() == {("acme", "north")}


def test_switching_to_a_mapped_pair(client: TestClient, vendor: RecordingVendor) -> None:
    sign_in_analyst(client)
    response = client.post(
        "/scope", data={"scope": "globex/emea", "csrf_token": form_token(client.get("/").text)}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    page = client.get("/")
    assert selected(page.text) == "globex/emea"
    assert active_pair(client) == ("globex", "emea")
    assert ("globex", "emea") in vendor.pairs_requested()


UNMAPPED_CHOICES = (
    "initech/west",  # another user's pair
    "acme/west",  # a mapped tenant, an unmapped sub-tenant
    "globex/north",  # both appear in mappings, but not together
    "acme/north/extra",
    "acme",
    "/north",
    "acme/",
    "",
    " acme/north",
    "acme/north ",
    "ACME/NORTH",
    "acme%2Fnorth",
    "../globex/emea",
    None,
)


def test_switching_to_anything_unmapped_is_refused(
    client: TestClient, vendor: RecordingVendor
) -> None:
    make_user(client, "other@example.com", scopes=(OTHER_PAIR,))
    sign_in_analyst(client)
    assert switch(client, "acme/south") == 303
    for value in UNMAPPED_CHOICES:
        assert switch(client, value) == 403, value
        assert active_pair(client) == ("acme", "south"), value
    assert OTHER_PAIR not in vendor.pairs_requested()


def test_switching_needs_the_sessions_csrf_token(client: TestClient) -> None:
    sign_in_analyst(client)
    client.get("/")
    assert client.post("/scope", data={"scope": "globex/emea"}).status_code == 403
    assert switch(client, "globex/emea", token="0" * 64) == 403
    assert active_pair(client) == ("acme", "north")


def test_switching_needs_a_session(client: TestClient) -> None:
    response = client.post("/scope", data={"scope": "acme/north", "csrf_token": "x"})
    assert response.status_code in (303, 403)
    assert response.headers.get("location", "/login").startswith("/login")


def test_tenant_named_by_query_form_or_header_is_ignored(
    client: TestClient, vendor: RecordingVendor
) -> None:
    make_user(client, "other@example.com", scopes=(OTHER_PAIR,))
    sign_in_analyst(client)
    forged = {
        "X-Tenant-Id": "initech",
        "X-Sub-Tenant-Id": "west",
        "X-Scope": "initech/west",
    }
    page = client.get(
        "/?tenant=initech&sub_tenant=west&scope=initech/west&tenant_id=initech", headers=forged
    )
    assert page.status_code == 200
    assert selected(page.text) == "acme/north"
    posted = client.post(
        "/?scope=initech/west",
        data={"tenant": "initech", "sub_tenant": "west"},
        headers=forged,
    )
    assert posted.status_code in (403, 405)
    assert vendor.pairs_requested() == {("acme", "north")}


def delete_mapping_behind_the_servers_back(client: TestClient, user_id: int, pair: Pair) -> None:
    """As if another instance or a manual SQL fix removed it: no cache is told."""

    async def delete() -> None:
        async with services_of(client).database.session() as db:
            row = await db.get(UserScope, (user_id, *pair))
            assert row is not None
            await db.delete(row)

    call(client, delete)


def test_a_remembered_pair_removed_behind_the_servers_back_stops_within_the_window(
    client: TestClient, vendor: RecordingVendor, clock: ManualClock
) -> None:
    user_id = sign_in_analyst(client)
    assert switch(client, "globex/emea") == 303
    delete_mapping_behind_the_servers_back(client, user_id, ("globex", "emea"))
    clock.advance(REVALIDATE_SECONDS)
    vendor.config.reset_counters()
    page = client.get("/")
    assert page.status_code == 200
    assert selected(page.text) == "acme/north"
    assert ("globex", "emea") not in vendor.pairs_requested()
    assert active_pair(client) == ("acme", "north")


def test_removing_a_mapping_through_the_server_takes_effect_at_once(client: TestClient) -> None:
    sign_in_analyst(client)
    assert switch(client, "acme/north") == 303
    token = form_token(client.get("/").text)
    svc = services_of(client)

    async def remove() -> None:
        live = Live(svc.sessions, svc.mappings)
        assert await unmap_pair(svc.database, "test", ANALYST, ("globex", "emea"), live=live)

    call(client, remove)
    # The session shows another pair, so it lives on; the removed pair is gone from it.
    assert switch(client, "globex/emea", token=token) == 403
    page = client.get("/")
    assert page.status_code == 200
    assert selected(page.text) == "acme/north"
    assert 'value="globex/emea"' not in page.text


def test_a_new_mapping_can_be_used_at_once(client: TestClient) -> None:
    user_id = sign_in_analyst(client, pairs=(("acme", "north"),))
    assert client.get("/").status_code == 200

    async def add() -> None:
        async with services_of(client).database.session() as db:
            user = await db.get(User, user_id)
            assert user is not None
            await map_user(db, user, "globex", "emea")

    call(client, add)
    assert switch(client, "globex/emea") == 303
    assert selected(client.get("/").text) == "globex/emea"


def test_an_expired_session_goes_to_sign_in_with_a_reason(
    client: TestClient, clock: ManualClock, settings: Settings
) -> None:
    sign_in_analyst(client)
    assert client.get("/").status_code == 200
    clock.advance(settings.session_idle_seconds + 1)
    response = client.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?reason=expired"


def test_vendor_unavailable_is_a_self_retrying_503(
    client: TestClient, vendor: RecordingVendor
) -> None:
    sign_in_analyst(client)
    vendor.config.fault = Fault.rate_limit("7")
    page = client.get("/")
    assert page.status_code == 503
    assert page.headers["retry-after"] == "7"
    assert '<meta http-equiv="refresh" content="7">' in page.text
    assert "temporarily unavailable" in page.text
    assert "Traceback" not in page.text
    vendor.config.fault = None


def test_vendor_rejecting_us_is_a_friendly_502(client: TestClient, vendor: RecordingVendor) -> None:
    sign_in_analyst(client)
    vendor.config.fault = Fault("forbidden")
    page = client.get("/")
    assert page.status_code == 502
    assert "misconfigured" in page.text
    assert "Forbidden" not in page.text.split("<main>")[1]
    assert "Traceback" not in page.text


def test_the_analyst_email_is_shown(client: TestClient) -> None:
    sign_in_analyst(client)
    assert ANALYST in client.get("/").text
