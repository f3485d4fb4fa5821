"""A demo vendor: the token endpoints of all four connector kinds, and a dashboard.

| route                                        | kind                        |
|----------------------------------------------|-----------------------------|
| ``GET /api/v1/partner/dashboard/auth/token`` | header-exchange (DESIGN §2) |
| ``POST /api/v1/authenticate``                | apikey-jwt                  |
| ``POST /oauth/token``                        | oauth2-client-credentials   |
| ``GET /user``                                | static-bearer "who am I"    |
| ``/dashboard/``                              | the insights dashboard      |

Tokens are HS256 JWTs with ``tenant_id``, ``sub_tenant_id``, ``iat`` and ``exp``.
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
from typing import Any

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
TEN_YEARS = 10 * 365 * 24 * 60 * 60

Endpoint = Callable[["VendorConfig", Request], Awaitable[Response]]


@dataclasses.dataclass(eq=False)
class VendorConfig:
    """The vendor's credentials, behaviour and counters; change any of it at runtime."""

    signing_key: str = dataclasses.field(
        default_factory=lambda: secrets.token_urlsafe(32), repr=False
    )
    api_key: str = dataclasses.field(default="demo-api-key", repr=False)
    api_secret: str = dataclasses.field(default="demo-api-secret", repr=False)
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
    # More API calls than this in flight at once are answered 429.
    max_in_flight: int | None = None
    clock: Clock = dataclasses.field(default_factory=SystemClock)

    calls: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    pair_calls: collections.Counter[tuple[str, str]] = dataclasses.field(
        default_factory=collections.Counter
    )
    statuses: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    in_flight: int = 0
    peak_in_flight: int = 0
    refresh_tokens: dict[str, float] = dataclasses.field(default_factory=dict, repr=False)

    def next_fault(self) -> Fault | None:
        return self.faults.popleft() if self.faults else self.fault

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
        if fault is not None and fault.kind == "null_token":
            return None
        if fault is not None and fault.kind == "opaque_token":
            return f"opaque-{secrets.token_hex(16)}"
        return tokens.issue(self.claims(fault, **extra), self.signing_key)


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
        fault = config.next_fault()
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
        headers = {"retry-after": fault.retry_after} if fault.retry_after is not None else {}
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
    return JSONResponse({"token": config.token(request.state.fault, sub="partner")})


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
            "access_token": config.token(fault, sub=config.api_key),
            "token_type": "Bearer",
            "expires_in": int(config.token_lifetime),
            "refresh_token": refresh_token,
            "refresh_token_expires_in": int(config.refresh_token_lifetime),
        },
        headers={"cache-control": "no-store"},
    )


def _client_credentials(request: Request, form: Mapping[str, Any]) -> tuple[str | None, str | None]:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        return user, password
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    return (
        client_id if isinstance(client_id, str) else None,
        client_secret if isinstance(client_secret, str) else None,
    )


def _oauth_error(status: int, error: str, description: str) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status)


async def _whoami(config: VendorConfig, request: Request) -> Response:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not _same(presented, config.api_key):
        return _fail(401, "Unauthorized")
    return JSONResponse({"id": "demo-partner", "handle": "demo", "email": "partner@vendor.test"})


def _same(presented: object, expected: str) -> bool:
    return isinstance(presented, str) and hmac.compare_digest(presented.encode(), expected.encode())
