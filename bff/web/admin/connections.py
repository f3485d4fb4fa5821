"""``/admin/connections``: vendor connections, secrets write-only, "test connection".

Every change goes through :mod:`bff.operations.connections`; see it for how a stored
connection ``default`` overrides the ``BFF_UPSTREAM_*`` one. Secret fields are never
filled in: an empty one keeps the stored value, and the page only says when it was set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bff.errors import InvalidInputError
from bff.operations import connections as ops
from bff.operations import tokens
from bff.settings import CONNECTOR_KINDS
from bff.web.admin.console import (
    admin_form,
    confirm_page,
    confirmed,
    field,
    redirect_done,
    render,
    require_admin,
)
from bff.web.admin.tokens import describe_outcome
from bff.web.errors import REFUSED, refusal_status
from bff.web.services import services

SECTION = "admin:connections"
PATH = "/admin/connections"
NOTICES = {
    "saved": "The connection was saved; its cached tokens were dropped.",
    "deleted": "The connection was deleted with its cached tokens.",
}
_TEXT_FIELDS = ("auth_url", "realm", "whoami_url", "api_username", "pair_token_url")
_CHOICE_FIELDS = ("auth_scheme", "pair_token_style")
_FLAG_FIELDS = ("single_use", "basic_auth")


def _input(form: FormData, connection_id: str | None = None) -> ops.ConnectionInput:
    options: dict[str, str | bool] = {name: field(form, name).strip() for name in _TEXT_FIELDS}
    options.update({name: field(form, name) for name in _CHOICE_FIELDS})
    options.update({name: field(form, name) == "on" for name in _FLAG_FIELDS})
    return ops.ConnectionInput(
        id=connection_id if connection_id is not None else field(form, "id"),
        kind=field(form, "kind"),
        base_url=field(form, "base_url").strip(),
        api_key=field(form, "api_key"),
        api_secret=field(form, "api_secret"),
        clear_api_secret=field(form, "clear_api_secret") == "on",
        options=options,
    )


def _values(view: ops.ConnectionView) -> dict[str, Any]:
    """A saved connection as form values (never a secret)."""
    upstream = view.upstream
    return {
        "id": view.id,
        "kind": upstream.kind,
        "base_url": upstream.base_url or "",
        **{name: getattr(upstream, name) or "" for name in _TEXT_FIELDS},
        **{name: getattr(upstream, name) for name in (*_CHOICE_FIELDS, *_FLAG_FIELDS)},
    }


def _submitted(values: ops.ConnectionInput) -> dict[str, Any]:
    """What the admin typed, to show it again (never the secrets)."""
    return {"id": values.id, "kind": values.kind, "base_url": values.base_url, **values.options}


async def _pairs(request: Request) -> list[tuple[str, str]]:
    return await tokens.known_pairs(services(request).database)


async def connections_page(request: Request) -> Response:
    require_admin(request)
    return await _list(request, {"kind": CONNECTOR_KINDS[0]})


async def _list(
    request: Request,
    values: Mapping[str, Any],
    *,
    error: Exception | None = None,
) -> Response:
    svc = services(request)
    context = {
        "connections": await ops.list_connections(svc.database, svc.settings),
        "kinds": CONNECTOR_KINDS,
        "values": values,
        "error": str(error) if error else None,
        "error_field": getattr(error, "field", None),
        "adding": error is not None,
    }
    return render(
        request,
        "admin/connections.html",
        context,
        section=SECTION,
        notices=NOTICES,
        status_code=refusal_status(error) if error else 200,
    )


async def create_connection(request: Request) -> Response:
    session, form = await admin_form(request)
    svc = services(request)
    values = _input(form)
    try:
        view = await ops.save_connection(
            svc.database,
            svc.secret_box,
            session.email,
            values,
            settings=svc.settings,
            clock=svc.clock,
            create=True,
            broker=svc.broker,
        )
    except REFUSED as exc:
        return await _list(request, _submitted(values), error=exc)
    return redirect_done(f"{PATH}/{view.id}", "saved")


async def _detail(
    request: Request,
    connection_id: str,
    *,
    values: Mapping[str, Any] | None = None,
    error: Exception | None = None,
    outcome: tokens.TokenOutcome | None = None,
    pair: tuple[str, str] = ("", ""),
) -> Response:
    svc = services(request)
    view = await ops.get_connection(svc.database, svc.settings, connection_id)
    context = {
        "connection": view,
        "kinds": CONNECTOR_KINDS,
        "values": values if values is not None else _values(view),
        "error": str(error) if error else None,
        "error_field": getattr(error, "field", None),
        "usable": svc.broker.has_connection(view.id),
        "pairs": await _pairs(request),
        "pair": pair,
        "outcome": describe_outcome(outcome, svc.clock.now()) if outcome else None,
    }
    return render(
        request,
        "admin/connections_detail.html",
        context,
        section=SECTION,
        notices=NOTICES,
        status_code=refusal_status(error) if error else 200,
    )


async def connection_page(request: Request) -> Response:
    require_admin(request)
    return await _detail(request, request.path_params["connection_id"])


async def save_connection(request: Request) -> Response:
    session, form = await admin_form(request)
    svc = services(request)
    connection_id = request.path_params["connection_id"]
    values = _input(form, connection_id)
    try:
        await ops.save_connection(
            svc.database,
            svc.secret_box,
            session.email,
            values,
            settings=svc.settings,
            clock=svc.clock,
            create=False,
            broker=svc.broker,
        )
    except REFUSED as exc:
        return await _detail(request, connection_id, values=_submitted(values), error=exc)
    return redirect_done(f"{PATH}/{connection_id}", "saved")


async def check_connection(request: Request) -> Response:
    """ "Test connection": one token for a pair, through the broker; never the token."""
    session, form = await admin_form(request)
    svc = services(request)
    connection_id = request.path_params["connection_id"]
    pair = (field(form, "tenant_id").strip(), field(form, "sub_tenant_id").strip())
    try:
        if not pair[0]:
            raise InvalidInputError("tenant id is empty", field="tenant_id")
        scope = tokens.token_scope(connection_id, *pair)
        outcome = await tokens.try_connection(svc.database, session.email, svc.broker, scope)
    except REFUSED as exc:
        return await _detail(request, connection_id, error=exc, pair=pair)
    return await _detail(request, connection_id, outcome=outcome, pair=pair)


async def delete_connection(request: Request) -> Response:
    session, form = await admin_form(request)
    svc = services(request)
    connection_id = request.path_params["connection_id"]
    view = await ops.get_connection(svc.database, svc.settings, connection_id)
    if not view.stored:
        raise InvalidInputError(
            "connection default comes from the BFF_UPSTREAM_* settings; change them to change it"
        )
    if not confirmed(form):
        consequences = ["Its cached tokens are dropped at once."]
        if view.overrides_settings:
            consequences.append("Connection default falls back to the BFF_UPSTREAM_* settings.")
        return confirm_page(
            request,
            section=SECTION,
            title=f"Delete connection {view.id}?",
            question=f"The stored connection {view.id} ({view.upstream.kind}) will be deleted.",
            action=f"{PATH}/{view.id}/delete",
            back=f"{PATH}/{view.id}",
            consequences=consequences,
        )
    await ops.delete_connection(
        svc.database,
        session.email,
        view.id,
        settings=svc.settings,
        clock=svc.clock,
        broker=svc.broker,
    )
    return redirect_done(PATH, "deleted")


routes: list[BaseRoute] = [
    Route(PATH, connections_page, name=SECTION),
    Route(PATH, create_connection, methods=["POST"], name="admin:connections.create"),
    Route(f"{PATH}/{{connection_id}}", connection_page, name="admin:connection"),
    Route(
        f"{PATH}/{{connection_id}}",
        save_connection,
        methods=["POST"],
        name="admin:connection.save",
    ),
    Route(
        f"{PATH}/{{connection_id}}/test",
        check_connection,
        methods=["POST"],
        name="admin:connection.test",
    ),
    Route(
        f"{PATH}/{{connection_id}}/delete",
        delete_connection,
        methods=["POST"],
        name="admin:connection.delete",
    ),
]
