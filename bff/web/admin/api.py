"""The admin API (DESIGN section 7): JSON under ``/api/v1/``, one thin route per
operation in :mod:`bff.operations`, which validates, audits and purges.

``GET /api/v1/user`` and the ``/api/v1/user/keys`` routes serve any signed-in
user; every other route here needs an administrator.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bff.errors import InvalidInputError
from bff.operations import api_keys, audit, mapping_csv, mappings, tenants, users
from bff.web.admin.api_auth import authenticate, authenticate_admin
from bff.web.services import services

PREFIX = "/api/v1"
MAX_JSON_BYTES = 1024 * 1024
MAX_CSV_BYTES = 32 * 1024 * 1024
CSV_MEDIA_TYPE = "text/csv"
IMPORT_PATH = f"{PREFIX}/mappings/import"

Endpoint = Callable[[Request], Awaitable[Response]]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


async def _json_object(request: Request) -> dict[str, Any]:
    body = await _read_body(request, MAX_JSON_BYTES)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nesting deeper than the stack
        raise HTTPException(400, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "The request body must be a JSON object.")
    return data


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _flag(data: dict[str, Any], field: str) -> bool | None:
    value = data.get(field)
    if value is not None and not isinstance(value, bool):
        raise InvalidInputError(f"{field} must be true or false", field=field)
    return value


def _text(data: dict[str, Any], field: str, *, required: bool = False) -> str | None:
    value = data.get(field)
    if value is None:
        if required:
            raise InvalidInputError(f"{field} is required", field=field)
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{field} must be a string", field=field)
    return value


def _page(request: Request) -> int:
    raw = request.query_params.get("page", "1") or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
        raise InvalidInputError("page must be a whole number from 1", field="page")
    return int(raw)


def _bool_param(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise InvalidInputError(f"{name} must be true or false", field=name)
    return raw == "true"


# Self service: any signed-in user.


async def current_user(request: Request) -> Response:
    caller = await authenticate(request)
    return JSONResponse({"id": caller.user_id, "email": caller.email, "is_admin": caller.is_admin})


def _key_json(key: api_keys.KeyView) -> dict[str, Any]:
    return {
        "handle": key.handle,
        "alias": key.alias,
        "created_at": _iso(key.created_at),
        "last_used_at": _iso(key.last_used_at),
    }


async def create_key(request: Request) -> Response:
    caller = await authenticate(request)
    data = await _json_object(request)
    created = await api_keys.create_key(
        services(request).database,
        caller.email,
        caller.email,
        data.get("handle"),
        data.get("alias"),
    )
    body = {
        "handle": created.key.handle,
        "alias": created.key.alias,
        "token": created.token,
        "created_at": _iso(created.key.created_at),
    }
    return JSONResponse(body, status_code=201, headers={"Cache-Control": "no-store"})


async def list_keys(request: Request) -> Response:
    caller = await authenticate(request)
    keys = await api_keys.list_keys(services(request).database, caller.user_id)
    return JSONResponse({"items": [_key_json(key) for key in keys]})


async def get_key(request: Request) -> Response:
    caller = await authenticate(request)
    handle = request.path_params["handle"]
    return JSONResponse(
        _key_json(await api_keys.get_key(services(request).database, caller.user_id, handle))
    )


async def delete_key(request: Request) -> Response:
    caller = await authenticate(request)
    await api_keys.delete_key(
        services(request).database, caller.email, caller.user_id, request.path_params["handle"]
    )
    return Response(status_code=204)


# Tenants.


async def list_tenants(request: Request) -> Response:
    await authenticate_admin(request)
    found = await tenants.list_tenants(services(request).database)
    items = [
        {
            "id": tenant.id,
            "name": tenant.name,
            "sub_tenants": [{"id": sub.id, "name": sub.name} for sub in tenant.sub_tenants],
        }
        for tenant in found
    ]
    return JSONResponse({"items": items})


async def create_tenant(request: Request) -> Response:
    caller = await authenticate_admin(request)
    data = await _json_object(request)
    tenant = await tenants.create_tenant(
        services(request).database,
        caller.email,
        _text(data, "id", required=True) or "",
        _text(data, "name"),
    )
    return JSONResponse({"id": tenant.id, "name": tenant.name, "sub_tenants": []}, status_code=201)


async def create_sub_tenant(request: Request) -> Response:
    caller = await authenticate_admin(request)
    data = await _json_object(request)
    sub = await tenants.create_sub_tenant(
        services(request).database,
        caller.email,
        request.path_params["tenant_id"],
        _text(data, "id", required=True) or "",
        _text(data, "name"),
    )
    return JSONResponse({"id": sub.id, "name": sub.name}, status_code=201)


async def delete_tenant(request: Request) -> Response:
    caller = await authenticate_admin(request)
    await tenants.delete_tenant(
        services(request).database,
        caller.email,
        request.path_params["tenant_id"],
        cascade=_bool_param(request, "cascade"),
        live=services(request).live(),
    )
    return Response(status_code=204)


async def delete_sub_tenant(request: Request) -> Response:
    caller = await authenticate_admin(request)
    await tenants.delete_sub_tenant(
        services(request).database,
        caller.email,
        request.path_params["tenant_id"],
        request.path_params["sub_tenant_id"],
        cascade=_bool_param(request, "cascade"),
        live=services(request).live(),
    )
    return Response(status_code=204)


# Users and their mappings.


def _user_json(user: users.UserView) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "is_admin": user.is_admin,
        "disabled": user.disabled,
    }


async def list_users(request: Request) -> Response:
    await authenticate_admin(request)
    found = await users.list_users(
        services(request).database, q=request.query_params.get("q", ""), page=_page(request)
    )
    return JSONResponse(
        {"items": [_user_json(u) for u in found.items], "next_page": found.next_page}
    )


async def create_user(request: Request) -> Response:
    caller = await authenticate_admin(request)
    data = await _json_object(request)
    svc = services(request)
    created = await users.create_user(
        svc.database,
        caller.email,
        _text(data, "email", required=True) or "",
        is_admin=bool(_flag(data, "is_admin")),
        password=_text(data, "password"),
        now=svc.clock.now(),
    )
    body: dict[str, Any] = {
        "id": created.user.id,
        "email": created.user.email,
        "is_admin": created.user.is_admin,
    }
    if created.set_password_token is not None:
        body["set_password_url"] = users.set_password_url(
            svc.settings.public_url, created.set_password_token
        )
    return JSONResponse(body, status_code=201, headers={"Cache-Control": "no-store"})


async def update_user(request: Request) -> Response:
    caller = await authenticate_admin(request)
    data = await _json_object(request)
    user = await users.update_user(
        services(request).database,
        caller.email,
        request.path_params["email"],
        disabled=_flag(data, "disabled"),
        is_admin=_flag(data, "is_admin"),
        live=services(request).live(),
    )
    return JSONResponse(_user_json(user))


def _pairs_json(pairs: list[mappings.Pair]) -> dict[str, Any]:
    return {"items": [{"tenant_id": t, "sub_tenant_id": s} for t, s in pairs]}


async def user_mappings(request: Request) -> Response:
    await authenticate_admin(request)
    pairs = await mappings.list_for_user(services(request).database, request.path_params["email"])
    return JSONResponse(_pairs_json(pairs))


async def replace_user_mappings(request: Request) -> Response:
    caller = await authenticate_admin(request)
    data = await _json_object(request)
    items = data.get("items")
    if not isinstance(items, list):
        raise InvalidInputError("items must be a list", field="items")
    pairs = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidInputError(
                "each item must be an object with tenant_id and sub_tenant_id", field="items"
            )
        pairs.append(mappings.parse_pair(item.get("tenant_id"), item.get("sub_tenant_id")))
    replaced = await mappings.replace_for_user(
        services(request).database,
        caller.email,
        request.path_params["email"],
        pairs,
        live=services(request).live(),
    )
    return JSONResponse(_pairs_json(replaced.pairs))


async def import_mappings(request: Request) -> Response:
    caller = await authenticate_admin(request)
    mode = request.query_params.get("mode", "merge")
    if mode not in ("merge", "replace"):
        raise InvalidInputError("mode must be merge or replace", field="mode")
    dry_run = _bool_param(request, "dry_run")
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != CSV_MEDIA_TYPE:
        raise HTTPException(415, "Send the file as text/csv.")
    data = await _read_body(request, MAX_CSV_BYTES)
    report = await mapping_csv.import_csv(
        services(request).database,
        caller.email,
        data,
        mode="replace" if mode == "replace" else "merge",
        dry_run=dry_run,
        live=services(request).live(),
    )
    body = {
        "added": report.added,
        "removed": report.removed,
        "unchanged": report.unchanged,
        "errors": [{"line": e.line, "message": e.message} for e in report.errors],
        "removals": [
            {"email": r.email, "tenant_id": r.tenant_id, "sub_tenant_id": r.sub_tenant_id}
            for r in report.removals
        ],
        "dry_run": dry_run,
        "applied": report.applied,
    }
    return JSONResponse(body, status_code=422 if report.errors else 200)


async def export_mappings(request: Request) -> Response:
    await authenticate_admin(request)
    text = await mapping_csv.export_csv(services(request).database)
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="mappings.csv"'},
    )


# Audit.


async def audit_log(request: Request) -> Response:
    await authenticate_admin(request)
    found = await audit.list_entries(
        services(request).database,
        actor=request.query_params.get("actor") or None,
        action=request.query_params.get("action") or None,
        page=_page(request),
    )
    items = [
        {"at": _iso(e.at), "actor": e.actor, "action": e.action, "target": e.target}
        for e in found.items
    ]
    return JSONResponse({"items": items, "next_page": found.next_page})


def _route(path: str, endpoint: Endpoint, method: str, name: str) -> Route:
    return Route(PREFIX + path, endpoint, methods=[method], name=name)


routes: list[BaseRoute] = [
    _route("/user", current_user, "GET", "account:api.user"),
    _route("/user/keys", create_key, "POST", "account:api.create_key"),
    _route("/user/keys", list_keys, "GET", "account:api.keys"),
    _route("/user/keys/{handle}", get_key, "GET", "account:api.key"),
    _route("/user/keys/{handle}", delete_key, "DELETE", "account:api.delete_key"),
    _route("/tenants", list_tenants, "GET", "admin:api.tenants"),
    _route("/tenants", create_tenant, "POST", "admin:api.create_tenant"),
    _route("/tenants/{tenant_id}", delete_tenant, "DELETE", "admin:api.delete_tenant"),
    _route(
        "/tenants/{tenant_id}/sub-tenants", create_sub_tenant, "POST", "admin:api.create_sub_tenant"
    ),
    _route(
        "/tenants/{tenant_id}/sub-tenants/{sub_tenant_id}",
        delete_sub_tenant,
        "DELETE",
        "admin:api.delete_sub_tenant",
    ),
    _route("/users", list_users, "GET", "admin:api.users"),
    _route("/users", create_user, "POST", "admin:api.create_user"),
    _route("/users/{email}", update_user, "PATCH", "admin:api.update_user"),
    _route("/users/{email}/mappings", user_mappings, "GET", "admin:api.user_mappings"),
    _route("/users/{email}/mappings", replace_user_mappings, "PUT", "admin:api.replace_mappings"),
    _route("/mappings/import", import_mappings, "POST", "admin:api.import_mappings"),
    _route("/mappings/export", export_mappings, "GET", "admin:api.export_mappings"),
    _route("/audit", audit_log, "GET", "admin:api.audit"),
]
