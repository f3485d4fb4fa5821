"""The OpenAPI 3.1 description of bff's JSON APIs, built from one table of operations.

The table is checked against the app's route table by the tests (every ``/api/v1/``
route is described, nothing else is), so the document cannot drift from the code.
``GET /api/openapi.json`` serves it; ``GET /api/docs`` renders the same table as a
page, with no script and nothing loaded from another site.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from bff import __version__

Schema = dict[str, Any]

_PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _obj(required: tuple[str, ...] = (), **properties: Schema) -> Schema:
    return {"type": "object", "required": list(required), "properties": properties}


def _items(item: Schema, *, paged: bool = False) -> Schema:
    schema = _obj(("items",), items={"type": "array", "items": item})
    if paged:
        schema["properties"]["next_page"] = {"type": ["integer", "null"]}
    return schema


_STR: Schema = {"type": "string"}
_BOOL: Schema = {"type": "boolean"}
_INT: Schema = {"type": "integer"}
_TIME: Schema = {"type": ["string", "null"], "format": "date-time"}
_PAIR = _obj(("tenant_id", "sub_tenant_id"), tenant_id=_STR, sub_tenant_id=_STR)
_USER = _obj(
    ("id", "email", "is_admin", "disabled"), id=_INT, email=_STR, is_admin=_BOOL, disabled=_BOOL
)
_KEY = _obj(
    ("handle", "alias", "created_at", "last_used_at"),
    handle=_STR,
    alias={"type": ["string", "null"]},
    created_at=_TIME,
    last_used_at=_TIME,
)
_TENANT = _obj(
    ("id", "name", "sub_tenants"),
    id=_STR,
    name=_STR,
    sub_tenants={"type": "array", "items": _obj(("id", "name"), id=_STR, name=_STR)},
)
_PARTNER_APP = _obj(
    ("id", "name", "client_id", "allowed_origins", "pairs", "created_at", "last_used_at", "status"),
    id=_INT,
    name=_STR,
    client_id=_STR,
    allowed_origins={"type": "array", "items": _STR},
    pairs={"type": "array", "items": _PAIR},
    created_at=_TIME,
    last_used_at=_TIME,
    status={"enum": ["active", "revoked"]},
)
_IMPORT_REPORT = _obj(
    ("added", "removed", "unchanged", "errors"),
    added=_INT,
    removed=_INT,
    unchanged=_INT,
    errors={"type": "array", "items": _obj(("line", "message"), line=_INT, message=_STR)},
)


@dataclasses.dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    # "admin": an administrator's key or session; "user": any signed-in user.
    access: str
    ok: int = 200
    answer: Schema | None = None
    body: Schema | None = None
    body_type: str = "application/json"
    answer_type: str = "application/json"
    params: tuple[tuple[str, str, str], ...] = ()  # (name, in, description)
    errors: tuple[int, ...] = ()


def _admin(method: str, path: str, summary: str, **kw: Any) -> Operation:
    return Operation(method, path, summary, "admin", **kw)


def _user(method: str, path: str, summary: str, **kw: Any) -> Operation:
    return Operation(method, path, summary, "user", **kw)


_PAGE = ("page", "query", "page number, from 1")

OPERATIONS: tuple[Operation, ...] = (
    _user(
        "GET",
        "/api/v1/user",
        "The caller",
        answer=_obj(("id", "email", "is_admin"), id=_INT, email=_STR, is_admin=_BOOL),
    ),
    _user(
        "POST",
        "/api/v1/user/keys",
        "Create a personal API key; the token is in this answer only",
        ok=201,
        body=_obj(("handle",), handle=_STR, alias=_STR),
        answer=_obj(
            ("handle", "alias", "token", "created_at"),
            handle=_STR,
            alias={"type": ["string", "null"]},
            token=_STR,
            created_at=_TIME,
        ),
        errors=(409, 422),
    ),
    _user("GET", "/api/v1/user/keys", "The caller's keys (never a token)", answer=_items(_KEY)),
    _user("GET", "/api/v1/user/keys/{handle}", "One key", answer=_KEY, errors=(404,)),
    _user(
        "DELETE",
        "/api/v1/user/keys/{handle}",
        "Delete a key; its token fails on the next request",
        ok=204,
        errors=(404,),
    ),
    _admin("GET", "/api/v1/tenants", "Tenants with their sub-tenants", answer=_items(_TENANT)),
    _admin(
        "POST",
        "/api/v1/tenants",
        "Create a tenant",
        ok=201,
        body=_obj(("id",), id=_STR, name=_STR),
        answer=_TENANT,
        errors=(409, 422),
    ),
    _admin(
        "DELETE",
        "/api/v1/tenants/{tenant_id}",
        "Delete a tenant; 409 while in use unless cascade=true",
        ok=204,
        params=(("cascade", "query", "true to delete its mappings and partner-app pairs too"),),
        errors=(404, 409),
    ),
    _admin(
        "POST",
        "/api/v1/tenants/{tenant_id}/sub-tenants",
        "Create a sub-tenant",
        ok=201,
        body=_obj(("id",), id=_STR, name=_STR),
        answer=_obj(("id", "name"), id=_STR, name=_STR),
        errors=(404, 409, 422),
    ),
    _admin(
        "DELETE",
        "/api/v1/tenants/{tenant_id}/sub-tenants/{sub_tenant_id}",
        "Delete a sub-tenant; 409 while in use unless cascade=true",
        ok=204,
        params=(("cascade", "query", "true to delete what uses it too"),),
        errors=(404, 409),
    ),
    _admin(
        "GET",
        "/api/v1/users",
        "Users, ordered by e-mail",
        params=(("q", "query", "part of the e-mail address"), _PAGE),
        answer=_items(_USER, paged=True),
    ),
    _admin(
        "POST",
        "/api/v1/users",
        "Create a user; without a password, the answer carries a one-time set-password link"
        " valid 24 h",
        ok=201,
        body=_obj(("email",), email=_STR, is_admin=_BOOL, password=_STR),
        answer=_obj(
            ("id", "email", "is_admin"), id=_INT, email=_STR, is_admin=_BOOL, set_password_url=_STR
        ),
        errors=(409, 422),
    ),
    _admin(
        "PATCH",
        "/api/v1/users/{email}",
        "Disable, enable, or change the admin flag; disabling ends the user's sessions at once",
        body=_obj(disabled=_BOOL, is_admin=_BOOL),
        answer=_USER,
        errors=(404, 422),
    ),
    _admin(
        "GET",
        "/api/v1/users/{email}/mappings",
        "The user's (tenant, sub-tenant) pairs",
        answer=_items(_PAIR),
        errors=(404,),
    ),
    _admin(
        "PUT",
        "/api/v1/users/{email}/mappings",
        "Replace the user's pairs; a removed pair ends the sessions using it at once",
        body=_items(_PAIR),
        answer=_items(_PAIR),
        errors=(404, 422),
    ),
    _admin(
        "POST",
        "/api/v1/mappings/import",
        "Import mappings from CSV (email,tenant_id,sub_tenant_id); with any error: 422 and"
        " nothing applied",
        body={"type": "string"},
        body_type="text/csv",
        answer=_IMPORT_REPORT,
        params=(
            ("mode", "query", "merge (add) or replace (the file becomes the whole table)"),
            ("dry_run", "query", "true to preview without applying"),
        ),
        errors=(413, 415, 422),
    ),
    _admin(
        "GET",
        "/api/v1/mappings/export",
        "Every mapping as CSV",
        answer={"type": "string"},
        answer_type="text/csv",
    ),
    _admin("GET", "/api/v1/partner-apps", "Partner apps", answer=_items(_PARTNER_APP)),
    _admin(
        "POST",
        "/api/v1/partner-apps",
        "Create a partner app; client_secret is in this answer only",
        ok=201,
        body=_obj(
            ("name", "allowed_origins", "pairs"),
            name=_STR,
            allowed_origins={"type": "array", "items": _STR},
            pairs={"type": "array", "items": _PAIR},
        ),
        answer=_PARTNER_APP,
        errors=(422,),
    ),
    _admin(
        "PATCH",
        "/api/v1/partner-apps/{id}",
        "Change a partner app's name, allowed origins or pairs",
        body=_obj(
            name=_STR,
            allowed_origins={"type": "array", "items": _STR},
            pairs={"type": "array", "items": _PAIR},
        ),
        answer=_PARTNER_APP,
        errors=(404, 422),
    ),
    _admin(
        "POST",
        "/api/v1/partner-apps/{id}/secret",
        "Replace the client secret; the old one fails at once",
        answer=_obj(("client_id", "client_secret"), client_id=_STR, client_secret=_STR),
        errors=(404, 409),
    ),
    _admin(
        "POST",
        "/api/v1/partner-apps/{id}/revoke",
        "Revoke the app: its tokens and embed sessions end at once",
        answer=_PARTNER_APP,
        errors=(404,),
    ),
    _admin(
        "GET",
        "/api/v1/audit",
        "The audit log, newest first",
        params=(
            ("actor", "query", "exact actor"),
            ("action", "query", "exact action, e.g. user.create"),
            _PAGE,
        ),
        answer=_items(
            _obj(
                ("at", "actor", "action", "target"), at=_TIME, actor=_STR, action=_STR, target=_STR
            ),
            paged=True,
        ),
    ),
)

_ACCESS = {
    "admin": "An administrator's personal API key, or the console session with X-CSRF-Token.",
    "user": "Any signed-in user's personal API key, or the console session with X-CSRF-Token.",
}


def _responses(op: Operation) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "No content" if op.ok == 204 else "OK"}
    if op.answer is not None:
        ok["content"] = {op.answer_type: {"schema": op.answer}}
    responses = {str(op.ok): ok}
    for status in (401, 403, *op.errors) if op.access == "admin" else (401, *op.errors):
        responses[str(status)] = {
            "description": "A problem",
            "content": {"application/problem+json": {"schema": _PROBLEM}},
        }
    return responses


def _operation(op: Operation) -> dict[str, Any]:
    names = [part[1:-1] for part in op.path.split("/") if part.startswith("{")]
    parameters = [{"name": name, "in": "path", "required": True, "schema": _STR} for name in names]
    parameters += [
        {"name": name, "in": where, "description": text, "schema": _STR}
        for name, where, text in op.params
    ]
    described: dict[str, Any] = {
        "summary": op.summary,
        "description": _ACCESS[op.access],
        "security": [{"apiKey": []}, {"session": []}],
        "responses": _responses(op),
    }
    if parameters:
        described["parameters"] = parameters
    if op.body is not None:
        described["requestBody"] = {
            "required": True,
            "content": {op.body_type: {"schema": op.body}},
        }
    return described


@functools.cache
def document(public_url: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "bff admin API",
            "version": __version__,
            "description": "JSON under /api/v1/; errors are RFC 9457 problem details.",
        },
        "servers": [{"url": public_url.rstrip("/")}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "A personal API key"},
                "session": {"type": "apiKey", "in": "cookie", "name": "__Host-bff_session"},
            },
            "schemas": {
                "Problem": _obj(
                    ("type", "title", "status", "detail"),
                    type=_STR,
                    title=_STR,
                    status=_INT,
                    detail=_STR,
                    field=_STR,
                )
            },
        },
    }
