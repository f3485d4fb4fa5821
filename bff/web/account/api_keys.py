"""``/account/api-keys``: the signed-in user's personal API keys.

Any signed-in user manages their own keys here; an embedded (partner iframe)
session is not the user's own browser and is refused. A new key's token is
rendered into the response of the creating POST only: only its hash is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bff.errors import AlreadyExistsError, BffError, InvalidInputError, NotFoundError
from bff.operations import api_keys
from bff.web.auth.csrf import require_csrf
from bff.web.auth.guard import require_session
from bff.web.auth.sessions import Session
from bff.web.errors import refusal_status
from bff.web.services import services

PATH = "/account/api-keys"
EMBEDDED = "Manage your API keys from the site itself, not from an embedded page."
NOTICES = {"deleted": "The key was deleted. Its token no longer works."}


def _session(request: Request) -> Session:
    session = require_session(request)
    if session.embedded:
        raise HTTPException(403, EMBEDDED)
    return session


async def _form(request: Request) -> tuple[Session, FormData]:
    session = _session(request)
    return session, await require_csrf(request)


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


async def _page(
    request: Request,
    session: Session,
    context: Mapping[str, Any] | None = None,
    *,
    error: BffError | None = None,
) -> Response:
    keys = await api_keys.list_keys(services(request).database, session.user_id)
    page = {
        "keys": keys,
        "handle": "",
        "alias": "",
        "created": None,
        "notice": NOTICES.get(request.query_params.get("done", "")),
        "error": str(error) if error else None,
        **(context or {}),
    }
    return services(request).templates.TemplateResponse(
        request, "account/api_keys.html", page, status_code=refusal_status(error) if error else 200
    )


async def keys_page(request: Request) -> Response:
    return await _page(request, _session(request))


async def create_key(request: Request) -> Response:
    session, form = await _form(request)
    handle, alias = _field(form, "handle"), _field(form, "alias")
    try:
        created = await api_keys.create_key(
            services(request).database, session.email, session.email, handle, alias or None
        )
    except (InvalidInputError, AlreadyExistsError) as error:
        return await _page(request, session, {"handle": handle, "alias": alias}, error=error)
    return await _page(request, session, {"created": created})


async def delete_key(request: Request) -> Response:
    session, form = await _form(request)
    handle = _field(form, "handle")
    if _field(form, "confirm") != "yes":
        return services(request).templates.TemplateResponse(
            request, "account/confirm_delete_key.html", {"handle": handle}
        )
    try:
        await api_keys.delete_key(
            services(request).database, session.email, session.user_id, handle
        )
    except NotFoundError as error:
        return await _page(request, session, error=error)
    return RedirectResponse(f"{PATH}?done=deleted", status_code=303)


routes: list[BaseRoute] = [
    Route(PATH, keys_page, name="account:api-keys"),
    Route(f"{PATH}/create", create_key, methods=["POST"], name="account:api-keys.create"),
    Route(f"{PATH}/delete", delete_key, methods=["POST"], name="account:api-keys.delete"),
]
