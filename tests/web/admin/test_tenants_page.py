"""``/admin/tenants``: create, rename, refusals naming the field, deletes with their
confirmation step (cascading while in use), escaping, and the audit trail."""

from __future__ import annotations

from datetime import timedelta

from starlette.testclient import TestClient

from bff.broker.connectors import HeaderExchangeConnector
from bff.broker.scope import TokenScope, VendorToken
from bff.operations import audit, tenants
from tests.web.admin.helpers import ADMIN, MEMBER, activate
from tests.web.helpers import call, form_token, make_user, other_browser, services_of, sign_in

PATH = "/admin/tenants"


def _admin(client: TestClient) -> tuple[TestClient, str]:
    """A signed-in admin's browser and its form token."""
    make_user(client, ADMIN, is_admin=True)
    browser = other_browser(client)
    assert sign_in(browser, ADMIN).status_code == 303
    return browser, form_token(browser.get(PATH).text)


def _listed(client: TestClient) -> list[tenants.TenantView]:
    return call(client, lambda: tenants.list_tenants(services_of(client).database))


def _actions(client: TestClient) -> list[str]:
    found = call(client, lambda: audit.list_entries(services_of(client).database))
    return [entry.action for entry in reversed(found.items)]


def test_the_empty_page_asks_for_the_first_tenant(client: TestClient) -> None:
    browser, _ = _admin(client)
    page = browser.get(PATH)
    assert page.status_code == 200
    assert "Create your first tenant" in page.text
    assert 'aria-current="page">Tenants' in page.text


def test_create_a_tenant_and_a_sub_tenant_then_rename_both(client: TestClient) -> None:
    browser, token = _admin(client)
    created = browser.post(PATH, data={"csrf_token": token, "id": " acme ", "name": ""})
    assert (created.status_code, created.headers["location"]) == (
        303,
        f"{PATH}?done=tenant-created",
    )
    sub = browser.post(
        f"{PATH}/acme/sub-tenants", data={"csrf_token": token, "id": "north", "name": "North"}
    )
    assert (sub.status_code, sub.headers["location"]) == (303, f"{PATH}?done=sub-tenant-created")
    renamed = browser.post(f"{PATH}/acme/rename", data={"csrf_token": token, "name": "Acme Inc"})
    assert renamed.status_code == 303
    sub_renamed = browser.post(
        f"{PATH}/acme/sub-tenants/north/rename", data={"csrf_token": token, "name": "Nord"}
    )
    assert sub_renamed.status_code == 303
    assert _listed(client) == [
        tenants.TenantView("acme", "Acme Inc", [tenants.SubTenantView("north", "Nord")])
    ]
    page = browser.get(sub_renamed.headers["location"])
    assert "Name changed." in page.text
    assert "Acme Inc" in page.text and "Nord" in page.text
    assert _actions(client) == [
        "tenant.create",
        "sub_tenant.create",
        "tenant.rename",
        "sub_tenant.rename",
    ]


def test_refusals_name_the_field_and_keep_the_input(client: TestClient) -> None:
    browser, token = _admin(client)
    bad = browser.post(PATH, data={"csrf_token": token, "id": "-acme", "name": "Kept name"})
    assert bad.status_code == 422
    assert "tenant id &#39;-acme&#39; may contain only letters" in bad.text
    assert 'value="-acme"' in bad.text and 'value="Kept name"' in bad.text
    assert browser.post(PATH, data={"csrf_token": token, "id": "acme"}).status_code == 303
    twice = browser.post(PATH, data={"csrf_token": token, "id": "acme"})
    assert twice.status_code == 409
    assert "a tenant acme already exists" in twice.text
    long_sub = browser.post(f"{PATH}/acme/sub-tenants", data={"csrf_token": token, "id": "x" * 65})
    assert long_sub.status_code == 422
    assert "sub-tenant id is longer than 64 characters" in long_sub.text
    assert f'value="{"x" * 65}"' in long_sub.text
    orphan = browser.post(f"{PATH}/beta/sub-tenants", data={"csrf_token": token, "id": "one"})
    assert orphan.status_code == 404
    assert "no tenant beta" in orphan.text
    control = browser.post(f"{PATH}/acme/rename", data={"csrf_token": token, "name": "a\x01b"})
    assert control.status_code == 422
    assert "name contains control characters" in control.text
    assert _listed(client) == [tenants.TenantView("acme", "acme", [])]
    assert _actions(client) == ["tenant.create"]


def test_deleting_an_unused_tenant_asks_first(client: TestClient) -> None:
    browser, token = _admin(client)
    make_user(client, MEMBER, scopes=[("acme", "north")])  # acme is in use; beta is not
    assert browser.post(PATH, data={"csrf_token": token, "id": "beta"}).status_code == 303
    asked = browser.post(f"{PATH}/beta/delete", data={"csrf_token": token})
    assert asked.status_code == 200
    assert "Delete the tenant beta?" in asked.text
    assert 'name="cascade"' not in asked.text
    assert [t.id for t in _listed(client)] == ["acme", "beta"]
    done = browser.post(f"{PATH}/beta/delete", data={"csrf_token": token, "confirm": "yes"})
    assert (done.status_code, done.headers["location"]) == (303, f"{PATH}?done=deleted")
    assert [t.id for t in _listed(client)] == ["acme"]
    assert _actions(client) == ["tenant.create", "tenant.delete"]


def test_deleting_a_pair_in_use_cascades_only_when_confirmed(client: TestClient) -> None:
    browser, token = _admin(client)
    svc = services_of(client)
    make_user(client, MEMBER, scopes=[("acme", "north"), ("acme", "south")])
    member = other_browser(client)
    sign_in(member, MEMBER)
    activate(member, ("acme", "north"))
    assert member.get("/_probe/whoami").text == f"{MEMBER} acme/north"
    # A cached vendor token for each pair.
    svc.broker.add_connection("default", HeaderExchangeConnector("http://vendor.test", "k", "s"))
    now = svc.clock.now()
    token_of = VendorToken("v", now + timedelta(hours=1), now)
    north, south = TokenScope("default", "acme", "north"), TokenScope("default", "acme", "south")

    async def seed_tokens() -> None:
        for scope in (north, south):
            await svc.broker._cache.set(scope, token_of)

    call(client, seed_tokens)
    url = f"{PATH}/acme/sub-tenants/north/delete"

    asked = browser.post(url, data={"csrf_token": token})
    assert asked.status_code == 200
    assert "The sub-tenant north of acme is in use." in asked.text
    assert "1 mapping(s) will be removed" in asked.text
    assert '<input type="hidden" name="cascade" value="yes">' in asked.text
    # A confirmation without the cascade (a page from before the mapping) is refused.
    refused = browser.post(url, data={"csrf_token": token, "confirm": "yes"})
    assert refused.status_code == 409
    assert "came into use after the first step" in refused.text
    assert member.get("/_probe/whoami").status_code == 200
    assert _listed(client)[0].sub_tenants == [
        tenants.SubTenantView("north", "north"),
        tenants.SubTenantView("south", "south"),
    ]

    done = browser.post(url, data={"csrf_token": token, "confirm": "yes", "cascade": "yes"})
    assert (done.status_code, done.headers["location"]) == (303, f"{PATH}?done=deleted")
    assert _listed(client)[0].sub_tenants == [tenants.SubTenantView("south", "south")]
    ended = member.get("/_probe/whoami")
    assert ended.status_code == 303 and "reason=expired" in ended.headers["location"]
    assert call(client, lambda: svc.broker._cache.get(north)) is None
    assert call(client, lambda: svc.broker._cache.get(south)) == token_of
    assert _actions(client) == ["sub_tenant.delete"]
    # The tenant's own confirmation counts what is left.
    asked = browser.post(f"{PATH}/acme/delete", data={"csrf_token": token})
    assert "1 sub-tenant(s) will be deleted." in asked.text
    assert "1 mapping(s) will be removed" in asked.text


def test_names_render_escaped(client: TestClient) -> None:
    browser, token = _admin(client)
    name = "<script>alert(\"x\")</script> 'Zoë' 東京"
    assert browser.post(PATH, data={"csrf_token": token, "id": "acme", "name": name}).status_code
    page = browser.get(PATH)
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &#39;Zoë&#39; 東京" in page.text
    assert _listed(client)[0].name == name
