"""``/admin/audit``: filters, pagination, escaping, and an empty state."""

from __future__ import annotations

from starlette.testclient import TestClient

from bff.operations import audit
from tests.web.admin.helpers import ADMIN
from tests.web.helpers import call, make_user, other_browser, services_of, sign_in


def _admin(client: TestClient) -> TestClient:
    make_user(client, ADMIN, is_admin=True)
    browser = other_browser(client)
    assert sign_in(browser, ADMIN).status_code == 303
    return browser


def _record(client: TestClient, actor: str, action: str, target: str, times: int = 1) -> None:
    async def write() -> None:
        async with services_of(client).database.session() as db:
            for _ in range(times):
                await audit.record(db, actor, action, target)

    call(client, write)


def test_the_empty_log_says_what_will_appear(client: TestClient) -> None:
    browser = _admin(client)
    page = browser.get("/admin/audit")
    assert page.status_code == 200
    assert "Nothing has been recorded yet" in page.text
    assert 'aria-current="page">Audit log' in page.text


def test_filters_and_pages(client: TestClient) -> None:
    browser = _admin(client)
    _record(client, "ann@example.com", "user.create", "bob@example.com", times=60)
    _record(client, "cy@example.com", "tenant.create", "acme")
    first = browser.get("/admin/audit", params={"actor": "ann@example.com"})
    assert first.text.count("<tr>") == 1 + audit.PAGE_SIZE
    assert "tenant.create" not in first.text
    assert 'href="?actor=ann%40example.com&amp;page=2" rel="next"' in first.text
    second = browser.get("/admin/audit", params={"actor": "ann@example.com", "page": "2"})
    assert second.text.count("<tr>") == 1 + 10
    assert 'rel="prev"' in second.text
    by_action = browser.get("/admin/audit", params={"action": "tenant.create"})
    assert "cy@example.com" in by_action.text and "bob@example.com" not in by_action.text
    none = browser.get("/admin/audit", params={"actor": "nobody@example.com"})
    assert "No entries match these filters." in none.text


def test_targets_and_filters_render_escaped(client: TestClient) -> None:
    browser = _admin(client)
    _record(client, "ann@example.com", "user.create", '<script>alert("x")</script> Zoë')
    page = browser.get("/admin/audit", params={"action": '"><script>'})
    assert "<script>alert" not in page.text
    assert 'value="&#34;&gt;&lt;script&gt;"' in page.text
    listed = browser.get("/admin/audit")
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Zoë" in listed.text
