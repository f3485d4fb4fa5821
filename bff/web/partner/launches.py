"""``POST /api/v1/embed/launches``: a single-use launch URL for one partner user and pair.

The partner's server sends its bearer token (:mod:`bff.web.partner.auth`) and
``{"user": {"id", "email"?, "name"?}, "tenant_id", "sub_tenant_id", "origin"?}``; the
answer is 201 ``{"url", "expires_in": 60}``, the URL its page frames (redeemed by
:mod:`bff.web.partner.embed`). The ticket in it is the only copy: it is never stored
(only its hash, :mod:`bff.operations.launches`), logged, or cached (``no-store``).

Refusals, as problem+json: 401 for a missing, invalid or revoked token (before
anything else, so a revoked app never gets further), 429 over the app's rate limit,
400 for a body that is not a JSON object, 422 for a bad field (named in ``field``),
403 for a pair the app may not serve or an origin it does not allow.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bff import identifiers
from bff.errors import InvalidIdentifierError, InvalidInputError
from bff.operations import launches
from bff.web.partner.auth import authenticate_partner
from bff.web.services import services

PATH = "/api/v1/embed/launches"
LAUNCH_PATH = "/embed/launch"
EXPIRES_IN = int(launches.TICKET_LIFETIME.total_seconds())


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body())
    except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested past the stack
        raise HTTPException(400, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "The request body must be a JSON object.")
    return data


def _identifier(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str):
        raise InvalidInputError(f"{field} is required (a string)", field=field)
    try:
        return identifiers.tenant_id(value, field)
    except InvalidIdentifierError as exc:
        raise InvalidInputError(str(exc), field=field) from None


def _origin(data: dict[str, Any]) -> str | None:
    value = data.get("origin")
    if value is not None and not isinstance(value, str):
        raise InvalidInputError("origin must be a string", field="origin")
    return value


async def create_launch(request: Request) -> Response:
    caller = await authenticate_partner(request)
    data = await _json_object(request)
    user = launches.clean_user(data.get("user"))
    pair = (_identifier(data, "tenant_id"), _identifier(data, "sub_tenant_id"))
    origin = _origin(data)
    svc = services(request)
    launch = await launches.create_launch(
        svc.database, caller.app_id, user, pair, origin, now=svc.clock.now()
    )
    url = f"{svc.settings.public_url.rstrip('/')}{LAUNCH_PATH}?ticket={quote(launch.ticket)}"
    return JSONResponse(
        {"url": url, "expires_in": EXPIRES_IN},
        status_code=201,
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


routes: list[BaseRoute] = [Route(PATH, create_launch, methods=["POST"], name="partner:launches")]
