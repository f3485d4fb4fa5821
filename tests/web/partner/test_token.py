"""``POST /api/v1/oauth/token`` and the partner tokens it issues: form and Basic
credentials, indistinguishable refusals, the failed-attempt limits, and every way a
token must stop working (forged, wrong key, expired, new secret, revoked app, rotation).

The helpers at the top (no ``test_`` prefix) serve the other partner API tests too.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

import httpx2
import hypothesis
import pytest
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import OctKey
from starlette.testclient import TestClient

from bff.app import create_app
from bff.clock import ManualClock
from bff.operations import partner_apps, tenants
from bff.settings import Settings
from bff.web.partner import bearer, limits
from bff.web.partner.bearer import PartnerTokens
from tests.conftest import random_key
from tests.web.helpers import call, other_browser, services_of

TOKEN = "/api/v1/oauth/token"
LAUNCHES = "/api/v1/embed/launches"
ORIGIN = "https://partner.example"
ACME = ("acme", "north")
GLOBEX = ("globex", "main")
_FORM = "application/x-www-form-urlencoded"
_NONCE = re.compile(r"'nonce-[^']+'")
LAUNCH = {"user": {"id": "42"}, "tenant_id": "acme", "sub_tenant_id": "north"}


@dataclasses.dataclass(frozen=True)
class Partner:
    app_id: int
    client_id: str
    secret: str


def seed_pairs(client: TestClient, pairs: Sequence[tuple[str, str]] = (ACME, GLOBEX)) -> None:
    database = services_of(client).database

    async def create() -> None:
        known = {tenant.id for tenant in await tenants.list_tenants(database)}
        for tenant, sub in pairs:
            if tenant not in known:
                await tenants.create_tenant(database, "test", tenant, None)
                known.add(tenant)
            await tenants.create_sub_tenant(database, "test", tenant, sub, None)

    call(client, create)


def make_partner(
    client: TestClient,
    *,
    name: str = "Partner",
    origins: Sequence[str] = (ORIGIN,),
    pairs: Sequence[tuple[str, str]] = (ACME,),
) -> Partner:
    """A partner app (its pairs must exist: :func:`seed_pairs`)."""
    svc = services_of(client)
    created = call(
        client,
        lambda: partner_apps.create_app(
            svc.database, "test", name, origins, pairs, now=svc.clock.now()
        ),
    )
    return Partner(created.app.id, created.app.client_id, created.client_secret)


def form(partner: Partner, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": partner.client_id,
        "client_secret": partner.secret,
        **extra,
    }


def request_token(client: TestClient, partner: Partner) -> str:
    response = client.post(TOKEN, data=form(partner))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def launch(client: TestClient, token: str, body: dict[str, Any] | None = None) -> httpx2.Response:
    return client.post(
        LAUNCHES, headers=bearer_headers(token), json=LAUNCH if body is None else body
    )


def _basic(client_id: str, secret: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def _segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    decode = base64.urlsafe_b64decode
    return (
        json.loads(decode(header + "=" * (-len(header) % 4))),
        json.loads(decode(payload + "=" * (-len(payload) % 4))),
    )


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _assert_invalid_token(response: httpx2.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == 'Bearer realm="bff", error="invalid_token"'
    assert response.json()["status"] == 401


@pytest.fixture
def partner(client: TestClient) -> Partner:
    seed_pairs(client)
    return make_partner(client)


# Issuing.


def test_form_credentials_get_a_bearer_token(
    client: TestClient, partner: Partner, clock: ManualClock
) -> None:
    response = client.post(TOKEN, data=form(partner))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
    header, claims = _segments(body["access_token"])
    kid = bearer.key_id(bearer.derive_key(services_of(client).settings.secret_keys[0]))
    assert header == {"typ": "JWT", "alg": "HS256", "kid": kid}
    assert len(kid) == 16
    now = int(clock.now().timestamp())
    assert claims["iss"] == "https://testserver"
    assert claims["aud"] == "bff-partner"
    assert (claims["sub"], claims["app"]) == (partner.client_id, partner.app_id)
    assert (claims["iat"], claims["exp"]) == (now, now + 3600)
    assert isinstance(claims["gen"], str) and isinstance(claims["jti"], str)
    assert launch(client, body["access_token"]).status_code == 201


def test_basic_credentials_get_a_bearer_token(client: TestClient, partner: Partner) -> None:
    response = client.post(
        TOKEN,
        data={"grant_type": "client_credentials"},
        headers=_basic(partner.client_id, partner.secret),
    )
    assert response.status_code == 200, response.text
    assert launch(client, response.json()["access_token"]).status_code == 201


def test_basic_credentials_are_form_urlencoded_first(client: TestClient, partner: Partner) -> None:
    """RFC 6749 section 2.3.1: '-' may arrive as %2D; the decoded value is compared."""
    encoded_secret = partner.secret.replace("_", "%5F").replace("-", "%2D")
    response = client.post(
        TOKEN,
        data={"grant_type": "client_credentials"},
        headers=_basic(partner.client_id, encoded_secret),
    )
    assert response.status_code == 200, response.text


def test_basic_may_repeat_the_same_client_id_in_the_form(
    client: TestClient, partner: Partner
) -> None:
    response = client.post(
        TOKEN,
        data={"grant_type": "client_credentials", "client_id": partner.client_id},
        headers=_basic(partner.client_id, partner.secret),
    )
    assert response.status_code == 200


def test_each_token_is_unique(client: TestClient, partner: Partner) -> None:
    first, second = request_token(client, partner), request_token(client, partner)
    assert first != second
    assert _segments(first)[1]["jti"] != _segments(second)[1]["jti"]


# Refusals.


def _comparable(response: httpx2.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body, less what differs on every response (id, CSP nonce)."""
    headers = [
        (k, _NONCE.sub("nonce", v)) for k, v in response.headers.items() if k != "x-request-id"
    ]
    return response.status_code, headers, response.content


def test_unknown_client_and_wrong_secret_get_the_same_bytes(
    client: TestClient, partner: Partner
) -> None:
    unknown = client.post(TOKEN, data=form(partner, client_id="bffp_nobody"))
    wrong = client.post(TOKEN, data=form(partner, client_secret="bffs_wrong"))
    basic_wrong = client.post(
        TOKEN,
        data={"grant_type": "client_credentials"},
        headers=_basic(partner.client_id, "bffs_wrong"),
    )
    assert _comparable(unknown) == _comparable(wrong) == _comparable(basic_wrong)
    assert unknown.status_code == 401
    assert unknown.headers["www-authenticate"] == 'Basic realm="bff"'
    assert unknown.headers["cache-control"] == "no-store"
    assert unknown.headers["content-type"] == "application/json"
    assert unknown.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication failed.",
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "Client authentication failed.",
    }


def test_a_revoked_app_gets_the_same_bytes_as_an_unknown_client(
    client: TestClient, partner: Partner
) -> None:
    svc = services_of(client)
    call(
        client,
        lambda: partner_apps.revoke_app(svc.database, "test", partner.app_id, now=svc.clock.now()),
    )
    revoked = client.post(TOKEN, data=form(partner))
    unknown = client.post(TOKEN, data=form(partner, client_id="bffp_nobody"))
    assert _comparable(revoked) == _comparable(unknown)


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic",
        "Basic ",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\x00").decode(),
        "Basic " + base64.b64encode(b"bffp_x:%ff%fe").decode(),
        "Basic " + "A" * 10_000,
        "Bearer something",
        "Digest username=x",
        "Basic\tx",
    ],
)
def test_garbage_authorization_is_invalid_client(
    client: TestClient, partner: Partner, authorization: str
) -> None:
    response = client.post(
        TOKEN, data={"grant_type": "client_credentials"}, headers={"Authorization": authorization}
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"] == 'Basic realm="bff"'


def test_no_authorization_header_value_makes_the_endpoint_fail(client: TestClient) -> None:
    header_text = st.text(
        st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"),
        max_size=60,
    )
    encoded = st.binary(max_size=40).map(lambda raw: base64.b64encode(raw).decode())

    @hypothesis.settings(max_examples=150, derandomize=True, database=None, deadline=None)
    @hypothesis.given(value=header_text | encoded.map(lambda text: f"Basic {text}"))
    def run(value: str) -> None:
        response = client.post(
            TOKEN,
            data={"grant_type": "client_credentials"},
            headers={b"Authorization": value.encode("latin-1")},
        )
        assert response.status_code in (400, 401, 429), (value, response.text)

    run()


def test_no_credentials_at_all_is_invalid_client(client: TestClient) -> None:
    response = client.post(TOKEN, data={"grant_type": "client_credentials"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    missing_secret = client.post(
        TOKEN, data={"grant_type": "client_credentials", "client_id": "bffp_x"}
    )
    assert missing_secret.status_code == 401


@pytest.mark.parametrize("grant_type", ["password", "authorization_code", "CLIENT_CREDENTIALS"])
def test_other_grant_types_are_unsupported(
    client: TestClient, partner: Partner, grant_type: str
) -> None:
    response = client.post(TOKEN, data=form(partner, grant_type=grant_type))
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert response.headers["cache-control"] == "no-store"
    assert "www-authenticate" not in response.headers


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"client_id=x&client_secret=y", _FORM),
        (b"grant_type=", _FORM),
        (b"grant_type=client_credentials&grant_type=client_credentials", _FORM),
        (b"grant_type=client_credentials&client_id=a&client_id=b", _FORM),
        (b"grant_type=client_credentials&oops", _FORM),
        ("grant_type=client_credentials&client_id=\u00e9".encode(), _FORM),
        (b"grant_type=client_credentials&client_id=%ff", _FORM),
        (b"&".join(b"f%d=1" % n for n in range(50)), _FORM),
        (b'{"grant_type": "client_credentials"}', "application/json"),
        (b"grant_type=client_credentials", "text/plain"),
        (b"grant_type=client_credentials", ""),
    ],
)
def test_malformed_requests_are_invalid_request(
    client: TestClient, content: bytes, content_type: str
) -> None:
    response = client.post(TOKEN, content=content, headers={"Content-Type": content_type})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert response.headers["content-type"] == "application/json"


def test_the_form_type_may_carry_a_charset(client: TestClient, partner: Partner) -> None:
    body = "&".join(f"{k}={v}" for k, v in form(partner).items())
    response = client.post(
        TOKEN,
        content=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
    )
    assert response.status_code == 200, response.text


def test_credentials_in_both_places_are_invalid_request(
    client: TestClient, partner: Partner
) -> None:
    response = client.post(
        TOKEN, data=form(partner), headers=_basic(partner.client_id, partner.secret)
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    other_id = client.post(
        TOKEN,
        data={"grant_type": "client_credentials", "client_id": "bffp_other"},
        headers=_basic(partner.client_id, partner.secret),
    )
    assert other_id.status_code == 400


def test_only_post_is_allowed(client: TestClient) -> None:
    response = client.get(TOKEN)
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"


def test_a_large_body_is_refused(client: TestClient) -> None:
    body = b"grant_type=client_credentials&client_secret=" + b"x" * 70_000
    response = client.post(
        TOKEN, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413


# The failed-attempt limits.


def test_the_limits_are_the_documented_numbers() -> None:
    assert (limits.FAILURES_PER_CLIENT, limits.FAILURES_PER_ADDRESS) == (10, 30)
    assert (limits.REQUESTS_PER_APP, limits.WINDOW_SECONDS) == (120, 60)


def test_failures_are_limited_per_client_id_from_any_address(
    client: TestClient, partner: Partner, clock: ManualClock
) -> None:
    for n in range(limits.FAILURES_PER_CLIENT):
        elsewhere = other_browser(client, f"192.0.2.{n + 1}")
        assert elsewhere.post(TOKEN, data=form(partner, client_secret="bad")).status_code == 401
    clock.advance(10)
    fresh_address = other_browser(client, "198.51.100.7")
    refused = fresh_address.post(TOKEN, data=form(partner))
    assert refused.status_code == 429, refused.text
    assert refused.headers["retry-after"] == "50"
    assert refused.headers["cache-control"] == "no-store"
    assert refused.json()["error"] == "slow_down"
    assert refused.json()["status"] == 429
    # Other clients are not affected.
    other = make_partner(client, name="Other")
    assert fresh_address.post(TOKEN, data=form(other)).status_code == 200
    clock.advance(50)
    assert fresh_address.post(TOKEN, data=form(partner)).status_code == 200


def test_failures_are_limited_per_address_for_any_client_id(
    client: TestClient, partner: Partner, clock: ManualClock
) -> None:
    guesser = other_browser(client, "203.0.113.9")
    for n in range(limits.FAILURES_PER_ADDRESS):
        response = guesser.post(TOKEN, data=form(partner, client_id=f"bffp_guess{n}"))
        assert response.status_code == 401
    refused = guesser.post(TOKEN, data=form(partner))
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    # Another address, and the same client, are fine.
    assert other_browser(client, "203.0.113.10").post(TOKEN, data=form(partner)).status_code == 200
    clock.advance(60)
    assert guesser.post(TOKEN, data=form(partner)).status_code == 200


def test_successes_are_not_counted(client: TestClient, partner: Partner) -> None:
    for _ in range(limits.FAILURES_PER_ADDRESS + 5):
        assert client.post(TOKEN, data=form(partner)).status_code == 200


def test_requests_refused_before_the_check_are_not_counted(
    client: TestClient, partner: Partner
) -> None:
    for _ in range(limits.FAILURES_PER_ADDRESS + 5):
        assert client.post(TOKEN, data=form(partner, grant_type="password")).status_code == 400
        assert client.post(TOKEN, data={"grant_type": "client_credentials"}).status_code == 401
    assert client.post(TOKEN, data=form(partner)).status_code == 200


def test_over_long_client_ids_are_counted_by_their_hash(
    client: TestClient, partner: Partner
) -> None:
    long_id = "bffp_" + "x" * 5000
    for _ in range(limits.FAILURES_PER_CLIENT):
        other = other_browser(client, "192.0.2.200")
        assert other.post(TOKEN, data=form(partner, client_id=long_id)).status_code == 401
    response = other_browser(client, "192.0.2.201").post(
        TOKEN, data=form(partner, client_id=long_id)
    )
    assert response.status_code == 429


# The token's life.


def test_no_token_is_a_401_with_a_bearer_challenge(client: TestClient, partner: Partner) -> None:
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic eDp5"}):
        response = client.post(LAUNCHES, json=LAUNCH, headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == 'Bearer realm="bff"'


@pytest.mark.parametrize(
    "token",
    ["x", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.", "e30.e30.e30", "x" * 5000, "\u00e9.\u00e9.\u00e9"],
)
def test_garbage_tokens_are_invalid(client: TestClient, partner: Partner, token: str) -> None:
    headers = {b"Authorization": f"Bearer {token}".encode("latin-1")}
    _assert_invalid_token(client.post(LAUNCHES, json=LAUNCH, headers=headers))


@pytest.mark.parametrize("header", [["alg"], "alg", 5, None, {"alg": ["HS256"]}])
def test_headers_that_are_not_objects_are_invalid(
    client: TestClient, partner: Partner, header: object
) -> None:
    """Found by hand: a JSON list holding "alg" passed the library's own check (a 500)."""
    claims = _segments(request_token(client, partner))[1]
    raw = base64.urlsafe_b64encode(json.dumps(header).encode()).decode().rstrip("=")
    _assert_invalid_token(launch(client, f"{raw}.{_b64(claims)}.c2ln"))


@hypothesis.settings(max_examples=300, derandomize=True, database=None, deadline=None)
@hypothesis.given(
    header=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=8,
    )
    | st.fixed_dictionaries(
        {"alg": st.sampled_from(["HS256", "none", "RS256"]), "kid": st.text(max_size=17)}
    ),
    tail=st.text(max_size=40),
)
def test_verify_refuses_anything_it_did_not_issue_without_raising(
    header: object, tail: str
) -> None:
    tokens = PartnerTokens([random_key()], "https://testserver")
    raw = base64.urlsafe_b64encode(json.dumps(header).encode()).decode().rstrip("=")
    now = ManualClock().now()
    for token in (f"{raw}.{tail}", f"{raw}.e30.{tail}", tail):
        assert tokens.verify(token, now=now) is None


def test_a_token_signed_with_an_unknown_key_is_invalid(
    client: TestClient, partner: Partner, settings: Settings, clock: ManualClock
) -> None:
    generation = _generation(client, partner)
    forged = PartnerTokens([random_key()], settings.public_url).issue(
        client_id=partner.client_id, app_id=partner.app_id, generation=generation, now=clock.now()
    )
    _assert_invalid_token(launch(client, forged.access_token))


def test_a_known_kid_with_another_keys_signature_is_invalid(
    client: TestClient, partner: Partner, settings: Settings, clock: ManualClock
) -> None:
    real = request_token(client, partner)
    header, claims = _segments(real)
    other = OctKey.import_key(bearer.derive_key(random_key()))
    forged = jwt.encode(header, claims, other, algorithms=["HS256"])
    assert _segments(forged)[0]["kid"] == header["kid"]
    _assert_invalid_token(launch(client, forged))


def test_another_apps_claims_edited_in_fail_the_signature(
    client: TestClient, partner: Partner
) -> None:
    other = make_partner(client, name="Other", pairs=[GLOBEX])
    token = request_token(client, other)
    header, _, signature = token.split(".")
    claims = _segments(token)[1]
    claims.update(app=partner.app_id, sub=partner.client_id, gen=_generation(client, partner))
    edited = f"{header}.{_b64(claims)}.{signature}"
    _assert_invalid_token(launch(client, edited))
    # The other app's own token works only for its own pairs.
    assert launch(client, token).status_code == 403


def test_alg_none_is_invalid(client: TestClient, partner: Partner) -> None:
    header, claims = _segments(request_token(client, partner))
    for alg in ("none", "None", "NONE"):
        unsigned = f"{_b64({**header, 'alg': alg})}.{_b64(claims)}."
        _assert_invalid_token(launch(client, unsigned))


@pytest.mark.parametrize("alg", ["HS384", "HS512", "RS256", "ES256", "EdDSA"])
def test_other_algorithms_are_invalid(client: TestClient, partner: Partner, alg: str) -> None:
    token = request_token(client, partner)
    header, claims = _segments(token)
    signature = token.rsplit(".", 1)[1]
    _assert_invalid_token(
        launch(client, f"{_b64({**header, 'alg': alg})}.{_b64(claims)}.{signature}")
    )


def test_extra_header_parameters_are_invalid(
    client: TestClient, partner: Partner, settings: Settings
) -> None:
    header, claims = _segments(request_token(client, partner))
    key = OctKey.import_key(bearer.derive_key(settings.secret_keys[0]))
    for extra in ({"b64": False, "crit": ["b64"]}, {"jku": "https://evil.example/jwks"}):
        resigned = jwt.encode({**header, **extra}, claims, key, algorithms=["HS256"])
        _assert_invalid_token(launch(client, resigned))
    # The same claims re-signed with bff's own header are fine: the check is on the header.
    assert launch(client, jwt.encode(header, claims, key, algorithms=["HS256"])).status_code == 201


@pytest.mark.parametrize(
    "change",
    [
        {"iss": "https://elsewhere.example"},
        {"aud": "someone-else"},
        {"aud": ["bff-partner", "x"]},
        {"app": "1"},
        {"app": True},
        {"exp": None},
        {"jti": None},
        {"exp": 10**12},
    ],
)
def test_well_signed_tokens_with_wrong_claims_are_invalid(
    client: TestClient, partner: Partner, settings: Settings, change: dict[str, Any]
) -> None:
    header, claims = _segments(request_token(client, partner))
    claims = {k: v for k, v in {**claims, **change}.items() if v is not None}
    key = OctKey.import_key(bearer.derive_key(settings.secret_keys[0]))
    _assert_invalid_token(launch(client, jwt.encode(header, claims, key, algorithms=["HS256"])))


def test_a_token_expires_after_an_hour(
    client: TestClient, partner: Partner, clock: ManualClock
) -> None:
    token = request_token(client, partner)
    clock.advance(3600 - 1)
    assert launch(client, token).status_code == 201
    clock.advance(1 + bearer.LEEWAY)
    _assert_invalid_token(launch(client, token))


def test_a_token_from_the_future_is_invalid(
    client: TestClient, partner: Partner, clock: ManualClock
) -> None:
    clock.advance(600)
    token = request_token(client, partner)
    clock.set_wall(-600)
    _assert_invalid_token(launch(client, token))


def test_a_new_secret_ends_the_old_tokens_at_once(client: TestClient, partner: Partner) -> None:
    token = request_token(client, partner)
    assert launch(client, token).status_code == 201
    svc = services_of(client)
    renewed = call(
        client,
        lambda: partner_apps.regenerate_secret(
            svc.database, "test", partner.app_id, now=svc.clock.now()
        ),
    )
    _assert_invalid_token(launch(client, token))
    fresh = request_token(client, dataclasses.replace(partner, secret=renewed.client_secret))
    assert launch(client, fresh).status_code == 201


def test_revoking_the_app_ends_its_tokens_with_401_not_409(
    client: TestClient, partner: Partner
) -> None:
    token = request_token(client, partner)
    svc = services_of(client)
    call(
        client,
        lambda: partner_apps.revoke_app(svc.database, "test", partner.app_id, now=svc.clock.now()),
    )
    _assert_invalid_token(launch(client, token))


@pytest.fixture
def rotation(
    base_settings: Settings, clock: ManualClock
) -> Iterator[tuple[Settings, str, Partner]]:
    """The app on its first key: settings, a token issued with that key, its partner."""
    settings = dataclasses.replace(base_settings, public_url="https://testserver")
    with TestClient(create_app(settings, clock=clock), base_url="https://testserver") as first:
        seed_pairs(first)
        partner = make_partner(first)
        yield settings, request_token(first, partner), partner


def _restarted(settings: Settings, clock: ManualClock, keys: tuple[str, ...]) -> TestClient:
    return TestClient(
        create_app(dataclasses.replace(settings, secret_keys=keys), clock=clock),
        base_url="https://testserver",
    )


def test_a_new_newest_key_still_verifies_the_old_tokens(
    rotation: tuple[Settings, str, Partner], clock: ManualClock
) -> None:
    settings, old_token, partner = rotation
    keys = (random_key(), *settings.secret_keys)
    with _restarted(settings, clock, keys) as rotated:
        assert launch(rotated, old_token).status_code == 201
        new_token = request_token(rotated, partner)
        new_kid = bearer.key_id(bearer.derive_key(keys[0]))
        assert _segments(new_token)[0]["kid"] == new_kid != _segments(old_token)[0]["kid"]
        assert launch(rotated, new_token).status_code == 201
    with _restarted(settings, clock, keys[:1]) as retired:
        _assert_invalid_token(launch(retired, old_token))
        assert launch(retired, new_token).status_code == 201


def _generation(client: TestClient, partner: Partner) -> str:
    database = services_of(client).database
    found = call(client, lambda: partner_apps.credential_generation(database, partner.app_id))
    assert found is not None
    return found
