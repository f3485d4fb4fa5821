"""Schemathesis over ``/api/openapi.json``: every ``/api/v1/`` operation, called with
generated valid and invalid input with real credentials (an administrator's API key, a
partner app's client credentials or bearer token), never answers a 5xx and always
answers as the description says: a documented status, content type and headers, and a
body that matches its schema.

The app is real (``create_app``, its lifespan run by schemathesis' ASGI transport) on
a SQLite file seeded once per module; every case moves the clock one second, so the
partner API's per-app limit (120 a minute) is not what answers. Bounded and
deterministic: a fixed seed, at most :data:`MAX_EXAMPLES` generated cases per
operation, no example database.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from bff.app import create_app
from bff.clock import ManualClock
from bff.settings import Settings
from bff.web.openapi import OPERATIONS, document
from tests.conftest import random_key
from tests.web.admin.helpers import ADMIN, key_for
from tests.web.helpers import make_user
from tests.web.partner.test_token import LAUNCH, make_partner, request_token, seed_pairs

PUBLIC_URL = "https://testserver"
MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclasses.dataclass(frozen=True)
class Api:
    schema: schemathesis.BaseSchema
    clock: ManualClock
    admin_key: str
    basic: str
    partner_token: str

    def headers(self, path: str) -> dict[str, str]:
        if path == "/api/v1/oauth/token":
            return {"Authorization": f"Basic {self.basic}"}
        if path.startswith("/api/v1/embed/"):
            return {"Authorization": f"Bearer {self.partner_token}"}
        return {"Authorization": f"Bearer {self.admin_key}"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = Settings(
        secret_keys=(random_key(),),
        encryption_keys=(random_key(),),
        database_url=f"sqlite:///{tmp_path_factory.mktemp('schemathesis') / 'bff.db'}",
        public_url=PUBLIC_URL,
    )
    clock = ManualClock()
    with TestClient(create_app(settings, clock=clock), base_url=PUBLIC_URL) as seeding:
        make_user(seeding, ADMIN, None, is_admin=True)
        admin_key = key_for(seeding, ADMIN)
        seed_pairs(seeding)
        partner = make_partner(seeding)
        partner_token = request_token(seeding, partner)
    basic = base64.b64encode(f"{partner.client_id}:{partner.secret}".encode()).decode()
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", create_app(settings, clock=clock))
    yield Api(schema, clock, admin_key, basic, partner_token)


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
@pytest.mark.parametrize(
    ("method", "path"), [(op.method, op.path) for op in OPERATIONS], ids=lambda v: v
)
def test_the_api_answers_as_described(
    api: Api, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api.schema[path][method]

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(mode))
    def run(case: schemathesis.Case[Any]) -> None:
        api.clock.advance(1)
        case.call_and_validate(headers=api.headers(path), checks=CHECKS)

    run()


def test_the_described_schema_is_the_served_one(api: Api) -> None:
    assert api.schema.raw_schema == document(PUBLIC_URL)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/v1/oauth/token", {"grant_type": "client_credentials"}, 200),
        ("/api/v1/embed/launches", LAUNCH, 201),
    ],
)
def test_the_partner_apis_successes_are_as_described(
    api: Api, path: str, body: dict[str, Any], status: int
) -> None:
    """Random input rarely names the app's pair: one sure success each, validated alike."""
    case = api.schema[path]["POST"].Case(body=body)
    response = case.call_and_validate(headers=api.headers(path), checks=CHECKS)
    assert response.status_code == status, response.text
