"""``/account/set-password``: redeem a one-time set-password link.

The page is for a signed-out browser holding the link, so its form's CSRF token may
be bound to the pre-session. The token is in the page's URL: every answer here sets
``Referrer-Policy: no-referrer`` so no request the page makes carries it on, and the
access log never records query strings.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bff.errors import NotFoundError
from bff.operations import users
from bff.passwords import WeakPasswordError
from bff.web.auth.csrf import require_csrf
from bff.web.services import services

PATH = "/account/set-password"
HEADERS = {"Referrer-Policy": "no-referrer"}
INVALID_STATUS = 404
MISMATCH = "The two passwords are not the same."
# Generated tokens are 43 characters; anything much longer is not worth hashing.
_MAX_TOKEN = 200


def _render(request: Request, template: str, context: dict[str, Any], status: int) -> Response:
    return services(request).templates.TemplateResponse(
        request, f"account/{template}", context, status_code=status, headers=HEADERS
    )


def _invalid(request: Request) -> Response:
    return _render(request, "set_password_invalid.html", {}, INVALID_STATUS)


async def _owner(request: Request, token: str) -> str | None:
    """The e-mail the token is for, or None when it is unknown, used or expired."""
    if not token or len(token) > _MAX_TOKEN:
        return None
    svc = services(request)
    try:
        return await users.set_password_token_owner(svc.database, token, now=svc.clock.now())
    except NotFoundError:
        return None


async def set_password_form(request: Request) -> Response:
    token = request.query_params.get("token", "")
    email = await _owner(request, token)
    if email is None:
        return _invalid(request)
    return _render(request, "set_password.html", {"token": token, "email": email}, 200)


async def set_password(request: Request) -> Response:
    form = await require_csrf(request, allow_presession=True)
    token, password, again = (form.get(name) for name in ("token", "password", "password_again"))
    if not (isinstance(token, str) and isinstance(password, str) and isinstance(again, str)):
        return _invalid(request)
    email = await _owner(request, token)
    if email is None:
        return _invalid(request)
    context = {"token": token, "email": email}
    if password != again:
        return _render(request, "set_password.html", {**context, "error": MISMATCH}, 422)
    svc = services(request)
    try:
        await users.set_password_with_token(svc.database, token, password, now=svc.clock.now())
    except WeakPasswordError as error:
        message = f"{str(error)[:1].upper()}{str(error)[1:]}."
        return _render(request, "set_password.html", {**context, "error": message}, 422)
    except NotFoundError:  # redeemed in another tab meanwhile
        return _invalid(request)
    return _render(request, "set_password_done.html", {"email": email}, 200)


routes: list[BaseRoute] = [
    Route(PATH, set_password_form, methods=["GET"], name="account:set-password"),
    Route(PATH, set_password, methods=["POST"], name="account:set-password.submit"),
]
