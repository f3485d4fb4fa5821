"""The audit log: every write recorded with who, what, target and when; never a secret."""

from __future__ import annotations

from sqlalchemy import select
from starlette.testclient import TestClient

from bff.operations import audit
from bff.store.models import AuditEntry
from tests.web.admin.helpers import ADMIN, MEMBER, admin_headers, member_headers
from tests.web.helpers import PASSWORD, call, services_of


def test_writes_are_audited_and_filterable(client: TestClient) -> None:
    headers = admin_headers(client)
    client.post("/api/v1/tenants", headers=headers, json={"id": "acme"})
    client.post("/api/v1/tenants/acme/sub-tenants", headers=headers, json={"id": "north"})
    client.post("/api/v1/users", headers=headers, json={"email": MEMBER, "password": PASSWORD})
    client.put(
        f"/api/v1/users/{MEMBER}/mappings",
        headers=headers,
        json={"items": [{"tenant_id": "acme", "sub_tenant_id": "north"}]},
    )
    client.patch(f"/api/v1/users/{MEMBER}", headers=headers, json={"disabled": True})
    client.delete("/api/v1/tenants/acme?cascade=true", headers=headers)
    client.get("/api/v1/users", headers=headers)  # reads are not audited

    log = client.get("/api/v1/audit", headers=headers).json()
    assert [(e["actor"], e["action"], e["target"]) for e in log["items"]] == [
        (ADMIN, "tenant.delete", "acme"),
        (ADMIN, "user.update", MEMBER),
        (ADMIN, "mapping.replace", MEMBER),
        (ADMIN, "user.create", MEMBER),
        (ADMIN, "sub_tenant.create", "acme/north"),
        (ADMIN, "tenant.create", "acme"),
        ("test", "api_key.create", f"{ADMIN} main"),
    ]
    assert log["next_page"] is None
    assert log["items"][0]["at"].endswith("Z")
    only = client.get("/api/v1/audit?action=user.update", headers=headers).json()["items"]
    assert [e["target"] for e in only] == [MEMBER]
    by_actor = client.get("/api/v1/audit", params={"actor": "test"}, headers=headers).json()
    assert [e["action"] for e in by_actor["items"]] == ["api_key.create"]


def test_the_log_holds_no_secret(client: TestClient) -> None:
    headers = admin_headers(client)
    member = member_headers(client)
    token = client.post("/api/v1/user/keys", headers=member, json={"handle": "ci"}).json()["token"]
    created = client.post("/api/v1/users", headers=headers, json={"email": "link@example.com"})
    link_token = created.json()["set_password_url"].rsplit("=", 1)[1]
    client.post(
        "/api/v1/users", headers=headers, json={"email": "pw@example.com", "password": PASSWORD}
    )

    async def everything() -> str:
        async with services_of(client).database.session() as db:
            rows = (await db.execute(select(AuditEntry))).scalars().all()
            return repr([(r.actor, r.action, r.target, r.detail) for r in rows])

    stored = call(client, everything)
    assert "api_key.create" in stored
    for secret in (token, link_token, PASSWORD):
        assert secret not in stored


def test_pages(client: TestClient) -> None:
    headers = admin_headers(client)
    svc = services_of(client)

    async def many() -> None:
        async with svc.database.session() as db:
            for n in range(audit.PAGE_SIZE + 5):
                await audit.record(db, ADMIN, "test.entry", f"t{n}")

    call(client, many)
    first = client.get("/api/v1/audit?action=test.entry", headers=headers).json()
    assert (len(first["items"]), first["next_page"]) == (audit.PAGE_SIZE, 2)
    assert first["items"][0]["target"] == f"t{audit.PAGE_SIZE + 4}"
    second = client.get("/api/v1/audit?action=test.entry&page=2", headers=headers).json()
    assert ([e["target"] for e in second["items"]], second["next_page"]) == (
        [f"t{n}" for n in range(4, -1, -1)],
        None,
    )
