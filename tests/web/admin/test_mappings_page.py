"""``/admin/mappings``: add and remove one by one (a removal ends its sessions at once),
filters and pages, the CSV export, and the CSV import's preview and all-or-nothing apply."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from bff.operations import audit, mappings, tenants
from bff.store.users import ensure_scope
from bff.web.admin import api
from bff.web.admin import mappings as page_module
from tests.web.admin.helpers import ADMIN, MEMBER, activate
from tests.web.helpers import call, form_token, make_user, other_browser, services_of, sign_in

PATH = "/admin/mappings"
IMPORT = page_module.IMPORT_PATH
HEADER = "email,tenant_id,sub_tenant_id\n"
ANN = "ann@example.com"
_CSV_FIELD = re.compile(r'<textarea name="csv"[^>]*>\n(.*?)</textarea>', re.DOTALL)


def _admin(client: TestClient) -> tuple[TestClient, str]:
    make_user(client, ADMIN, is_admin=True)
    browser = other_browser(client)
    assert sign_in(browser, ADMIN).status_code == 303
    return browser, form_token(browser.get(PATH).text)


def _all(client: TestClient) -> list[tuple[str, str, str]]:
    found = call(client, lambda: mappings.list_mappings(services_of(client).database))
    return [(m.email, m.tenant_id, m.sub_tenant_id) for m in found.items]


def _actions(client: TestClient) -> list[str]:
    found = call(client, lambda: audit.list_entries(services_of(client).database))
    return [entry.action for entry in reversed(found.items)]


def _pairs(client: TestClient) -> None:
    """Pairs acme/north, acme/south and beta/one, nobody mapped to them."""

    async def create() -> None:
        async with services_of(client).database.session() as db:
            for pair in (("acme", "north"), ("acme", "south"), ("beta", "one")):
                await ensure_scope(db, *pair)

    call(client, create)


def _preview(browser: TestClient, token: str, data: bytes, mode: str = "merge") -> tuple[int, str]:
    response = browser.post(
        IMPORT,
        data={"csrf_token": token, "step": "preview", "mode": mode},
        files={"file": ("mappings.csv", data, "text/csv")},
    )
    return response.status_code, response.text


def _apply(browser: TestClient, token: str, text: str, mode: str = "merge") -> int:
    """Post the Apply form as a browser does: multipart, the textarea with CRLF line ends."""
    response = browser.post(
        IMPORT,
        files={
            "csrf_token": (None, token),
            "step": (None, "apply"),
            "mode": (None, mode),
            "csv": (None, text.replace("\n", "\r\n")),
        },
    )
    if response.status_code == 303:
        assert response.headers["location"] == f"{PATH}?done=imported"
    return response.status_code


def _carried(page: str) -> str:
    found = _CSV_FIELD.search(page)
    assert found, "no Apply form"
    return html.unescape(found.group(1))


def test_without_tenants_the_page_sends_the_admin_to_create_one(client: TestClient) -> None:
    browser, _ = _admin(client)
    page = browser.get(PATH)
    assert page.status_code == 200
    assert '<a href="/admin/tenants">Create a tenant</a> first' in page.text
    assert "No mappings yet." in page.text


def test_add_a_mapping_and_refusals_keep_the_input(client: TestClient) -> None:
    browser, token = _admin(client)
    _pairs(client)
    make_user(client, ANN)
    form = {"csrf_token": token, "email": " Ann@Example.com ", "tenant_id": "acme",
            "sub_tenant_id": "north"}  # fmt: skip
    added = browser.post(PATH, data=form)
    assert (added.status_code, added.headers["location"]) == (
        303,
        f"{PATH}?email=Ann%40Example.com&done=added",
    )
    assert _all(client) == [(ANN, "acme", "north")]
    assert "Mapping added." in browser.get(added.headers["location"]).text
    again = browser.post(PATH, data=form)
    assert again.headers["location"].endswith("done=exists")

    typo = browser.post(PATH, data={**form, "sub_tenant_id": "nrth"})
    assert typo.status_code == 422
    assert "no pair (acme, nrth); create the tenant and sub-tenant first" in typo.text
    assert 'value="nrth"' in typo.text and 'value=" Ann@Example.com "' in typo.text
    bad_id = browser.post(PATH, data={**form, "tenant_id": "ac me"})
    assert bad_id.status_code == 422
    assert "tenant id &#39;ac me&#39; may contain only" in bad_id.text
    nobody = browser.post(PATH, data={**form, "email": "nobody@example.com"})
    assert nobody.status_code == 404
    assert "no user nobody@example.com" in nobody.text
    bad_email = browser.post(PATH, data={**form, "email": "not-an-email"})
    assert bad_email.status_code == 422
    assert "is not a valid e-mail address" in bad_email.text
    assert _all(client) == [(ANN, "acme", "north")]
    found = call(client, lambda: tenants.list_tenants(services_of(client).database))
    assert [(t.id, [s.id for s in t.sub_tenants]) for t in found] == [
        ("acme", ["north", "south"]),
        ("beta", ["one"]),
    ]
    assert _actions(client) == ["mapping.add"]


def test_removing_a_mapping_asks_then_ends_the_sessions_showing_it(client: TestClient) -> None:
    browser, token = _admin(client)
    make_user(client, MEMBER, scopes=[("acme", "north"), ("acme", "south")])
    on_north, on_south = other_browser(client), other_browser(client)
    for member, pair in ((on_north, ("acme", "north")), (on_south, ("acme", "south"))):
        sign_in(member, MEMBER)
        activate(member, pair)
    form = {"csrf_token": token, "email": MEMBER, "tenant_id": "acme", "sub_tenant_id": "north"}
    asked = browser.post(f"{PATH}/remove", data=form)
    assert asked.status_code == 200
    assert f"Remove the mapping of {MEMBER} to acme / north?" in asked.text
    assert len(_all(client)) == 2
    done = browser.post(f"{PATH}/remove", data={**form, "confirm": "yes"})
    assert (done.status_code, done.headers["location"]) == (
        303,
        f"{PATH}?email=member%40example.com&done=removed",
    )
    assert _all(client) == [(MEMBER, "acme", "south")]
    ended = on_north.get("/_probe/whoami")
    assert ended.status_code == 303 and "reason=expired" in ended.headers["location"]
    assert on_south.get("/_probe/whoami").text == f"{MEMBER} acme/south"
    gone = browser.post(f"{PATH}/remove", data={**form, "confirm": "yes"})
    assert gone.headers["location"].endswith("done=absent")
    assert _actions(client) == ["mapping.remove"]


def test_filters_by_user_and_by_pair_and_pages(client: TestClient) -> None:
    browser, _ = _admin(client)
    for n in range(55):
        make_user(client, f"u{n:02}@example.com", scopes=[("acme", "north")])
    make_user(client, ANN, scopes=[("beta", "one"), ("acme", "north")])
    first = browser.get(PATH)
    assert first.text.count('action="/admin/mappings/remove"') == mappings.PAGE_SIZE
    assert 'href="?page=2" rel="next"' in first.text
    second = browser.get(PATH, params={"page": "2"})
    assert second.text.count('action="/admin/mappings/remove"') == 57 - mappings.PAGE_SIZE
    by_user = browser.get(PATH, params={"email": "ann@"})
    assert by_user.text.count('action="/admin/mappings/remove"') == 2
    by_pair = browser.get(PATH, params={"tenant_id": "beta", "sub_tenant_id": "one"})
    assert by_pair.text.count('action="/admin/mappings/remove"') == 1
    assert 'value="beta"' in by_pair.text and ANN in by_pair.text
    by_tenant = browser.get(PATH, params={"tenant_id": "acme", "page": "2"})
    assert by_tenant.text.count('action="/admin/mappings/remove"') == 56 - mappings.PAGE_SIZE
    assert 'href="?tenant_id=acme&amp;page=1" rel="prev"' in by_tenant.text
    none = browser.get(PATH, params={"email": "nobody"})
    assert "No mappings match these filters." in none.text


def test_export_is_a_csv_attachment_without_formulas(client: TestClient) -> None:
    browser, _ = _admin(client)
    make_user(client, "=cmd@example.com", scopes=[("acme", "north")])
    make_user(client, ANN, scopes=[("acme", "north")])
    response = browser.get(f"{PATH}/export")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="mappings.csv"'
    assert response.text == f"{HEADER}'=cmd@example.com,acme,north\n{ANN},acme,north\n"


def test_a_preview_counts_and_lists_errors_by_line_and_offers_no_apply(client: TestClient) -> None:
    browser, token = _admin(client)
    _pairs(client)
    make_user(client, ANN, scopes=[("acme", "north")])
    data = (
        HEADER
        + f"{ANN},acme,north\n"  # 2: unchanged
        + f"{ANN},acme,south\n"  # 3: added
        + "nobody@example.com,acme,north\n"  # 4
        + f"{ANN},acme\n"  # 5
        + '"<script>alert(1)</script>@x.io",acme,north\n'  # 6: an unknown user, escaped
    ).encode()
    status, page = _preview(browser, token, data)
    assert status == 422
    assert "<strong>1</strong> to add" in page and "<strong>1</strong> unchanged" in page
    assert "<td>4</td><td>no user nobody@example.com</td>" in page
    assert "<td>5</td><td>expected 3 columns" in page
    assert "<td>6</td><td>no user &lt;script&gt;alert(1)&lt;/script&gt;@x.io</td>" in page
    assert "<script>alert" not in page
    assert 'name="csv"' not in page
    assert _all(client) == [(ANN, "acme", "north")]
    assert _actions(client) == []


def test_preview_then_apply_with_a_bom(client: TestClient) -> None:
    browser, token = _admin(client)
    _pairs(client)
    make_user(client, ANN, scopes=[("acme", "north")])
    make_user(client, "zoë@example.com")
    data = "\ufeff" + HEADER + f"{ANN},acme,north\n{ANN},beta,one\nZoë@example.com,acme,south\n"
    status, page = _preview(browser, token, data.encode())
    assert status == 200
    assert "<strong>2</strong> to add" in page and "<strong>1</strong> unchanged" in page
    assert _all(client) == [(ANN, "acme", "north")]
    carried = _carried(page)
    assert carried == data.removeprefix("\ufeff")
    assert _apply(browser, token, carried) == 303
    assert _all(client) == [
        (ANN, "acme", "north"),
        (ANN, "beta", "one"),
        ("zoë@example.com", "acme", "south"),
    ]
    assert _actions(client) == ["mapping.import"]


def test_replace_lists_its_removals_and_ends_their_sessions(client: TestClient) -> None:
    browser, token = _admin(client)
    _pairs(client)
    make_user(client, ANN, scopes=[("acme", "north")])
    make_user(client, MEMBER, scopes=[("acme", "south")])
    member = other_browser(client)
    sign_in(member, MEMBER)
    activate(member, ("acme", "south"))
    status, page = _preview(browser, token, f"{HEADER}{ANN},acme,north\n".encode(), "replace")
    assert status == 200
    assert "<strong>1</strong> to remove" in page
    assert f"<td>{MEMBER}</td><td>acme</td><td>south</td>" in page
    assert 'name="mode" value="replace"' in page
    assert _apply(browser, token, _carried(page), "replace") == 303
    assert _all(client) == [(ANN, "acme", "north")]
    assert member.get("/_probe/whoami").status_code == 303


def test_an_apply_with_one_bad_line_applies_nothing(client: TestClient) -> None:
    browser, token = _admin(client)
    _pairs(client)
    make_user(client, ANN)
    good = f"{HEADER}{ANN},acme,north\n{ANN},acme,south\n"
    status, page = _preview(browser, token, good.encode())
    assert status == 200
    # Between preview and apply the text gains a bad line (or the pairs change).
    response = browser.post(
        IMPORT,
        files={"csrf_token": (None, token), "step": (None, "apply"), "mode": (None, "merge"),
               "csv": (None, _carried(page) + f"{ANN},acme,west\n")},
    )  # fmt: skip
    assert response.status_code == 422
    assert "Nothing was applied." in response.text
    assert "<td>4</td><td>no pair (acme, west)</td>" in response.text
    assert _all(client) == []
    assert _actions(client) == []


def test_an_oversized_upload_is_413_and_applies_nothing(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert page_module.MAX_CSV_BYTES == api.MAX_CSV_BYTES
    browser, token = _admin(client)
    _pairs(client)
    make_user(client, ANN)
    monkeypatch.setattr(page_module, "MAX_CSV_BYTES", 200)
    monkeypatch.setattr(page_module, "MAX_UPLOAD_BYTES", 2000)
    rows = f"{HEADER}{ANN},acme,north\n" + "\n" * 200
    status, page = _preview(browser, token, rows.encode())
    assert status == 413
    assert page_module.TOO_LARGE in html.unescape(page)
    too_long = _apply(browser, token, f"{HEADER}{ANN},acme,north\n" + "\n" * 2000)
    assert too_long == 413
    # Under the request cap but over the CSV cap: the apply step holds the same line.
    assert _apply(browser, token, f"{HEADER}{ANN},acme,north\n" + "\n" * 300) == 413

    def chunks() -> Iterator[bytes]:
        yield b"--x\r\n" + b"a" * 1500
        yield b"a" * 1500

    streamed = browser.post(
        IMPORT,
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert streamed.status_code == 413
    assert _all(client) == []
    assert _actions(client) == []


def test_an_upload_needs_a_file(client: TestClient) -> None:
    browser, token = _admin(client)
    response = browser.post(IMPORT, files={"csrf_token": (None, token), "step": (None, "preview")})
    assert response.status_code == 422
    assert "choose a CSV file to import" in response.text


def test_an_unknown_mode_is_refused_as_the_api_refuses_it(client: TestClient) -> None:
    browser, token = _admin(client)
    _pairs(client)
    make_user(client, ANN)
    status, page = _preview(browser, token, f"{HEADER}{ANN},acme,north\n".encode(), "replac")
    assert status == 422
    assert "mode must be merge or replace" in page
    assert _apply(browser, token, f"{HEADER}{ANN},acme,north\n", "everything") == 422
    assert _all(client) == []
