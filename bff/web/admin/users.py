"""``/admin/users``: search, create, disable and enable, delete, the admin flag.

Row actions post the e-mail in a hidden field (an address has no place in a path)
plus the list's ``q`` and ``page``, so the admin lands back on the same view. A user
created without a password gets a one-time set-password link, rendered into the
response of that POST only: it is never stored in clear nor put in a URL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlencode

from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bff.errors import AlreadyExistsError, BffError, InvalidInputError, NotFoundError
from bff.operations import users
from bff.passwords import WeakPasswordError
from bff.web.admin.console import (
    admin_form,
    confirm_page,
    confirmed,
    field,
    page_number,
    redirect_done,
    render,
    require_admin,
)
from bff.web.auth.sessions import Session
from bff.web.errors import refusal_status
from bff.web.services import services

PATH = "/admin/users"
SECTION = "admin:users"
_MAX_QUERY = 254
NOTICES = {
    "created": "The user was created.",
    "disabled": "The user was disabled; their sessions have ended.",
    "enabled": "The user was enabled.",
    "admin-granted": "The user is now an administrator.",
    "admin-removed": "The user is no longer an administrator.",
    "deleted": "The user was deleted.",
}


def _view_of(values: ImmutableMultiDict[str, Any]) -> tuple[str, int]:
    """The list view (search, page) a request or a row form names."""
    q = values.get("q", "")
    page = values.get("page", "1")
    return (
        q.strip()[:_MAX_QUERY] if isinstance(q, str) else "",
        page_number(page) if isinstance(page, str) else 1,
    )


def _back(q: str, page: int) -> dict[str, str]:
    return {key: value for key, value in (("q", q), ("page", str(page))) if value not in ("", "1")}


async def _list_page(
    request: Request,
    session: Session,
    q: str,
    page: int,
    *,
    error: BffError | None = None,
    new_email: str = "",
    new_admin: bool = False,
) -> Response:
    """The list; with ``error``, refusing a form (its input kept) with the matching status."""
    found = await users.list_users(services(request).database, q=q, page=page)

    def page_link(number: int) -> str:
        return "?" + urlencode({**({"q": q} if q else {}), "page": str(number)})

    context = {
        "users": found.items,
        "q": q,
        "page": page,
        "back": list(_back(q, page).items()),
        "me": session.email,
        "previous_page": page_link(page - 1) if page > 1 else None,
        "next_page": page_link(found.next_page) if found.next_page else None,
        "error": str(error) if error else None,
        "new_email": new_email,
        "new_admin": new_admin,
    }
    return render(
        request,
        "admin/users.html",
        context,
        section=SECTION,
        notices=NOTICES,
        status_code=refusal_status(error) if error else 200,
    )


async def users_page(request: Request) -> Response:
    session = require_admin(request)
    q, page = _view_of(request.query_params)
    return await _list_page(request, session, q, page)


async def create_user(request: Request) -> Response:
    session, form = await admin_form(request)
    svc = services(request)
    email = field(form, "email")
    is_admin = field(form, "is_admin") == "yes"
    now = svc.clock.now()
    try:
        created = await users.create_user(
            svc.database,
            session.email,
            email,
            is_admin=is_admin,
            password=field(form, "password") or None,
            now=now,
        )
    except (InvalidInputError, WeakPasswordError, AlreadyExistsError) as error:
        return await _list_page(
            request, session, "", 1, error=error, new_email=email, new_admin=is_admin
        )
    if created.set_password_token is None:
        return redirect_done(PATH, "created", q=created.user.email)
    return _link_page(request, created.user, created.set_password_token, now)


def _link_page(request: Request, user: users.UserView, token: str, now: datetime) -> Response:
    context = {
        "user": user,
        "link": users.set_password_url(services(request).settings.public_url, token),
        "expires_at": now + users.SET_PASSWORD_LIFETIME,
    }
    return render(request, "admin/user_created.html", context, section=SECTION)


_DONE = {
    ("disabled", True): "disabled",
    ("disabled", False): "enabled",
    ("is_admin", True): "admin-granted",
    ("is_admin", False): "admin-removed",
}


async def _update(
    request: Request, flag: Literal["disabled", "is_admin"], value: bool | None
) -> Response:
    """Set one flag of one user (``value`` None: the form's own field says yes or no),
    then back to the list."""
    session, form = await admin_form(request)
    q, page = _view_of(form)
    if value is None:
        value = field(form, flag) == "yes"
    try:
        await users.update_user(
            services(request).database,
            session.email,
            field(form, "email"),
            disabled=value if flag == "disabled" else None,
            is_admin=value if flag == "is_admin" else None,
            live=services(request).live(),
        )
    except (InvalidInputError, NotFoundError) as error:
        return await _list_page(request, session, q, page, error=error)
    return redirect_done(PATH, _DONE[flag, value], **_back(q, page))


async def disable_user(request: Request) -> Response:
    return await _update(request, "disabled", True)


async def enable_user(request: Request) -> Response:
    return await _update(request, "disabled", False)


async def set_admin(request: Request) -> Response:
    return await _update(request, "is_admin", None)


async def delete_user(request: Request) -> Response:
    session, form = await admin_form(request)
    q, page = _view_of(form)
    email = field(form, "email")
    back = _back(q, page)
    if not confirmed(form):
        return confirm_page(
            request,
            section=SECTION,
            title="Delete user",
            question=f"Delete the user {email}?",
            action=f"{PATH}/delete",
            back=PATH + (f"?{urlencode(back)}" if back else ""),
            consequences=[
                "Their sessions end at once.",
                "Their personal API keys and mappings are deleted.",
                "This cannot be undone.",
            ],
            hidden=[("email", email), *back.items()],
        )
    try:
        await users.delete_user(
            services(request).database, session.email, email, live=services(request).live()
        )
    except (InvalidInputError, NotFoundError) as error:
        return await _list_page(request, session, q, page, error=error)
    return redirect_done(PATH, "deleted", **back)


routes: list[BaseRoute] = [
    Route(PATH, users_page, name="admin:users"),
    Route(f"{PATH}/create", create_user, methods=["POST"], name="admin:users.create"),
    Route(f"{PATH}/disable", disable_user, methods=["POST"], name="admin:users.disable"),
    Route(f"{PATH}/enable", enable_user, methods=["POST"], name="admin:users.enable"),
    Route(f"{PATH}/admin", set_admin, methods=["POST"], name="admin:users.admin"),
    Route(f"{PATH}/delete", delete_user, methods=["POST"], name="admin:users.delete"),
]
