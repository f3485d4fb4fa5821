"""``/admin/connections``: the settings' connection read-only, stored ones created,
edited, tested and deleted; secrets write-only and encrypted; tokens purged on save."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

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
from tests.conftest import random_key
from tests.web.admin.helpers import ADMIN
from tests.web.dashboard.fixtures import VENDOR_URL, RecordingVendor, vendor_settings
from tests.web.helpers import call, form_token, make_user, other_browser, services_of, sign_in

KEY = "vendor-key-3c9d1f70a2"
SECRET = "vendor-secret-8e41b6d95f"


@pytest.fixture
def vendor(clock: ManualClock) -> RecordingVendor:
    return RecordingVendor(VendorConfig(clock=clock, api_key=KEY, api_secret=SECRET))


@pytest.fixture
def settings_with_vendor(settings: Settings, vendor: RecordingVendor) -> Settings:
    return vendor_settings(settings, vendor.config, "post")


@pytest.fixture
def app(settings_with_vendor: Settings, clock: ManualClock, vendor: RecordingVendor) -> Starlette:
    return create_app(settings_with_vendor, clock=clock, vendor_transport=vendor)


def _form(**values: str) -> dict[str, str]:
    return {"kind": "header-exchange", "base_url": VENDOR_URL, **values}


def create(admin: TestClient, **values: str) -> TestClient:
    token = form_token(admin.get("/admin/connections").text)
    response = admin.post("/admin/connections", data={"csrf_token": token, **_form(**values)})
    assert response.status_code == 303, response.text
    return admin


def save(admin: TestClient, connection_id: str, **values: str) -> int:
    token = form_token(admin.get(f"/admin/connections/{connection_id}").text)
    data = {"csrf_token": token, **_form(**values)}
    return admin.post(f"/admin/connections/{connection_id}", data=data).status_code


def run_test(admin: TestClient, connection_id: str, pair: tuple[str, str]) -> str:
    token = form_token(admin.get(f"/admin/connections/{connection_id}").text)
    data = {"csrf_token": token, "tenant_id": pair[0], "sub_tenant_id": pair[1]}
    response = admin.post(f"/admin/connections/{connection_id}/test", data=data)
    assert response.status_code == 200
    return response.text


def audit_log(client: TestClient) -> list[tuple[str, str, str]]:
    async def read() -> list[tuple[str, str, str]]:
        async with services_of(client).database.session() as db:
            rows = await db.execute(
                select(AuditEntry.action, AuditEntry.target, AuditEntry.detail).order_by(
                    AuditEntry.id
                )
            )
            return [(a, t, d) for a, t, d in rows.all()]

    return call(client, read)


def cached(client: TestClient) -> list[TokenScope]:
    return [scope for scope, _ in services_of(client).broker.cached()]


def test_the_settings_connection_is_read_only_and_shows_no_secret(admin: TestClient) -> None:
    listing = admin.get("/admin/connections")
    assert listing.status_code == 200
    assert 'aria-current="page">Connections' in listing.text
    assert 'href="/admin/connections/default"' in listing.text
    assert "from settings" in listing.text
    detail = admin.get("/admin/connections/default")
    assert detail.status_code == 200
    assert "<dt>API key</dt><dd>set</dd>" in detail.text
    assert "<dt>API secret</dt><dd>set</dd>" in detail.text
    assert f"<code>{VENDOR_URL}</code>" in detail.text
    for page in (listing.text, detail.text):
        assert KEY not in page and SECRET not in page
    assert admin.get("/admin/connections/nothing-here").status_code == 404


def test_create_and_test_a_stored_connection(
    admin: TestClient, client: TestClient, vendor: RecordingVendor
) -> None:
    create(admin, id="acme-eu", api_key=KEY, api_secret=SECRET)
    page = admin.get("/admin/connections/acme-eu?done=saved")
    assert page.status_code == 200
    assert "The connection was saved" in page.text
    assert page.text.count("Set on 2026-01-01 00:00 UTC. Leave empty to keep it.") == 2
    assert "Last saved 2026-01-01 00:00 UTC." in page.text
    assert KEY not in page.text and SECRET not in page.text
    assert 'name="api_key" type="password" autocomplete="off" value=""' in page.text

    result = run_test(admin, "acme-eu", ("acme", "north"))
    assert 'class="badge ok">OK</span> The vendor issued a token for (acme, north).' in result
    assert "The token expires at <time" in result and "2026-01-01 23:59:30 UTC" in result
    assert vendor.tokens and all(token not in result for token in vendor.tokens)
    assert vendor.config.calls["token"] == 1
    assert cached(client) == [TokenScope("acme-eu", "acme", "north")]
    # Through the broker: a second test is served from the cache.
    run_test(admin, "acme-eu", ("acme", "north"))
    assert vendor.config.calls["token"] == 1
    actions = [(action, target) for action, target, _ in audit_log(client)]
    assert actions == [
        ("connection.save", "acme-eu"),
        ("connection.test", "acme-eu acme/north"),
        ("connection.test", "acme-eu acme/north"),
    ]
    for _, _, detail in audit_log(client):
        assert KEY not in detail and SECRET not in detail


def test_a_wrong_secret_shows_the_refusal(admin: TestClient, client: TestClient) -> None:
    create(admin, id="acme-eu", api_key=KEY, api_secret="not-the-secret")
    result = run_test(admin, "acme-eu", ("acme", "north"))
    assert '<span class="badge bad">Vendor refused</span>' in result
    assert "the vendor refused the request (403): Forbidden" in result
    assert cached(client) == []
    assert audit_log(client)[-1][2] == '{"outcome": "refused"}'


def test_an_unavailable_vendor_says_when_to_retry(
    admin: TestClient, vendor: RecordingVendor
) -> None:
    vendor.config.fault = Fault.rate_limit("20")
    result = run_test(admin, "default", ("acme", "north"))
    assert '<span class="badge warn">Unavailable</span>' in result
    assert "Retry in 20 s." in result


def test_saving_new_credentials_purges_the_connections_tokens(
    admin: TestClient, client: TestClient, vendor: RecordingVendor
) -> None:
    create(admin, id="acme-eu", api_key=KEY, api_secret=SECRET)
    run_test(admin, "acme-eu", ("acme", "north"))
    run_test(admin, "default", ("acme", "north"))
    assert cached(client) == [
        TokenScope("acme-eu", "acme", "north"),
        TokenScope("default", "acme", "north"),
    ]
    assert save(admin, "acme-eu", api_secret="a-new-wrong-secret") == 303
    assert cached(client) == [TokenScope("default", "acme", "north")]
    assert "the vendor refused the request (403)" in run_test(admin, "acme-eu", ("acme", "north"))
    # Empty secret fields keep the stored values.
    assert save(admin, "acme-eu", api_secret=SECRET) == 303
    assert save(admin, "acme-eu", base_url=VENDOR_URL + "/") == 303
    assert "OK</span>" in run_test(admin, "acme-eu", ("acme", "north"))
    _, _, detail = [entry for entry in audit_log(client) if entry[0] == "connection.save"][-1]
    assert '"secrets_changed": []' in detail


def test_secrets_are_encrypted_in_the_database_file(
    admin: TestClient, client: TestClient, tmp_path: Path
) -> None:
    create(admin, id="acme-eu", api_key=KEY, api_secret=SECRET)
    # The committed rows are in the file or its write-ahead log.
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("bff.db*"))
    assert b"acme-eu" in stored
    assert KEY.encode() not in stored and SECRET.encode() not in stored


@pytest.mark.parametrize(
    ("values", "message", "field"),
    [
        (
            {"base_url": "ftp://vendor.test"},
            "base URL is not a valid http/https URL: &#39;ftp://vendor.test&#39;",
            "base_url",
        ),
        ({"kind": "carrier-pigeon"}, "kind: unknown value &#39;carrier-pigeon&#39;", "kind"),
        ({"api_secret": ""}, "API secret is required for this connector kind", "api_secret"),
        (
            {"kind": "static-bearer", "api_secret": ""},
            "the connection-wide static-bearer token in every user&#39;s page",
            "pair_token_url",
        ),
        (
            {"id": '"><script>alert(1)</script>'},
            "connection id &#39;&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&#39; may contain",
            None,
        ),
    ],
)
def test_invalid_connections_are_refused_with_the_input_kept(
    admin: TestClient,
    client: TestClient,
    values: dict[str, str],
    message: str,
    field: str | None,
) -> None:
    token = form_token(admin.get("/admin/connections").text)
    data = {"csrf_token": token, **_form(id="acme-eu", api_key=KEY, api_secret=SECRET), **values}
    response = admin.post("/admin/connections", data=data)
    assert response.status_code == 422
    assert message in response.text, response.text.split('role="alert">')[-1][:300]
    assert "<script>alert" not in response.text
    assert KEY not in response.text and SECRET not in response.text
    assert '<details class="panel narrow" open>' in response.text
    if field is not None:
        assert f'name="{field}"' in response.text
        assert 'aria-invalid="true"' in response.text
    assert audit_log(client) == []


def test_options_render_escaped(admin: TestClient) -> None:
    create(
        admin,
        id="globex",
        kind="oauth2-client-credentials",
        api_key="client-1",
        api_secret="client-secret-1",
        realm='Zoë "quoted" <b>',
        pair_token_url="/api/v1/partner/dashboard/token",
    )
    page = admin.get("/admin/connections/globex")
    assert 'value="Zoë &#34;quoted&#34; &lt;b&gt;"' in page.text
    assert 'Zoë "quoted" <b>' not in page.text


def test_a_stored_default_overrides_the_settings_until_deleted(
    admin: TestClient, client: TestClient
) -> None:
    create(admin, id="default", api_key=KEY, api_secret="wrong-secret")
    listing = admin.get("/admin/connections")
    assert "stored, overrides the settings" in listing.text
    assert "from settings" not in listing.text
    assert "Vendor refused" in run_test(admin, "default", ("acme", "north"))

    page = admin.get("/admin/connections/default")
    ask = admin.post(
        "/admin/connections/default/delete", data={"csrf_token": form_token(page.text)}
    )
    assert ask.status_code == 200
    assert "Delete connection default?" in ask.text
    assert "falls back to the BFF_UPSTREAM_* settings" in ask.text
    done = admin.post(
        "/admin/connections/default/delete",
        data={"csrf_token": form_token(ask.text), "confirm": "yes"},
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/admin/connections?done=deleted"
    assert "from settings" in admin.get("/admin/connections").text
    assert "OK</span>" in run_test(admin, "default", ("acme", "north"))
    # The settings' connection itself cannot be deleted.
    again = admin.post(
        "/admin/connections/default/delete",
        data={"csrf_token": form_token(page.text), "confirm": "yes"},
    )
    assert again.status_code == 422
    actions = [action for action, _, _ in audit_log(client)]
    assert actions == ["connection.save", "connection.test", "connection.delete", "connection.test"]


def test_deleting_a_stored_connection_drops_it_and_its_tokens(
    admin: TestClient, client: TestClient
) -> None:
    create(admin, id="acme-eu", api_key=KEY, api_secret=SECRET)
    run_test(admin, "acme-eu", ("acme", "north"))
    token = form_token(admin.get("/admin/connections/acme-eu").text)
    data = {"csrf_token": token, "confirm": "yes"}
    assert admin.post("/admin/connections/acme-eu/delete", data=data).status_code == 303
    assert cached(client) == []
    assert not services_of(client).broker.has_connection("acme-eu")
    assert admin.get("/admin/connections/acme-eu").status_code == 404


def test_stored_connections_are_loaded_at_start_and_bad_rows_skipped(
    settings_with_vendor: Settings,
    clock: ManualClock,
    vendor: RecordingVendor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(settings_with_vendor, clock=clock, vendor_transport=vendor)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        make_user(client, ADMIN, is_admin=True)
        admin = other_browser(client)
        assert sign_in(admin, ADMIN).status_code == 303
        create(admin, id="acme-eu", api_key=KEY, api_secret=SECRET)
    with TestClient(
        create_app(settings_with_vendor, clock=clock, vendor_transport=vendor)
    ) as again:
        assert services_of(again).broker.has_connection("acme-eu")
    other_keys = dataclasses.replace(settings_with_vendor, encryption_keys=(random_key(),))
    with (
        caplog.at_level(logging.ERROR),
        TestClient(create_app(other_keys, clock=clock, vendor_transport=vendor)) as lost,
    ):
        broker = services_of(lost).broker
        assert not broker.has_connection("acme-eu")
        assert broker.has_connection("default")
    assert "stored vendor connection acme-eu skipped" in caplog.text
