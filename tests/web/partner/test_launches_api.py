"""``POST /api/v1/embed/launches``: a launch URL for the app's own pairs and origins only,
bad input named by field, and the per-app rate limit."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from bff.clock import ManualClock
from bff.operations import launches
from bff.store.models import EmbedTicket, User
from bff.web.partner import limits
from tests.web.helpers import call, make_user, services_of
from tests.web.partner.test_token import (
    ACME,
    GLOBEX,
    LAUNCH,
    LAUNCHES,
    ORIGIN,
    Partner,
    bearer_headers,
    launch,
    make_partner,
    request_token,
    seed_pairs,
)


@pytest.fixture
def partner(client: TestClient) -> Partner:
    seed_pairs(client, (ACME, GLOBEX, ("acme", "south")))
    return make_partner(client)


@pytest.fixture
def token(client: TestClient, partner: Partner) -> str:
    return request_token(client, partner)


def _ticket(url: str) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://testserver/embed/launch"
    (ticket,) = parse_qs(parts.query)["ticket"]
    return ticket


def _redeem(client: TestClient, ticket: str) -> launches.Redeemed:
    svc = services_of(client)
    return call(client, lambda: launches.redeem(svc.database, ticket, now=svc.clock.now()))


def _refused(response: Any, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body.get("field") == field


def test_a_launch_is_a_single_use_url_valid_60_s(
    client: TestClient, partner: Partner, token: str
) -> None:
    response = launch(client, token, {**LAUNCH, "user": {"id": "42", "name": "Ann"}})
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"url", "expires_in"}
    assert body["expires_in"] == 60
    ticket = _ticket(body["url"])
    redeemed = _redeem(client, ticket)
    assert (redeemed.partner_app_id, redeemed.pair, redeemed.origin) == (
        partner.app_id,
        ACME,
        ORIGIN,
    )


def test_only_the_tickets_hash_is_stored(client: TestClient, token: str) -> None:
    ticket = _ticket(launch(client, token).json()["url"])
    database = services_of(client).database

    async def hashes() -> list[str]:
        async with database.session() as db:
            return list(await db.scalars(select(EmbedTicket.token_hash)))

    assert call(client, hashes) == [launches.hash_ticket(ticket)]


def test_the_same_partner_user_is_one_user_and_no_local_one(client: TestClient, token: str) -> None:
    """A partner's user "1" with a local user's address is neither local user 1 nor that
    user: e-mail is for display only."""
    local_id = make_user(client, "ann@example.com")
    body = {**LAUNCH, "user": {"id": str(local_id), "email": "ann@example.com"}}
    first = _redeem(client, _ticket(launch(client, token, body).json()["url"]))
    again = _redeem(client, _ticket(launch(client, token, body).json()["url"]))
    assert first.user_id == again.user_id != local_id
    database = services_of(client).database

    async def emails() -> list[str]:
        async with database.session() as db:
            return list(await db.scalars(select(User.email).order_by(User.id)))

    found = call(client, emails)
    assert found[0] == "ann@example.com"
    assert found[1].endswith(".invalid")


def test_two_apps_user_42_are_two_users(client: TestClient, partner: Partner, token: str) -> None:
    other = make_partner(client, name="Other", pairs=[ACME])
    mine = _redeem(client, _ticket(launch(client, token).json()["url"]))
    theirs = _redeem(client, _ticket(launch(client, request_token(client, other)).json()["url"]))
    assert mine.user_id != theirs.user_id


@pytest.mark.parametrize(
    "pair", [("globex", "main"), ("acme", "south"), ("nobody", "nowhere")], ids=str
)
def test_a_pair_the_app_may_not_serve_is_403(
    client: TestClient, token: str, pair: tuple[str, str]
) -> None:
    body = {**LAUNCH, "tenant_id": pair[0], "sub_tenant_id": pair[1]}
    _refused(launch(client, token, body), 403)


def test_another_apps_token_cannot_launch_this_apps_pair(
    client: TestClient, partner: Partner
) -> None:
    other = make_partner(client, name="Other", pairs=[GLOBEX])
    _refused(launch(client, request_token(client, other)), 403)


def test_origins(client: TestClient, partner: Partner) -> None:
    several = make_partner(
        client, name="Several", origins=[ORIGIN, "http://localhost:3000"], pairs=[ACME]
    )
    several_token = request_token(client, several)
    _refused(launch(client, several_token), 422, "origin")
    chosen = launch(client, several_token, {**LAUNCH, "origin": "http://localhost:3000"})
    assert chosen.status_code == 201
    assert _redeem(client, _ticket(chosen.json()["url"])).origin == "http://localhost:3000"
    token = request_token(client, partner)
    _refused(launch(client, token, {**LAUNCH, "origin": "https://evil.example"}), 403)
    _refused(launch(client, token, {**LAUNCH, "origin": "not an origin"}), 422, "origin")
    _refused(launch(client, token, {**LAUNCH, "origin": 7}), 422, "origin")
    spelled = launch(client, token, {**LAUNCH, "origin": "HTTPS://Partner.example:443"})
    assert spelled.status_code == 201
    nowhere = make_partner(client, name="Nowhere", origins=[], pairs=[ACME])
    _refused(launch(client, request_token(client, nowhere)), 403)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"user": None}, "user"),
        ({"user": "42"}, "user"),
        ({"user": {}}, "user.id"),
        ({"user": {"id": ""}}, "user.id"),
        ({"user": {"id": "a\nb"}}, "user.id"),
        ({"user": {"id": "x" * 201}}, "user.id"),
        ({"user": {"id": True}}, "user.id"),
        ({"user": {"id": "42", "email": 5}}, "user.email"),
        ({"user": {"id": "42", "name": "x" * 201}}, "user.name"),
        ({"tenant_id": None}, "tenant_id"),
        ({"tenant_id": 5}, "tenant_id"),
        ({"tenant_id": "a b"}, "tenant_id"),
        ({"sub_tenant_id": ""}, "sub_tenant_id"),
        ({"sub_tenant_id": "-x"}, "sub_tenant_id"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    client: TestClient, token: str, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**LAUNCH, **change}.items() if v is not None}
    _refused(launch(client, token, body), 422, field)


def test_a_numeric_user_id_is_its_string(client: TestClient, token: str) -> None:
    as_number = _redeem(
        client, _ticket(launch(client, token, {**LAUNCH, "user": {"id": 42}}).json()["url"])
    )
    as_text = _redeem(client, _ticket(launch(client, token).json()["url"]))
    assert as_number.user_id == as_text.user_id


@pytest.mark.parametrize(
    "content", [b"", b"not json", b"[]", b'"x"', b"\xff\xfe", b"[" * 60_000], ids=repr
)
def test_a_body_that_is_not_a_json_object_is_400(
    client: TestClient, token: str, content: bytes
) -> None:
    headers = {**bearer_headers(token), "Content-Type": "application/json"}
    _refused(client.post(LAUNCHES, content=content, headers=headers), 400)


def test_no_token_is_401_before_the_body_is_looked_at(client: TestClient) -> None:
    response = client.post(LAUNCHES, content=b"not json")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="bff"'


def test_calls_are_limited_per_app(
    client: TestClient, partner: Partner, token: str, clock: ManualClock
) -> None:
    headers = {**bearer_headers(token), "Content-Type": "application/json"}
    for _ in range(limits.REQUESTS_PER_APP):
        # Refused calls count too: the limit is on the app's calls, not its launches.
        assert client.post(LAUNCHES, content=b"[]", headers=headers).status_code == 400
    clock.advance(15)
    refused = launch(client, token)
    _refused(refused, 429)
    assert refused.headers["retry-after"] == "45"
    other = make_partner(client, name="Other", pairs=[ACME])
    assert launch(client, request_token(client, other)).status_code == 201
    clock.advance(45)
    assert launch(client, token).status_code == 201


def test_an_invalid_token_is_401_even_over_the_limit(
    client: TestClient, partner: Partner, token: str
) -> None:
    for _ in range(limits.REQUESTS_PER_APP):
        client.post(LAUNCHES, content=b"[]", headers=bearer_headers(token))
    assert launch(client, token).status_code == 429
    assert launch(client, token + "x").status_code == 401
