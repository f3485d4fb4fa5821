"""The admin API for partner apps (``/api/v1/partner-apps``, DESIGN section 7).

The client secret is in two answers only, both ``no-store``: creation and a new
secret. ``PATCH /api/v1/partner-apps/{id}`` (name, origins, pairs) goes beyond the
design's table so the API can do what the console does.
"""

from __future__ import annotations

from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bff.errors import InvalidInputError, NotFoundError
from bff.operations import partner_apps
from bff.web.admin.api import PREFIX, _iso, _json_object, _text
from bff.web.admin.api_auth import authenticate_admin
from bff.web.services import services

NO_STORE = {"Cache-Control": "no-store"}
_T = TypeVar("_T")


def app_json(app: partner_apps.AppView) -> dict[str, Any]:
    return {
        "id": app.id,
        "name": app.name,
        "client_id": app.client_id,
        "allowed_origins": list(app.allowed_origins),
        "pairs": [{"tenant_id": t, "sub_tenant_id": s} for t, s in app.pairs],
        "created_at": _iso(app.created_at),
        "last_used_at": _iso(app.last_used_at),
        "status": app.status,
    }


def _app_id(request: Request) -> int:
    raw = request.path_params["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFoundError(f"no partner app {raw[:40]}")
    return int(raw)


def _origins(data: dict[str, Any]) -> list[str] | None:
    value = data.get("allowed_origins")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidInputError(
            "allowed_origins must be a list of strings", field="allowed_origins"
        )
    return value


def _pairs(data: dict[str, Any]) -> list[partner_apps.Pair] | None:
    value = data.get("pairs")
    if value is None:
        return None
    message = "pairs must be a list of objects with tenant_id and sub_tenant_id strings"
    if not isinstance(value, list):
        raise InvalidInputError(message, field="pairs")
    pairs = []
    for item in value:
        if not isinstance(item, dict):
            raise InvalidInputError(message, field="pairs")
        tenant_id, sub_tenant_id = item.get("tenant_id"), item.get("sub_tenant_id")
        if not isinstance(tenant_id, str) or not isinstance(sub_tenant_id, str):
            raise InvalidInputError(message, field="pairs")
        pairs.append((tenant_id, sub_tenant_id))
    return pairs


def _required(value: _T | None, field: str) -> _T:
    if value is None:
        raise InvalidInputError(f"{field} is required", field=field)
    return value


async def list_apps(request: Request) -> Response:
    await authenticate_admin(request)
    found = await partner_apps.list_apps(services(request).database)
    return JSONResponse({"items": [app_json(app) for app in found]})


async def create_app(request: Request) -> Response:
    caller = await authenticate_admin(request)
    data = await _json_object(request)
    svc = services(request)
    created = await partner_apps.create_app(
        svc.database,
        caller.email,
        _text(data, "name", required=True) or "",
        _required(_origins(data), "allowed_origins"),
        _required(_pairs(data), "pairs"),
        now=svc.clock.now(),
    )
    body = {**app_json(created.app), "client_secret": created.client_secret}
    return JSONResponse(body, status_code=201, headers=NO_STORE)


async def update_app(request: Request) -> Response:
    caller = await authenticate_admin(request)
    app_id = _app_id(request)
    data = await _json_object(request)
    svc = services(request)
    app = await partner_apps.update_app(
        svc.database,
        caller.email,
        app_id,
        name=_text(data, "name"),
        allowed_origins=_origins(data),
        pairs=_pairs(data),
        live=svc.live(),
    )
    return JSONResponse(app_json(app))


async def regenerate_secret(request: Request) -> Response:
    caller = await authenticate_admin(request)
    svc = services(request)
    renewed = await partner_apps.regenerate_secret(
        svc.database, caller.email, _app_id(request), now=svc.clock.now(), live=svc.live()
    )
    body = {"client_id": renewed.app.client_id, "client_secret": renewed.client_secret}
    return JSONResponse(body, headers=NO_STORE)


async def revoke_app(request: Request) -> Response:
    caller = await authenticate_admin(request)
    svc = services(request)
    app = await partner_apps.revoke_app(
        svc.database, caller.email, _app_id(request), now=svc.clock.now(), live=svc.live()
    )
    return JSONResponse(app_json(app))


_APPS = f"{PREFIX}/partner-apps"

routes: list[BaseRoute] = [
    Route(_APPS, list_apps, methods=["GET"], name="admin:api.partner_apps"),
    Route(_APPS, create_app, methods=["POST"], name="admin:api.create_partner_app"),
    Route(_APPS + "/{id}", update_app, methods=["PATCH"], name="admin:api.update_partner_app"),
    Route(
        _APPS + "/{id}/secret",
        regenerate_secret,
        methods=["POST"],
        name="admin:api.partner_app_secret",
    ),
    Route(
        _APPS + "/{id}/revoke", revoke_app, methods=["POST"], name="admin:api.revoke_partner_app"
    ),
]
