"""Local sign-in and sign-out: ``GET /login``, ``POST /login``, ``POST /logout``.

Wrong e-mail, wrong password and a disabled account all get the same message
and cost the same password check. Failed attempts are limited per account and
per client address (:mod:`bff.web.ratelimit`); the client address is the one
the ASGI server reports, so behind a reverse proxy run ``bff serve
--forwarded-allow-ips`` with the proxy's address (or every client shares the
proxy's allowance).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bff.passwords import hash_password, needs_rehash, verify_password
from bff.services import services
from bff.store.users import find_user
from bff.web.auth import SignInReason, current_session, login_url
from bff.web.csrf import FIELD, check_csrf_token, require_csrf
from bff.web.redirects import safe_next

logger = logging.getLogger(__name__)

INVALID_CREDENTIALS = "The e-mail address or password is not correct."
FORM_EXPIRED = "The sign-in form expired. Please try again."
_NOTICES: Mapping[str, str] = {
    "expired": "Your session has ended. Please sign in again.",
    "signed-out": "You have signed out.",
}


def render_login(
    request: Request,
    *,
    next_path: str = "/",
    email: str = "",
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The sign-in page, optionally with an error (and a matching status)."""
    settings = services(request).settings
    context = {
        "next_path": next_path,
        "email": email,
        "error": error,
        "notice": notice,
        "oidc_enabled": settings.oidc is not None,
    }
    return services(request).templates.TemplateResponse(
        request, "login.html", context, status_code=status, headers=headers
    )


async def login_form(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if current_session(request) is not None:
        return RedirectResponse(next_path, status_code=303)
    reason = request.query_params.get("reason", "")
    return render_login(request, next_path=next_path, notice=_NOTICES.get(reason))


async def login(request: Request) -> Response:
    form = await request.form()
    next_path = safe_next(_text(form.get("next")))
    email = _text(form.get("email")).strip().lower()[:254]
    password = _text(form.get("password"))
    svc = services(request)
    metrics = svc.auth.metrics
    if not check_csrf_token(request, _text(form.get(FIELD)), allow_presession=True):
        metrics.login("password", "refused")
        return render_login(
            request, next_path=next_path, email=email, error=FORM_EXPIRED, status=403
        )

    address = request.client.host if request.client else "unknown"
    wait = svc.auth.limiter.retry_after(email, address)
    if wait is not None:
        metrics.login("password", "rate_limited")
        logger.warning("sign-in rate limited", extra={"retry_after": wait})
        return render_login(
            request,
            next_path=next_path,
            email=email,
            error=f"Too many failed sign-in attempts. Try again in {_duration(wait)}.",
            status=429,
            headers={"Retry-After": str(wait)},
        )

    async with svc.database.session() as db:
        user = await find_user(db, email) if email else None
        password_hash = user.password_hash if user else None
        # Argon2 takes tens of milliseconds of CPU: keep it off the event loop.
        valid = await anyio.to_thread.run_sync(verify_password, password_hash, password)
        if valid and user is not None and not user.disabled and password_hash is not None:
            if needs_rehash(password_hash):
                user.password_hash = await anyio.to_thread.run_sync(hash_password, password)
            user_id = user.id
        else:
            user_id = None
    if user_id is None:
        svc.auth.limiter.failed(email, address)
        metrics.login("password", "invalid")
        return render_login(
            request, next_path=next_path, email=email, error=INVALID_CREDENTIALS, status=400
        )

    svc.auth.limiter.succeeded(email)
    metrics.login("password", "success")
    response = RedirectResponse(next_path, status_code=303)
    await complete_sign_in(request, response, user_id)
    logger.info("signed in", extra={"user_id": user_id, "method": "password"})
    return response


async def complete_sign_in(request: Request, response: Response, user_id: int) -> None:
    """Start a new session for ``user_id`` and set its cookie on ``response``. Any session
    the browser had is ended: the id is never carried across a sign-in."""
    svc = services(request)
    previous = current_session(request)
    if previous is not None:
        await svc.sessions.revoke(previous.id)
    session = await svc.sessions.create(user_id)
    cookies = svc.auth.cookies
    cookies.set_session(
        response, session.id, embedded=False, max_age=svc.settings.session_max_seconds
    )
    cookies.delete(response, cookies.presession_name)


async def logout(request: Request) -> Response:
    session = current_session(request)
    if session is None:
        return RedirectResponse(login_url(), status_code=303)
    await require_csrf(request)
    svc = services(request)
    await svc.sessions.revoke(session.id)
    reason: SignInReason = "signed-out"
    response = RedirectResponse(login_url(reason=reason), status_code=303)
    cookies = svc.auth.cookies
    cookies.delete(
        response, cookies.embed_session_name if session.embedded else cookies.session_name
    )
    logger.info("signed out", extra={"user_id": session.user_id})
    return response


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    return f"{round(seconds / 60)} minutes"


routes = [
    Route("/login", login_form, methods=["GET"], name="auth:login"),
    Route("/login", login, methods=["POST"], name="auth:login-submit"),
    Route("/logout", logout, methods=["POST"], name="auth:logout"),
]
