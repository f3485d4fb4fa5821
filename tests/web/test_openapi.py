"""The API description matches the route table, and its page renders without a script."""

from __future__ import annotations

from starlette.routing import Route
from starlette.testclient import TestClient

from bff.web.openapi import OPERATIONS


def _api_routes(client: TestClient) -> set[tuple[str, str]]:
    found = set()
    for route in client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Route) and route.path.startswith("/api/v1/"):
            found |= {(method, route.path) for method in (route.methods or set()) - {"HEAD"}}
    return found


def test_every_api_route_is_described_and_nothing_else(client: TestClient) -> None:
    described = {(op.method, op.path) for op in OPERATIONS}
    assert described == _api_routes(client)


def test_the_document_is_openapi_3_1(client: TestClient) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"] == "3.1.0"
    assert spec["servers"] == [{"url": "https://testserver"}]
    create = spec["paths"]["/api/v1/users"]["post"]
    assert set(create["responses"]) == {"201", "400", "401", "403", "409", "413", "422"}
    assert create["requestBody"]["content"]["application/json"]["schema"]["required"] == ["email"]
    delete = spec["paths"]["/api/v1/tenants/{tenant_id}"]["delete"]
    assert {p["name"] for p in delete["parameters"]} == {"tenant_id", "cascade"}


def test_the_docs_page_lists_every_operation(client: TestClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for op in OPERATIONS:
        assert f"<code>{op.path}</code>" in page.text
    assert "<script" not in page.text
    assert 'href="/api/openapi.json"' in page.text
