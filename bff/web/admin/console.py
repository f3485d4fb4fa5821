"""What every admin console page shares: the admin check, forms with their CSRF token,
rendering inside the console's layout, and the notice shown after a redirect.

Every page calls :func:`require_admin` (a signed-out browser is sent to sign in, a
signed-in non-admin gets 403) and every form handler :func:`admin_form`, which also
checks the form's CSRF token, in that order: a non-admin learns nothing about a
form by posting to it. A successful POST redirects (303) back to its page with
``?done=<code>``; the page shows the message it keeps for that code, so no text a
link carries is ever shown. A refused form is rendered again with the operation's
message (422), the admin's input kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bff.web.auth.csrf import require_csrf
from bff.web.auth.guard import require_session
from bff.web.auth.sessions import Session
from bff.web.services import services

FORBIDDEN = "This page is for administrators."

# The console's sections, in the order of its navigation: (route name, path, label).
SECTIONS = (
    ("admin:overview", "/admin/", "Overview"),
    ("admin:users", "/admin/users", "Users"),
    ("admin:tenants", "/admin/tenants", "Tenants"),
    ("admin:mappings", "/admin/mappings", "Mappings"),
    ("admin:connections", "/admin/connections", "Connections"),
    ("admin:partner-api", "/admin/partner-api", "Partner API"),
    ("admin:tokens", "/admin/tokens", "Tokens"),
    ("admin:audit", "/admin/audit", "Audit log"),
)


def require_admin(request: Request) -> Session:
    """The admin's session; a redirect to sign in, or HTTPException 403."""
    session = require_session(request)
    if session.embedded or not session.is_admin:
        raise HTTPException(403, FORBIDDEN)
    return session


async def admin_form(request: Request) -> tuple[Session, FormData]:
    """The admin's session and the submitted form, its CSRF token checked (403 if not)."""
    session = require_admin(request)
    return session, await require_csrf(request)


def page_number(raw: str) -> int:
    """A ``page`` query value; anything but a sane whole number is the first page."""
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= 1_000_000 else 1


def field(form: FormData, name: str) -> str:
    """A text field of the form ('' when absent or a file)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    section: str,
    notices: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """``template`` inside the console layout, ``section`` marked in the navigation, and
    the notice for ``?done=<code>`` when ``notices`` knows the code."""
    done = request.query_params.get("done", "")
    page = {
        **context,
        "sections": SECTIONS,
        "section": section,
        "notice": (notices or {}).get(done),
    }
    return services(request).templates.TemplateResponse(
        request, template, page, status_code=status_code
    )


def redirect_done(path: str, code: str, **query: str) -> Response:
    """303 back to the console page at ``path``, with ``done=code`` and ``query``."""
    return RedirectResponse(f"{path}?{urlencode({**query, 'done': code})}", status_code=303)


def confirm_page(
    request: Request,
    *,
    section: str,
    title: str,
    question: str,
    action: str,
    back: str,
    button: str = "Delete",
    consequences: Sequence[str] = (),
    hidden: Sequence[tuple[str, str]] = (),
) -> Response:
    """The confirmation step of a destructive action: the same form again, posted with
    ``confirm=yes`` (see :func:`confirmed`)."""
    context = {
        "title": title,
        "question": question,
        "action": action,
        "back": back,
        "button": button,
        "consequences": list(consequences),
        "hidden": list(hidden),
    }
    return render(request, "admin/confirm.html", context, section=section)


def confirmed(form: FormData) -> bool:
    return field(form, "confirm") == "yes"
