"""CSV import over the admin API, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import anyio.to_process
import pytest
from starlette.testclient import TestClient

from bff.operations import mapping_csv, mapping_plan
from bff.settings import Settings
from tests.web.admin.helpers import ADMIN, MEMBER, admin_headers
from tests.web.conftest import PUBLIC_URL
from tests.web.helpers import make_user

HEADER = "email,tenant_id,sub_tenant_id\n"
CSV = {"Content-Type": "text/csv"}
URL = "/api/v1/mappings/import"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, base_settings: Settings) -> Settings:
    settings = dataclasses.replace(base_settings, public_url=PUBLIC_URL)
    if request.param == "sqlite":
        return settings
    url: str = request.getfixturevalue("migrated_postgres_url")
    return dataclasses.replace(settings, database_url=url)


def _mappings(client: TestClient, headers: dict[str, str]) -> str:
    return client.get("/api/v1/mappings/export", headers=headers).text


def test_merge_applies_and_reports(client: TestClient) -> None:
    headers = admin_headers(client)
    make_user(client, MEMBER, scopes=[("acme", "north"), ("acme", "south")])
    client.put(f"/api/v1/users/{MEMBER}/mappings", headers=headers, json={"items": []})
    body = f"\ufeff{HEADER}{MEMBER},acme,north\r\n".encode()
    response = client.post(URL, headers={**headers, **CSV}, content=body)
    assert response.status_code == 200
    assert response.json() == {
        "added": 1,
        "removed": 0,
        "unchanged": 0,
        "errors": [],
        "removals": [],
        "dry_run": False,
        "applied": True,
    }
    assert _mappings(client, headers) == f"{HEADER}{MEMBER},acme,north\n"


def test_any_error_is_422_by_line_and_nothing_applied(client: TestClient) -> None:
    headers = admin_headers(client)
    make_user(client, MEMBER, scopes=[("acme", "north")])
    before = _mappings(client, headers)
    body = f"{HEADER}{MEMBER},acme,north\nnobody@example.com,acme,north\n{MEMBER},acme,north\n"
    response = client.post(URL + "?mode=replace", headers={**headers, **CSV}, content=body.encode())
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"line": 3, "message": "no user nobody@example.com"},
        {"line": 4, "message": "duplicate of line 2"},
    ]
    assert response.json()["applied"] is False
    assert _mappings(client, headers) == before


def test_replace_dry_run_lists_removals_then_apply_removes(client: TestClient) -> None:
    headers = admin_headers(client)
    make_user(client, MEMBER, scopes=[("acme", "north"), ("acme", "south")])
    body = f"{HEADER}{MEMBER},acme,south\n".encode()
    preview = client.post(
        URL + "?mode=replace&dry_run=true", headers={**headers, **CSV}, content=body
    )
    assert preview.status_code == 200
    assert preview.json()["removals"] == [
        {"email": MEMBER, "tenant_id": "acme", "sub_tenant_id": "north"}
    ]
    assert (preview.json()["removed"], preview.json()["applied"]) == (1, False)
    assert "acme,north" in _mappings(client, headers)
    applied = client.post(URL + "?mode=replace", headers={**headers, **CSV}, content=body)
    assert applied.json()["applied"] is True
    assert _mappings(client, headers) == f"{HEADER}{MEMBER},acme,south\n"


def test_bad_parameters_and_media_type(client: TestClient) -> None:
    headers = admin_headers(client)
    body = HEADER.encode()
    assert (
        client.post(URL + "?mode=sync", headers={**headers, **CSV}, content=body).status_code == 422
    )
    assert (
        client.post(URL + "?dry_run=1", headers={**headers, **CSV}, content=body).status_code == 422
    )
    wrong = client.post(URL, headers={**headers, "Content-Type": "application/json"}, content=b"{}")
    assert wrong.status_code == 415


def test_a_file_larger_than_the_json_limit_is_accepted(client: TestClient) -> None:
    headers = admin_headers(client)
    rows = "".join(f"u{n}@example.com,acme,north\n" for n in range(5000))
    response = client.post(
        URL + "?dry_run=true", headers={**headers, **CSV}, content=(HEADER + rows).encode()
    )
    assert len(HEADER + rows) > 64 * 1024
    assert response.status_code == 422  # unknown users, but read and checked whole
    assert response.json()["errors"][0] == {"line": 2, "message": "no user u0@example.com"}


def test_planning_runs_off_the_event_loop(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While an import is being parsed and planned, other requests are answered."""
    headers = admin_headers(client)
    planning = threading.Event()
    release = threading.Event()
    real_plan = mapping_plan.plan

    def slow_plan(*args: Any) -> mapping_plan.Plan:
        planning.set()
        assert release.wait(10), "the other request was never answered"
        return real_plan(*args)

    monkeypatch.setattr(mapping_plan, "plan", slow_plan)
    results: list[int] = []
    importer = threading.Thread(
        target=lambda: results.append(
            client.post(URL, headers={**headers, **CSV}, content=HEADER.encode()).status_code
        )
    )
    importer.start()
    try:
        assert planning.wait(10)
        assert client.get("/healthz").status_code == 200
    finally:
        release.set()
        importer.join(10)
    assert results == [200]


def test_a_large_file_is_planned_in_a_worker_process(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = admin_headers(client)
    make_user(client, MEMBER, scopes=[("acme", "north"), ("acme", "south")])
    # Every import counts as large, and each statement takes one row.
    monkeypatch.setattr(mapping_csv, "IN_THREAD_BELOW", 0)
    monkeypatch.setattr(mapping_csv, "CHUNK", 1)
    sent: list[object] = []
    real_run_sync = anyio.to_process.run_sync

    async def run_sync(function: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(function)
        return await real_run_sync(function, *args, **kwargs)

    monkeypatch.setattr(anyio.to_process, "run_sync", run_sync)
    body = f"{HEADER}{MEMBER},acme,south\n{ADMIN},acme,north\n{ADMIN},acme,south\n".encode()
    response = client.post(URL + "?mode=replace", headers={**headers, **CSV}, content=body)
    assert response.status_code == 200
    assert response.json() == {
        "added": 2,
        "removed": 1,
        "unchanged": 1,
        "errors": [],
        "removals": [{"email": MEMBER, "tenant_id": "acme", "sub_tenant_id": "north"}],
        "dry_run": False,
        "applied": True,
    }
    assert sent == [mapping_plan.plan_in_worker]
    assert _mappings(client, headers) == (
        f"{HEADER}{MEMBER},acme,south\n{ADMIN},acme,north\n{ADMIN},acme,south\n"
    )
