"""Local sign-in and sign-out: ``GET /login``, ``POST /login``, ``POST /logout``.

Wrong e-mail, wrong password and a disabled account all get the same message
and cost the same password check. Every attempt is counted before its password is
checked, per (account, address), per address and per account
(:mod:`bff.web.auth.ratelimit`; over a limit: 429 with ``Retry-After``), and password
checks run under a fixed bound with a short queue (:mod:`bff.web.auth.password_checks`;
beyond it: 503 with ``Retry-After``). The client address is the one the ASGI server
reports, so behind a reverse proxy run ``bff serve --forwarded-allow-ips`` with the
proxy's address (or every client shares the proxy's allowance).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bff.passwords import needs_rehash
from bff.store.users import find_user
from bff.web.auth.csrf import FIELD, check_csrf_token, require_csrf
from bff.web.auth.guard import SignInReason, current_session, login_url
from bff.web.auth.password_checks import BUSY_RETRY_AFTER, PasswordChecks
from bff.web.auth.ratelimit import Refusal
from bff.web.auth.redirects import safe_next
from bff.web.services import Services, services

logger = logging.getLogger(__name__)

INVALID_CREDENTIALS = "The e-mail address or password is not correct."
FORM_EXPIRED = "The sign-in form expired. Please try again."
BUSY = f"Too many people are signing in right now. Please try again in {BUSY_RETRY_AFTER} seconds."
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
    limiter = svc.auth.limiter
    # Counted before it is checked, in one atomic step: concurrent attempts cannot all
    # pass a limit that none of them has been counted against yet.
    attempt = await limiter.reserve(email, address)
    if isinstance(attempt, Refusal):
        wait = attempt.retry_after
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

    checks = svc.auth.password_checks
    with checks.admit() as admitted:
        if not admitted:
            await limiter.settle(attempt, "not_checked")
            metrics.login("password", "busy")
            logger.warning("sign-in busy", extra={"retry_after": BUSY_RETRY_AFTER})
            return render_login(
                request,
                next_path=next_path,
                email=email,
                error=BUSY,
                status=503,
                headers={"Retry-After": str(BUSY_RETRY_AFTER)},
            )
        user_id = await _check_password(svc, checks, email, password)
    if user_id is None:
        await limiter.settle(attempt, "failure")
        metrics.login("password", "invalid")
        return render_login(
            request, next_path=next_path, email=email, error=INVALID_CREDENTIALS, status=400
        )

    await limiter.settle(attempt, "success")
    metrics.login("password", "success")
    response = RedirectResponse(next_path, status_code=303)
    await complete_sign_in(request, response, user_id)
    logger.info("signed in", extra={"user_id": user_id, "method": "password"})
    return response


async def _check_password(
    svc: Services, checks: PasswordChecks, email: str, password: str
) -> int | None:
    """The id of the enabled account ``email`` whose password this is, else None. Every
    outcome costs one password check; no database session is held while it waits."""
    async with svc.database.session() as db:
        user = await find_user(db, email) if email else None
        password_hash = user.password_hash if user else None
        user_id = user.id if user is not None and not user.disabled else None
    valid = await checks.verify(password_hash, password)
    if not valid or user_id is None or password_hash is None:
        return None
    if needs_rehash(password_hash):
        new_hash = await checks.hash(password)
        async with svc.database.session() as db:
            user = await find_user(db, email)
            if user is not None and user.password_hash == password_hash:
                user.password_hash = new_hash
    return user_id


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
