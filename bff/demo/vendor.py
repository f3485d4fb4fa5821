"""A demo vendor: the token endpoints of all four connector kinds, and a dashboard.

| route                                        | kind                                 |
|----------------------------------------------|--------------------------------------|
| ``GET /api/v1/partner/dashboard/auth/token`` | header-exchange (DESIGN §2)          |
| ``POST /api/v1/authenticate``                | apikey-jwt                           |
| ``POST /oauth/token``                        | oauth2-client-credentials            |
| ``GET /user``                                | static-bearer "who am I"             |
| ``POST /api/v1/partner/dashboard/token``     | the per-pair step of the three above |
| ``/dashboard/``                              | the insights dashboard               |

Tokens are HS256 JWTs with ``iat``, ``exp`` and a ``jti``. A dashboard token for one
pair (header-exchange, or the per-pair step) carries ``tenant_id`` and
``sub_tenant_id``; a connection-wide one (apikey-jwt, oauth2) carries neither, and
the static key is no JWT at all. The per-pair step accepts only connection-wide
credentials — ``Bearer`` of such a token or of the static key, or HTTP Basic
``api_username:api_key`` — with the pair as seed 004's headers or as a JSON body.

:class:`VendorConfig` is mutable: tests and benches flip faults, latency and the
concurrency limit while the app runs, and read its call counters.
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route

from bff.clock import Clock, SystemClock
from bff.demo import dashboard, tokens
from bff.demo.faults import Fault

HEADER_EXCHANGE_PATH = "/api/v1/partner/dashboard/auth/token"
APIKEY_JWT_PATH = "/api/v1/authenticate"
OAUTH2_TOKEN_PATH = "/oauth/token"
WHOAMI_PATH = "/user"
PAIR_TOKEN_PATH = "/api/v1/partner/dashboard/token"
TEN_YEARS = 10 * 365 * 24 * 60 * 60

Endpoint = Callable[["VendorConfig", Request], Awaitable[Response]]
# Where the per-pair step's answer puts the token (the three shapes bff reads).
PairTokenField = Literal["data.token", "token", "access_token"]


@dataclasses.dataclass(eq=False)
class VendorConfig:
    """The vendor's credentials, behaviour and counters; change any of it at runtime."""

    signing_key: str = dataclasses.field(
        default_factory=lambda: secrets.token_urlsafe(32), repr=False
    )
    api_key: str = dataclasses.field(default="demo-api-key", repr=False)
    api_secret: str = dataclasses.field(default="demo-api-secret", repr=False)
    # static-bearer presented as HTTP Basic: `api_username:api_key` (seed 002).
    api_username: str = "demo-partner"
    # apikey-jwt: when set, the authentication endpoint also requires this parameter.
    auth_param: str | None = dataclasses.field(default=None, repr=False)
    # oauth2: when set, the token endpoint requires this `Realm` header.
    realm: str | None = None
    token_lifetime: float = 24 * 60 * 60
    refresh_token_lifetime: float = 7 * 24 * 60 * 60
    # Seconds every API answer is delayed.
    latency: float = 0.0
    # Seconds the "timeout" fault stalls.
    hang: float = 30.0
    # Applied to every API call, after any one-shot `faults` queued.
    fault: Fault | None = None
    faults: collections.deque[Fault] = dataclasses.field(default_factory=collections.deque)
    # Applied to every call of one endpoint (by counter name, e.g. "pair_token"),
    # before `faults` and `fault`.
    endpoint_faults: dict[str, Fault] = dataclasses.field(default_factory=dict)
    # More API calls than this in flight at once are answered 429.
    max_in_flight: int | None = None
    # The per-pair step: where the pair must be (None: headers or a JSON body) and
    # where the answer puts the token.
    pair_token_style: Literal["headers", "json"] | None = None
    pair_token_field: PairTokenField = "data.token"
    clock: Clock = dataclasses.field(default_factory=SystemClock)

    calls: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    pair_calls: collections.Counter[tuple[str, str]] = dataclasses.field(
        default_factory=collections.Counter
    )
    statuses: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    in_flight: int = 0
    peak_in_flight: int = 0
    refresh_tokens: dict[str, float] = dataclasses.field(default_factory=dict, repr=False)
    # The `jti` of every connection-wide token issued, and of those revoked since.
    credentials: list[str] = dataclasses.field(default_factory=list, repr=False)
    revoked: set[str] = dataclasses.field(default_factory=set, repr=False)

    def next_fault(self, endpoint: str | None = None) -> Fault | None:
        if endpoint is not None and endpoint in self.endpoint_faults:
            return self.endpoint_faults[endpoint]
        return self.faults.popleft() if self.faults else self.fault

    def revoke_credentials(self) -> None:
        """Revoke every connection-wide token issued so far, as a vendor may at any time."""
        self.revoked.update(self.credentials)

    def reset_counters(self) -> None:
        self.calls.clear()
        self.pair_calls.clear()
        self.statuses.clear()
        self.peak_in_flight = self.in_flight

    def claims(self, fault: Fault | None, **extra: str) -> dict[str, Any]:
        now = int(self.clock.now().timestamp())
        claims: dict[str, Any] = {
            "iss": "demo-vendor",
            **extra,
            "iat": now,
            "exp": now + int(self.token_lifetime),
            # Unique per token, so a renewed token is a different string.
            "jti": secrets.token_hex(8),
        }
        if fault is not None and fault.kind == "no_exp":
            del claims["exp"]
        elif fault is not None and fault.kind == "expired":
            claims["exp"] = now - 60
        elif fault is not None and fault.kind == "far_future":
            claims["exp"] = now + TEN_YEARS
        return claims

    def token(self, fault: Fault | None, **extra: str) -> str | None:
        return self._issue(fault, extra, credential=False)

    def credential(self, fault: Fault | None, **extra: str) -> str | None:
        """A connection-wide token (no pair in it), remembered so it can be revoked."""
        return self._issue(fault, extra, credential=True)

    def _issue(
        self, fault: Fault | None, extra: Mapping[str, str], *, credential: bool
    ) -> str | None:
        claims = self.claims(fault, **extra)
        if credential:
            self.credentials.append(claims["jti"])
        if fault is not None and fault.kind == "null_token":
            return None
        if fault is not None and fault.kind == "opaque_token":
            return f"opaque-{secrets.token_hex(16)}"
        return tokens.issue(claims, self.signing_key)

    def is_credential(self, token: str) -> bool:
        """``token`` is a valid, unrevoked connection-wide JWT of this vendor."""
        claims = tokens.verify(token, self.signing_key, self.clock.now().timestamp())
        return (
            claims is not None
            and "tenant_id" not in claims
            and "sub_tenant_id" not in claims
            and claims.get("jti") not in self.revoked
        )

    def is_basic(self, authorization: str) -> bool:
        """``authorization`` is HTTP Basic ``api_username:api_key``."""
        user, password = _basic(authorization)
        return _same(user, self.api_username) and _same(password, self.api_key)


def create_vendor_app(config: VendorConfig) -> Starlette:
    def api(name: str, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            response = await _served(config, name, request, endpoint)
            config.statuses[response.status_code] += 1
            return response

        return handle

    return Starlette(
        routes=[
            Route(HEADER_EXCHANGE_PATH, api("token", _header_exchange), methods=["GET"]),
            Route(APIKEY_JWT_PATH, api("authenticate", _apikey_jwt), methods=["POST"]),
            Route(OAUTH2_TOKEN_PATH, api("oauth", _oauth2), methods=["POST"]),
            Route(WHOAMI_PATH, api("user", _whoami), methods=["GET"]),
            Route(PAIR_TOKEN_PATH, api("pair_token", _pair_token), methods=["POST"]),
            Mount("/dashboard", routes=dashboard.routes(config)),
            Route("/dashboard", dashboard.redirect_to_slash),
        ]
    )


async def _served(
    config: VendorConfig, name: str, request: Request, endpoint: Endpoint
) -> Response:
    config.calls[name] += 1
    config.in_flight += 1
    config.peak_in_flight = max(config.peak_in_flight, config.in_flight)
    try:
        if config.max_in_flight is not None and config.in_flight > config.max_in_flight:
            return _fail(
                429,
                "Too many concurrent requests. Try again in 1 seconds.",
                {"retry-after": "1", "x-ratelimit-scope": "global"},
            )
        if config.latency:
            await anyio.sleep(config.latency)
        fault = config.next_fault(name)
        if fault is not None and not fault.shapes_token:
            return await _faulty(config, fault)
        request.state.fault = fault
        return await endpoint(config, request)
    finally:
        # Decremented before the answer leaves, so a client that has its answer
        # never counts against the limit.
        config.in_flight -= 1


async def _faulty(config: VendorConfig, fault: Fault) -> Response:
    if fault.kind == "rate_limit":
        headers = {}
        if fault.retry_after is not None:
            # Sent as UTF-8 bytes, as a careless vendor would ("²" included).
            headers["retry-after"] = fault.retry_after.encode().decode("latin-1")
        if fault.date is not None:
            headers["date"] = fault.date
        if fault.connection_wide:
            headers["x-ratelimit-scope"] = "global"
        return _fail(429, fault.message, headers)
    if fault.kind == "server_error":
        return _fail(500, "Internal server error")
    if fault.kind == "timeout":
        await anyio.sleep(config.hang)
        return _fail(504, "Gateway timeout")
    if fault.kind == "malformed":
        return Response(b'{"code":"RESPONSE_SUCCESS","data":{"tok', media_type="application/json")
    if fault.kind == "html":
        return HTMLResponse("<!doctype html><title>Maintenance</title><h1>Back soon</h1>")
    if fault.kind == "unauthorized":
        return _fail(401, "Unauthorized")
    return _fail(403, "Forbidden")


def _fail(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({"success": False, "message": message}, status, headers=headers)


async def _header_exchange(config: VendorConfig, request: Request) -> Response:
    headers = request.headers
    if not (
        _same(headers.get("x-api-key"), config.api_key)
        and _same(headers.get("x-api-secret"), config.api_secret)
    ):
        return _fail(403, "Forbidden")
    tenant = headers.get("x-tenant-id", "").strip()
    sub_tenant = headers.get("x-sub-tenant-id", "").strip()
    if not tenant:
        return _fail(400, "Tenant ID is required")
    if not sub_tenant:
        return _fail(400, "Subtenant ID is required")
    config.pair_calls[(tenant, sub_tenant)] += 1
    token = config.token(request.state.fault, tenant_id=tenant, sub_tenant_id=sub_tenant)
    return JSONResponse(
        {
            "code": "RESPONSE_SUCCESS",
            "message": "Request served successfully.",
            "type": "object",
            "data": {"token": token},
        }
    )


async def _apikey_jwt(config: VendorConfig, request: Request) -> Response:
    try:
        body = await request.json()
    except ValueError:
        return _fail(400, "Request body must be JSON")
    if not isinstance(body, dict) or not _same(body.get("api_key"), config.api_key):
        return _fail(401, "Invalid API key")
    if config.auth_param is not None and not _same(body.get("auth_param"), config.auth_param):
        return _fail(401, "Invalid authentication parameter")
    return JSONResponse({"token": config.credential(request.state.fault, sub="partner")})


async def _oauth2(config: VendorConfig, request: Request) -> Response:
    if config.realm is not None and request.headers.get("realm") != config.realm:
        return _oauth_error(400, "invalid_request", "missing or unknown Realm")
    form = await request.form()
    client_id, client_secret = _client_credentials(request, form)
    if not (_same(client_id, config.api_key) and _same(client_secret, config.api_secret)):
        return _oauth_error(401, "invalid_client", "client authentication failed")
    grant_type = form.get("grant_type")
    if grant_type == "refresh_token":
        presented = form.get("refresh_token")
        until = config.refresh_tokens.pop(presented, None) if isinstance(presented, str) else None
        if until is None or until <= config.clock.now().timestamp():
            return _oauth_error(400, "invalid_grant", "refresh token is invalid or expired")
    elif grant_type != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "use client_credentials")
    fault = request.state.fault
    refresh_token = secrets.token_urlsafe(24)
    config.refresh_tokens[refresh_token] = (
        config.clock.now().timestamp() + config.refresh_token_lifetime
    )
    return JSONResponse(
        {
            "access_token": config.credential(fault, sub=config.api_key),
            "token_type": "Bearer",
            "expires_in": int(config.token_lifetime),
            "refresh_token": refresh_token,
            "refresh_token_expires_in": int(config.refresh_token_lifetime),
        },
        headers={"cache-control": "no-store"},
    )


def _client_credentials(request: Request, form: Mapping[str, Any]) -> tuple[str | None, str | None]:
    authorization = request.headers.get("authorization", "")
    if authorization.partition(" ")[0].lower() == "basic":
        return _basic(authorization)
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    return (
        client_id if isinstance(client_id, str) else None,
        client_secret if isinstance(client_secret, str) else None,
    )


def _oauth_error(status: int, error: str, description: str) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status)


async def _whoami(config: VendorConfig, request: Request) -> Response:
    authorization = request.headers.get("authorization", "")
    scheme, _, presented = authorization.partition(" ")
    bearer = scheme.lower() == "bearer" and _same(presented, config.api_key)
    if not (bearer or config.is_basic(authorization)):
        return _fail(401, "Unauthorized")
    return JSONResponse({"id": "demo-partner", "handle": "demo", "email": "partner@vendor.test"})


async def _pair_token(config: VendorConfig, request: Request) -> Response:
    """The per-pair step: a connection-wide credential buys a dashboard token for one pair."""
    authorization = request.headers.get("authorization", "")
    scheme, _, presented = authorization.partition(" ")
    presented = presented.strip()
    if scheme.lower() == "bearer":
        static = _same(presented, config.api_key)
        if not (static or config.is_credential(presented)):
            return _fail(401, "Unauthorized")
        # A vendor with a Realm (seed 002) wants it with every token but the static key.
        if not static and config.realm is not None and request.headers.get("realm") != config.realm:
            return _fail(401, "Unauthorized")
    elif not config.is_basic(authorization):
        return _fail(401, "Unauthorized")
    pair = await _requested_pair(config, request)
    if isinstance(pair, Response):
        return pair
    config.pair_calls[pair] += 1
    tenant, sub_tenant = pair
    token = config.token(request.state.fault, tenant_id=tenant, sub_tenant_id=sub_tenant)
    if config.pair_token_field == "token":
        return JSONResponse({"token": token})
    if config.pair_token_field == "access_token":
        return JSONResponse(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": int(config.token_lifetime),
            }
        )
    return JSONResponse(
        {
            "code": "RESPONSE_SUCCESS",
            "message": "Request served successfully.",
            "type": "object",
            "data": {"token": token},
        }
    )


async def _requested_pair(config: VendorConfig, request: Request) -> tuple[str, str] | Response:
    style = config.pair_token_style
    if style is None:
        json_body = request.headers.get("content-type", "").startswith("application/json")
        style = "json" if json_body else "headers"
    if style == "headers":
        tenant = request.headers.get("x-tenant-id", "")
        sub_tenant = request.headers.get("x-sub-tenant-id", "")
    else:
        try:
            body = await request.json()
        except ValueError:
            return _fail(400, "Request body must be JSON")
        body = body if isinstance(body, dict) else {}
        tenant, sub_tenant = _text(body.get("tenant_id")), _text(body.get("sub_tenant_id"))
    if not tenant.strip():
        return _fail(400, "Tenant ID is required")
    if not sub_tenant.strip():
        return _fail(400, "Subtenant ID is required")
    return tenant.strip(), sub_tenant.strip()


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _basic(authorization: str) -> tuple[str | None, str | None]:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        user, colon, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None, None
    return (user, password) if colon else (None, None)


def _same(presented: object, expected: str) -> bool:
    return isinstance(presented, str) and hmac.compare_digest(presented.encode(), expected.encode())
