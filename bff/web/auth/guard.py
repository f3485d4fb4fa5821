"""Who is signed in: the session middleware, and what routes ask of it.

:class:`SessionMiddleware` reads the session cookie once per request, verifies
its signature and loads the server-side session (from the store's cache). A
cookie that fails verification is ignored, exactly like no cookie; a validly
signed cookie whose session has ended (expired, logged out, revoked) marks the
request so the sign-in page can say why. Either way the stale cookie is deleted
on the response.

Routes use :func:`current_session` (may be None) or :func:`require_session`,
which sends a signed-out browser to ``/login?next=…`` with a 303 (API clients get
a 401 problem). A session that ends while its request runs (signed out in another
tab, revoked) surfaces as :class:`~bff.errors.SessionEnded` from the store, and is
answered the same way, with ``reason=expired``, its cookie cleared.
"""

from __future__ import annotations

import logging
from typing import Literal
from urllib.parse import urlencode

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

from bff.errors import SessionEnded
from bff.settings import Settings
from bff.web.auth.cookies import CookieJar, parse_cookie_header, set_cookie_header
from bff.web.auth.sessions import Session, SessionStore
from bff.web.errors import problem, wants_problem
from bff.web.services import services

logger = logging.getLogger(__name__)

_SESSION = "bff.session"
_SESSION_ENDED = "bff.session_ended"
SignInReason = Literal["expired", "signed-out"]


def current_session(request: Request) -> Session | None:
    """This request's live session, or None when signed out."""
    session: Session | None = request.scope.get("state", {}).get(_SESSION)
    return session


def session_ended(request: Request) -> bool:
    """True when the browser sent a genuine cookie for a session that has ended."""
    return bool(request.scope.get("state", {}).get(_SESSION_ENDED))


def require_session(request: Request) -> Session:
    """The live session, or :class:`SignInRequired` (a redirect to the sign-in page)."""
    session = current_session(request)
    if session is None:
        raise SignInRequired(_target(request), reason="expired" if session_ended(request) else None)
    return session


def _target(request: Request) -> str:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return target


def login_url(next_path: str | None = None, reason: SignInReason | None = None) -> str:
    params = {}
    if next_path and next_path != "/":
        params["next"] = next_path
    if reason is not None:
        params["reason"] = reason
    return "/login" + ("?" + urlencode(params) if params else "")


class SignInRequired(HTTPException):
    """Not signed in: browsers are sent to the sign-in page, API clients get a 401."""

    def __init__(self, next_path: str, *, reason: SignInReason | None = None) -> None:
        self.location = login_url(next_path, reason)
        super().__init__(303, "Sign-in required", headers={"Location": self.location})


async def sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    if wants_problem(request):
        return problem(401, "Sign in first.")
    return RedirectResponse(exc.location, status_code=303)


async def session_ended_mid_request(request: Request, exc: Exception) -> Response:
    """The session ended while this request ran: the sign-in page (``next`` only for a
    GET, which can be repeated), or a 401 problem under the API; the cookie cleared."""
    assert isinstance(exc, SessionEnded)
    session = current_session(request)
    if wants_problem(request):
        response = problem(401, "Your session has ended. Sign in again.")
    else:
        next_path = _target(request) if request.method == "GET" else None
        response = RedirectResponse(login_url(next_path, "expired"), status_code=303)
    cookies = services(request).auth.cookies
    embedded = session is not None and session.embedded
    cookies.delete(response, cookies.embed_session_name if embedded else cookies.session_name)
    logger.info(
        "the session ended during the request",
        extra={"user_id": session.user_id if session else None},
    )
    return response


EXCEPTION_HANDLERS: dict[type[Exception], ExceptionHandler] = {
    SignInRequired: sign_in_required,
    SessionEnded: session_ended_mid_request,
}


class SessionMiddleware:
    """Pure ASGI: puts the request's session (or None) where :func:`current_session`
    finds it. Needs the lifespan's ``services.sessions``."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.cookies = CookieJar(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        sent = parse_cookie_header(Headers(scope=scope).get("cookie", ""))
        session: Session | None = None
        stale: list[str] = []
        ended = False
        for name, embedded in (
            (self.cookies.session_name, False),
            (self.cookies.embed_session_name, True),
        ):
            if name not in sent:
                continue
            session_id = self.cookies.unsign_session(sent[name])
            found = None
            if session_id is not None:
                store: SessionStore = state["services"].sessions
                found = await store.load(session_id)
                ended = ended or found is None
            if found is not None and found.embedded == embedded and session is None:
                session = found
            elif found is None:
                stale.append(name)
        state[_SESSION] = session
        state[_SESSION_ENDED] = session is None and ended
        if not stale:
            await self.app(scope, receive, send)
            return

        async def send_clearing_stale(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                already = [value for key, value in headers.items() if key == "set-cookie"]
                for name in stale:
                    # A sign-in on this very request sets a new cookie of that name.
                    if not any(value.startswith(f"{name}=") for value in already):
                        headers.append("set-cookie", self._expired_cookie(name))
            await send(message)

        await self.app(scope, receive, send_clearing_stale)

    def _expired_cookie(self, name: str) -> str:
        embedded = name == self.cookies.embed_session_name
        return set_cookie_header(
            name,
            "",
            max_age=0,
            secure=self.cookies.secure or embedded,
            same_site="None" if embedded else "Lax",
            partitioned=embedded,
        )
