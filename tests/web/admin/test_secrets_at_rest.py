"""After a whole admin session, the database holds no secret in clear: no partner client
secret, personal API key token, vendor secret or set-password token, in the file, its
WAL or a dump."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from starlette.testclient import TestClient

from bff.settings import Settings
from tests.web.admin.helpers import ADMIN, admin_headers, bearer
from tests.web.helpers import form_token, other_browser, sign_in

VENDOR_SECRET = "vendor-secret-8f2b6c1d4e"
VENDOR_KEY = "vendor-key-3a9d7e5f1b"


def _database_contents(settings: Settings) -> str:
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as connection:
        dump = "\n".join(connection.iterdump())
    raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    return dump + raw.decode("latin-1")


def test_no_secret_is_stored_in_clear(client: TestClient, settings: Settings) -> None:
    headers = admin_headers(client)
    secrets: list[str] = []

    key = client.post("/api/v1/user/keys", headers=headers, json={"handle": "ci"})
    assert key.status_code == 201
    secrets.append(key.json()["token"])

    assert client.post("/api/v1/tenants", headers=headers, json={"id": "acme"}).status_code == 201
    sub = client.post("/api/v1/tenants/acme/sub-tenants", headers=headers, json={"id": "north"})
    assert sub.status_code == 201
    app = client.post(
        "/api/v1/partner-apps",
        headers=headers,
        json={
            "name": "Partner",
            "allowed_origins": ["https://partner.example"],
            "pairs": [{"tenant_id": "acme", "sub_tenant_id": "north"}],
        },
    )
    assert app.status_code == 201
    secrets.append(app.json()["client_secret"])
    renewed = client.post(f"/api/v1/partner-apps/{app.json()['id']}/secret", headers=headers)
    assert renewed.status_code == 200
    secrets.append(renewed.json()["client_secret"])

    user = client.post("/api/v1/users", headers=headers, json={"email": "new@example.com"})
    assert user.status_code == 201
    link = urlsplit(user.json()["set_password_url"])
    secrets.append(parse_qs(link.query)["token"][0])

    console = other_browser(client)
    assert sign_in(console, ADMIN).status_code == 303
    token = form_token(console.get("/admin/connections").text)
    saved = console.post(
        "/admin/connections",
        data={
            "csrf_token": token,
            "id": "eu",
            "kind": "header-exchange",
            "base_url": "https://vendor.example",
            "api_key": VENDOR_KEY,
            "api_secret": VENDOR_SECRET,
        },
    )
    assert saved.status_code == 303, saved.text
    secrets += [VENDOR_KEY, VENDOR_SECRET]
    assert client.get("/api/v1/user", headers=bearer(secrets[0])).status_code == 200

    stored = _database_contents(settings)
    for table in ("api_keys", "partner_credentials", "set_password_tokens", "vendor_connections"):
        assert table in stored
    for secret in secrets:
        assert secret not in stored
    assert "bffk_" not in stored and "bffs_" not in stored
