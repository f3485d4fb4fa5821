"""The OpenAPI 3.1 description of bff's JSON APIs, built from one table of operations.

The table is checked against the app's route table by the tests (every ``/api/v1/``
route is described, nothing else is), so the document cannot drift from the code.
``GET /api/openapi.json`` serves it; ``GET /api/docs`` renders the same table as a
page, with no script and nothing loaded from another site.
"""

from __future__ import annotations

import dataclasses
import functools
from http import HTTPStatus
from typing import Any

from bff import __version__

Schema = dict[str, Any]

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_OAUTH_ERROR = {"$ref": "#/components/schemas/OAuthError"}


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
_PROBLEM_SCHEMA = _obj(
    ("type", "title", "status", "detail"),
    type=_STR,
    title=_STR,
    status=_INT,
    detail=_STR,
    field=_STR,
)
_OAUTH_ERROR_SCHEMA = _obj(
    ("error", "error_description"),
    error={"enum": ["invalid_request", "invalid_client", "unsupported_grant_type", "slow_down"]},
    error_description=_STR,
    type=_STR,
    title=_STR,
    status=_INT,
    detail=_STR,
)
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


_TOKEN = _obj(
    ("access_token", "token_type", "expires_in"),
    access_token={"type": "string", "description": "A JWT; send it as a bearer token"},
    token_type={"enum": ["Bearer"]},
    expires_in={"enum": [3600]},
)
_TOKEN_REQUEST = _obj(
    ("grant_type",),
    grant_type={"enum": ["client_credentials"]},
    client_id={"type": "string", "description": "unless sent with HTTP Basic"},
    client_secret={"type": "string", "description": "unless sent with HTTP Basic"},
)
_LAUNCH_REQUEST = _obj(
    ("user", "tenant_id", "sub_tenant_id"),
    user=_obj(
        ("id",),
        id={"type": "string", "description": "the user's id in the partner app"},
        email={"type": "string", "description": "for display only"},
        name={"type": "string", "description": "for display only"},
    ),
    tenant_id=_STR,
    sub_tenant_id=_STR,
    origin={
        "type": "string",
        "description": "the page's origin; required when the app allows several",
    },
)
_LAUNCH = _obj(
    ("url", "expires_in"),
    url={"type": "string", "description": "frame it within expires_in seconds; single-use"},
    expires_in={"enum": [60]},
)


@dataclasses.dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    # "admin": an administrator's key or session; "user": any signed-in user;
    # "client": a partner app's client credentials; "partner": a partner app's token.
    access: str
    ok: int = 200
    answer: Schema | None = None
    body: Schema | None = None
    body_type: str = "application/json"
    answer_type: str = "application/json"
    params: tuple[tuple[str, str, str], ...] = ()  # (name, in, description)
    errors: tuple[int, ...] = ()
    # Error answers that are not problems: (status, media type, schema).
    error_bodies: tuple[tuple[int, str, Schema], ...] = ()

    @property
    def audience(self) -> str:
        return AUDIENCE[self.access]


def _admin(method: str, path: str, summary: str, **kw: Any) -> Operation:
    return Operation(method, path, summary, "admin", **kw)


def _user(method: str, path: str, summary: str, **kw: Any) -> Operation:
    return Operation(method, path, summary, "user", **kw)


def _partner(method: str, path: str, summary: str, **kw: Any) -> Operation:
    return Operation(method, path, summary, "partner", **kw)


_PAGE = ("page", "query", "page number, from 1")
# Query parameters the routes validate (others are free text); a bad value is a 422.
_PARAM_SCHEMAS: dict[str, Schema] = {
    "page": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
    "cascade": _BOOL,
    "dry_run": _BOOL,
    "mode": {"enum": ["merge", "replace"]},
}

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
        errors=(404, 409, 422),
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
        errors=(404, 409, 422),
    ),
    _admin(
        "GET",
        "/api/v1/users",
        "Users, ordered by e-mail",
        params=(("q", "query", "part of the e-mail address"), _PAGE),
        answer=_items(_USER, paged=True),
        errors=(422,),
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
        errors=(404, 422),
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
        errors=(415, 422),
        # A file with errors: the report says which lines, and nothing is applied.
        error_bodies=((422, "application/json", _IMPORT_REPORT),),
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
        errors=(422,),
    ),
    Operation(
        "POST",
        "/api/v1/oauth/token",
        "A partner token for the app's client credentials (OAuth 2.0 client credentials grant)",
        "client",
        body=_TOKEN_REQUEST,
        body_type="application/x-www-form-urlencoded",
        answer=_TOKEN,
    ),
    _partner(
        "POST",
        "/api/v1/embed/launches",
        "A single-use launch URL, valid 60 s, for one of the app's users and pairs",
        ok=201,
        body=_LAUNCH_REQUEST,
        answer=_LAUNCH,
        errors=(403, 422),
    ),
)

_ACCESS = {
    "admin": "An administrator's personal API key, or the console session with X-CSRF-Token.",
    "user": "Any signed-in user's personal API key, or the console session with X-CSRF-Token.",
    "client": (
        "A partner app's client_id and client_secret: with HTTP Basic (RFC 6749 section"
        " 2.3.1: each form-urlencoded, then base64) or as the form's client_id and"
        ' client_secret, never both. Errors are RFC 6749 section 5.2 JSON ({"error": ...})'
        " with the problem-details fields alongside; an unknown client and a wrong secret"
        " get the same answer. After 10 failed attempts a minute for one client id, or 30"
        " from one address: 429 slow_down with Retry-After."
    ),
    "partner": (
        "A partner token from POST /api/v1/oauth/token, as 'Authorization: Bearer <token>';"
        " it fails at once when the app's secret is regenerated or the app revoked. At most"
        " 120 calls a minute per app, then 429 with Retry-After."
    ),
}
# Who may call, in a few words, for the documentation page.
AUDIENCE = {
    "admin": "Administrators only.",
    "user": "Any signed-in user.",
    "client": "A partner app, with its client credentials.",
    "partner": "A partner app, with its bearer token.",
}
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "admin": [{"apiKey": []}, {"session": []}],
    "user": [{"apiKey": []}, {"session": []}],
    # Credentials in the form body (client_secret_post) are the request body's fields:
    # OpenAPI has no security scheme for a form body, hence the empty alternative.
    "client": [{"clientSecretBasic": []}, {}],
    "partner": [{"partnerBearer": []}],
}
# The statuses every operation of a kind can answer, besides its own.
_COMMON_ERRORS = {
    "admin": (401, 403),
    "user": (401,),
    "client": (400, 401, 429),
    "partner": (401, 429),
}
_EXAMPLE_DETAILS = {
    400: "The request body is not valid JSON.",
    401: "This API key is not valid.",
    403: "This needs an administrator.",
    404: "There is nothing at this address.",
    409: "This tenant is still in use; repeat with cascade=true to delete what uses it.",
    413: "The request is larger than this page accepts.",
    415: "Send the file as text/csv.",
    422: "tenant id 'a b' may contain only letters, digits, '.', '_' and '-'",
    429: "Too many requests from this partner app; retry in 12 s.",
}
_PARTNER_DETAILS = {
    401: "This partner token is not valid or has expired; get a new one from /api/v1/oauth/token.",
    403: "this app may not open sessions for acme/north",
}
_OAUTH_ERRORS = {
    400: ("unsupported_grant_type", "Only grant_type=client_credentials is supported."),
    401: ("invalid_client", "Client authentication failed."),
    429: ("slow_down", "Too many failed attempts; retry in 12 s."),
}
_HEADERS = {
    401: {"WWW-Authenticate": {"required": True, "schema": _STR}},
    429: {"Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
}


def _problem_example(op: Operation, status: int) -> dict[str, Any]:
    details = _PARTNER_DETAILS if op.access == "partner" else {}
    phrase = HTTPStatus(status).phrase
    detail = details.get(status) or _EXAMPLE_DETAILS.get(status, phrase)
    example: dict[str, Any] = {"type": "about:blank", "title": phrase, "status": status}
    example["detail"] = detail
    if status == 422:
        example["field"] = "tenant_id"
    return example


def _error_response(op: Operation, status: int) -> dict[str, Any]:
    if op.access == "client" and status in _OAUTH_ERRORS:
        error, description = _OAUTH_ERRORS[status]
        example = {
            "error": error,
            "error_description": description,
            "type": "about:blank",
            "title": HTTPStatus(status).phrase,
            "status": status,
            "detail": description,
        }
        content = {"application/json": {"schema": _OAUTH_ERROR, "example": example}}
        description = "An RFC 6749 error"
    else:
        example = _problem_example(op, status)
        content = {"application/problem+json": {"schema": _PROBLEM, "example": example}}
        description = "A problem"
    response: dict[str, Any] = {"description": description, "content": content}
    if op.access in ("client", "partner") and status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def _body_errors(op: Operation) -> tuple[int, ...]:
    """Any body can be too large (413); a JSON body that is not a JSON object is a 400."""
    if op.body is None:
        return ()
    return (400, 413) if op.body_type == "application/json" else (413,)


def _responses(op: Operation) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "No content" if op.ok == 204 else "OK"}
    if op.answer is not None:
        ok["content"] = {op.answer_type: {"schema": op.answer}}
    responses = {str(op.ok): ok}
    for status in sorted({*_COMMON_ERRORS[op.access], *_body_errors(op), *op.errors}):
        responses[str(status)] = _error_response(op, status)
    for status, media_type, schema in op.error_bodies:
        responses[str(status)]["content"][media_type] = {"schema": schema}
    return responses


def _operation(op: Operation) -> dict[str, Any]:
    names = [part[1:-1] for part in op.path.split("/") if part.startswith("{")]
    parameters = [{"name": name, "in": "path", "required": True, "schema": _STR} for name in names]
    parameters += [
        {"name": name, "in": where, "description": text, "schema": _PARAM_SCHEMAS.get(name, _STR)}
        for name, where, text in op.params
    ]
    described: dict[str, Any] = {
        "summary": op.summary,
        "description": _ACCESS[op.access],
        "security": _SECURITY[op.access],
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
            "title": "bff admin and partner API",
            "version": __version__,
            "description": "JSON under /api/v1/; errors are RFC 9457 problem details, except"
            " the token endpoint's, which are RFC 6749 section 5.2 errors.",
        },
        "servers": [{"url": public_url.rstrip("/")}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "A personal API key"},
                "session": {"type": "apiKey", "in": "cookie", "name": "__Host-bff_session"},
                "clientSecretBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "A partner app's client_id and client_secret (RFC 6749"
                    " section 2.3.1)",
                },
                "partnerBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A partner token from POST /api/v1/oauth/token, valid 1 h",
                },
            },
            "schemas": {"Problem": _PROBLEM_SCHEMA, "OAuthError": _OAUTH_ERROR_SCHEMA},
        },
    }
