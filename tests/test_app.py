from __future__ import annotations

import dataclasses
import re

import pytest
from sqlalchemy import text
from starlette.routing import Route
from starlette.testclient import TestClient

from bff.app import create_app
from bff.errors import ConfigurationError
from bff.settings import Settings, UpstreamSettings
from bff.store.database import Database, create_engine
from bff.store.migrate import upgrade


def boom(request: object) -> None:
    raise RuntimeError("internal detail: api_secret=hunter2hunter2")


@pytest.fixture
def client(base_settings: Settings) -> TestClient:
    app = create_app(base_settings)
    app.router.routes.append(Route("/boom", boom))
    app.router.routes.append(Route("/api/boom", boom))
    return TestClient(app, raise_server_exceptions=False)


def test_health_and_readiness(client: TestClient) -> None:
    with client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"database": True}}


def test_metrics_are_prometheus_text_labelled_by_route(client: TestClient) -> None:
    with client:
        client.get("/healthz")
        client.get("/no/such/page/123")
        body = client.get("/metrics").text
    assert 'bff_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in body
    assert 'route="unmatched",status="404"' in body
    assert "/no/such/page/123" not in body


def test_a_client_cannot_mint_metric_labels_with_made_up_methods(client: TestClient) -> None:
    with client:
        client.request("BREW", "/healthz")
        body = client.get("/metrics").text
    assert "BREW" not in body
    assert 'method="OTHER",route="/healthz"' in body


def test_404_is_a_friendly_page(client: TestClient) -> None:
    with client:
        response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "There is nothing at this address." in response.text


def test_api_errors_are_problem_details(client: TestClient) -> None:
    with client:
        response = client.get("/api/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "There is nothing at this address.",
    }


def test_500_shows_no_traceback_or_detail(client: TestClient) -> None:
    with client:
        page = client.get("/boom", headers={"X-Request-ID": "req-abcdef123456"})
        api = client.get("/api/boom")
    assert page.status_code == 500
    assert "Traceback" not in page.text
    assert "hunter2" not in page.text and "internal detail" not in page.text
    assert "req-abcdef123456" in page.text  # the reference an operator can grep for
    assert api.status_code == 500
    assert api.headers["content-type"] == "application/problem+json"
    assert "hunter2" not in api.text


def test_request_id_header(client: TestClient) -> None:
    with client:
        kept = client.get("/healthz", headers={"X-Request-ID": "abcdef-123456"})
        replaced = client.get("/healthz", headers={"X-Request-ID": "bad id\r\nx"})
    assert kept.headers["X-Request-ID"] == "abcdef-123456"
    assert replaced.headers["X-Request-ID"] != "bad id\r\nx"
    assert len(replaced.headers["X-Request-ID"]) == 16


def test_a_request_id_that_looks_like_a_token_is_not_echoed(
    client: TestClient, base_settings: Settings
) -> None:
    """An id is repeated in headers, error pages and log lines: a JWT-shaped one or a
    configured key sent as an id is replaced, not carried along unredacted."""
    jwt_shaped = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    key = base_settings.secret_keys[0]
    assert 8 <= len(key) <= 64  # else the id pattern alone would refuse it
    with client:
        answers = [
            client.get("/healthz", headers={"X-Request-ID": value}).headers["X-Request-ID"]
            for value in (jwt_shaped, key)
        ]
    assert [len(answer) for answer in answers] == [16, 16]
    assert jwt_shaped not in answers and key not in answers


def test_static_files(client: TestClient) -> None:
    with client:
        response = client.get("/static/bff.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")


def test_pages_link_the_stylesheet_site_relative_and_versioned(client: TestClient) -> None:
    """Never built from the Host header, and a new stylesheet gets a new URL."""
    with client:
        page = client.get("/nowhere", headers={"Host": "evil.example"})
        link = re.search(r'<link rel="stylesheet" href="([^"]+)"', page.text)
        assert link is not None
        assert re.fullmatch(r"/static/bff\.css\?v=[0-9a-f]{12}", link[1])
        assert client.get(link[1]).status_code == 200


@pytest.mark.postgres
@pytest.mark.anyio
async def test_readyz_reports_an_unreachable_database(
    base_settings: Settings, postgres_url: str
) -> None:
    database = Database(postgres_url)
    await upgrade(database.engine)
    await database.dispose()
    settings = dataclasses.replace(base_settings, database_url=postgres_url)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        name = postgres_url.rsplit("/", 1)[1]
        admin = create_engine(postgres_url.rsplit("/", 1)[0] + "/postgres")
        async with admin.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
            await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": False}


def test_the_app_can_start_twice(base_settings: Settings) -> None:
    """Metrics are registered once per app, not per lifespan, so a restart does not clash."""
    app = create_app(base_settings)
    for _ in range(2):
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200


def test_settings_built_in_code_cannot_put_a_connection_wide_token_in_pages(
    base_settings: Settings,
) -> None:
    """Settings.from_env refuses this; create_app refuses it for settings made otherwise."""
    wide = dataclasses.replace(
        base_settings,
        upstream=UpstreamSettings(
            kind="static-bearer", base_url="https://vendor.example", api_key="static-key-123456"
        ),
        dashboard_url="https://vendor.example/embed/",
        dashboard_delivery="post",
    )
    with pytest.raises(ConfigurationError) as caught:
        create_app(wide)
    assert caught.value.setting == "BFF_DASHBOARD_DELIVERY"
