"""The operations' refusals become problem+json under /api/ and friendly pages elsewhere."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from bff.errors import (
    AlreadyExistsError,
    DatabaseBusyError,
    InUseError,
    InvalidInputError,
    NotFoundError,
    RevokedError,
)
from bff.passwords import WeakPasswordError

REFUSALS: dict[str, tuple[Exception, int]] = {
    "invalid": (InvalidInputError("name is too long", field="name"), 422),
    "weak": (WeakPasswordError("the password is too easy to guess"), 422),
    "missing": (NotFoundError("no user x@example.com"), 404),
    "exists": (AlreadyExistsError("a tenant acme already exists"), 409),
    "in-use": (InUseError("acme is used by 1 mapping(s)"), 409),
    "revoked": (RevokedError("partner app 3 is revoked; create a new one"), 409),
}


@pytest.fixture
def app(app: Starlette) -> Starlette:
    async def refuse(request: Request) -> Response:
        raise REFUSALS[request.path_params["kind"]][0]

    async def busy(request: Request) -> Response:
        raise DatabaseBusyError("the database is busy")

    app.router.routes.extend(
        [
            Route("/api/_refuse/{kind}", refuse),
            Route("/_refuse/{kind}", refuse),
            Route("/api/_busy", busy),
            Route("/_busy", busy),
        ]
    )
    return app


def test_a_busy_database_is_503_with_retry_after(client: TestClient) -> None:
    for path, media_type in (("/api/_busy", "application/problem+json"), ("/_busy", "text/html")):
        response = client.get(path)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "2"
        assert response.headers["content-type"].startswith(media_type)
        assert "Traceback" not in response.text


@pytest.mark.parametrize("kind", sorted(REFUSALS))
def test_refusals_are_problems_under_the_api(client: TestClient, kind: str) -> None:
    error, status = REFUSALS[kind]
    response = client.get(f"/api/_refuse/{kind}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["detail"]) == (status, str(error))
    assert body.get("field") == getattr(error, "field", None)


@pytest.mark.parametrize("kind", sorted(REFUSALS))
def test_refusals_are_pages_elsewhere(client: TestClient, kind: str) -> None:
    error, status = REFUSALS[kind]
    response = client.get(f"/_refuse/{kind}")
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert str(error) in response.text
    assert "Traceback" not in response.text
