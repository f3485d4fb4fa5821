"""Who is calling the partner API: a partner app with its bearer token
(:mod:`bff.web.partner.bearer`), checked on every request.

Refusals are problem+json. No ``Authorization: Bearer`` header: 401 with
``WWW-Authenticate: Bearer realm="bff"``; a token that is malformed, forged, signed
with an unknown key, expired, or issued for a secret that has since been regenerated
or revoked: 401 with ``Bearer realm="bff", error="invalid_token"`` (RFC 6750 §3.1).
Only then is the call counted against the app's rate limit (429 with ``Retry-After``;
:mod:`bff.web.partner.limits`), so a revoked app always hears 401.
"""

from __future__ import annotations

import dataclasses

from starlette.exceptions import HTTPException
from starlette.requests import Request

from bff.clock import Clock
from bff.operations.partner_apps import credential_generation
from bff.settings import Settings
from bff.shared.redis_link import RedisLink
from bff.web.partner.bearer import PartnerTokens
from bff.web.partner.limits import PartnerLimits
from bff.web.services import services

CHALLENGE = 'Bearer realm="bff"'
INVALID_TOKEN = 'Bearer realm="bff", error="invalid_token"'
TOKEN_PATH = "/api/v1/oauth/token"


@dataclasses.dataclass(frozen=True)
class PartnerCaller:
    app_id: int
    client_id: str


@dataclasses.dataclass
class PartnerServices:
    """The partner wing's share of the app's services."""

    tokens: PartnerTokens
    limits: PartnerLimits


def open_partner(
    settings: Settings, clock: Clock, shared: RedisLink | None = None
) -> PartnerServices:
    """The partner wing's services; its rate limits counted in Redis with ``shared``."""
    return PartnerServices(
        PartnerTokens(settings.secret_keys, settings.public_url),
        PartnerLimits(clock, shared=shared),
    )


async def authenticate_partner(request: Request) -> PartnerCaller:
    """The partner app calling, or HTTPException 401 (no or bad token) / 429 (over its
    rate limit)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            401,
            f"Send a partner token from {TOKEN_PATH} as 'Authorization: Bearer <token>'.",
            headers={"WWW-Authenticate": CHALLENGE},
        )
    svc = services(request)
    claims = svc.partner.tokens.verify(token, now=svc.clock.now())
    if claims is None or await credential_generation(svc.database, claims.app_id) != (
        claims.generation
    ):
        raise HTTPException(
            401,
            f"This partner token is not valid or has expired; get a new one from {TOKEN_PATH}.",
            headers={"WWW-Authenticate": INVALID_TOKEN},
        )
    wait = await svc.partner.limits.api_call(claims.app_id)
    if wait is not None:
        raise HTTPException(
            429,
            f"Too many requests from this partner app; retry in {wait} s.",
            headers={"Retry-After": str(wait)},
        )
    return PartnerCaller(claims.app_id, claims.client_id)
