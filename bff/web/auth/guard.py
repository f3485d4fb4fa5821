"""Who is signed in: the sessions of each request, and what routes ask of it.

:class:`SessionResolver` reads the session cookie once per request, verifies
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

Embedded (partner iframe) sessions, from the embed cookie, serve only the embed
pages (:func:`embed_session`) and the vendor proxy. :func:`current_session` still
returns one when no first-party session came along, so every first-party page must
refuse it: :func:`require_first_party_session` answers 403 (as do the console and
the account pages; the admin API counts it as no credentials, 401). A first-party
session is never an embed page's session.

The cookieless fallback's handle (``X-Bff-Embed-Session``, the signed session id)
is read on exactly one route, the embed frame's JSON (:data:`HANDLE_PATH`, GET):
there it is verified like the cookie and is that request's embed session, the
cookie ignored; on every other route the header is ignored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ExceptionHandler

from bff.errors import SessionEnded
from bff.settings import Settings
from bff.web.auth.cookies import CookieJar, set_cookie_header
from bff.web.auth.sessions import Session, SessionStore
from bff.web.errors import problem, wants_problem
from bff.web.services import services

logger = logging.getLogger(__name__)

_SESSION = "bff.session"
_SESSION_ENDED = "bff.session_ended"
_EMBED_SESSION = "bff.embed_session"
_EMBED_ENDED = "bff.embed_session_ended"
SignInReason = Literal["expired", "signed-out"]

HANDLE_HEADER = "X-Bff-Embed-Session"
# The one route that reads the handle: bff.web.partner.embed's frame JSON.
HANDLE_PATH = re.compile(r"/embed/[0-9]+/frame")
EMBEDDED_REFUSED = "This page is not available inside an embedded dashboard."


def current_session(request: Request) -> Session | None:
    """This request's live session, or None when signed out."""
    session: Session | None = request.scope.get("state", {}).get(_SESSION)
    return session


def session_ended(request: Request) -> bool:
    """True when the browser sent a genuine cookie for a session that has ended."""
    return bool(request.scope.get("state", {}).get(_SESSION_ENDED))


def embed_session(request: Request) -> Session | None:
    """This request's live embedded session (the embed cookie's, or on the frame JSON
    route the handle's), or None. Never a first-party session."""
    session: Session | None = request.scope.get("state", {}).get(_EMBED_SESSION)
    return session


def embed_session_ended(request: Request) -> bool:
    """True when the browser sent a genuine embed cookie (or handle) whose session ended."""
    return bool(request.scope.get("state", {}).get(_EMBED_ENDED))


def require_first_party_session(request: Request) -> Session:
    """:func:`require_session` for first-party pages: an embedded session gets a 403."""
    session = require_session(request)
    if session.embedded:
        raise HTTPException(403, EMBEDDED_REFUSED)
    return session


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


class SessionResolver:
    """Finds the request's sessions from its cookies (and on :data:`HANDLE_PATH`, the
    handle) and puts them where :func:`current_session` and :func:`embed_session` find
    them; :class:`~bff.web.request_pipeline.RequestPipeline` calls it on every request.
    Needs the lifespan's ``services.sessions``."""

    def __init__(self, settings: Settings) -> None:
        self.cookies = CookieJar(settings)
        self._session_name = self.cookies.session_name
        self._embed_name = self.cookies.embed_session_name

    async def resolve(
        self,
        state: dict[str, Any],
        sent: Mapping[str, str],
        *,
        method: str,
        path: str,
        handle: str | None,
    ) -> list[str]:
        """Fill ``state``; returns the names of the stale cookies to clear."""
        store: SessionStore = state["services"].sessions
        stale: list[str] = []
        session: Session | None = None
        embedded: Session | None = None
        ended = embed_ended = False
        if (value := sent.get(self._session_name)) is not None:
            session, ended = await self._load(store, self._session_name, value, False, stale)
        if (value := sent.get(self._embed_name)) is not None:
            embedded, embed_ended = await self._load(store, self._embed_name, value, True, stale)
        state[_SESSION] = session or embedded
        state[_SESSION_ENDED] = session is None and embedded is None and (ended or embed_ended)
        if method == "GET" and path.startswith("/embed/") and HANDLE_PATH.fullmatch(path):
            # The cookieless fallback: this route's embed session is the handle's only.
            embedded, embed_ended = await self._handle_session(store, handle)
        state[_EMBED_SESSION] = embedded
        state[_EMBED_ENDED] = embed_ended
        return stale

    async def _load(
        self, store: SessionStore, name: str, value: str, embedded: bool, stale: list[str]
    ) -> tuple[Session | None, bool]:
        """The live session of cookie ``name`` when it is of the cookie's kind, and whether
        the cookie was genuine but its session has ended (the name then goes to ``stale``)."""
        session_id = self.cookies.unsign_session(value)
        loaded = None if session_id is None else await store.load(session_id)
        if loaded is None:
            stale.append(name)
            return None, session_id is not None
        return (loaded, False) if loaded.embedded == embedded else (None, False)

    def clear_stale(self, raw: list[tuple[bytes, bytes]], stale: list[str]) -> None:
        """Append to a response's headers the deletion of each stale cookie, unless the
        response sets a new cookie of that name (a sign-in on this very request)."""
        already = [value for key, value in raw if key == b"set-cookie"]
        for name in stale:
            prefix = f"{name}=".encode("latin-1")
            if not any(value.startswith(prefix) for value in already):
                raw.append((b"set-cookie", self._expired_cookie(name).encode("latin-1")))

    async def _handle_session(
        self, store: SessionStore, handle: str | None
    ) -> tuple[Session | None, bool]:
        """The handle's live embedded session (or None), and whether it was a genuine
        handle of a session that has ended."""
        session_id = self.cookies.unsign_session(handle)
        if session_id is None:
            return None, False
        loaded = await store.load(session_id)
        if loaded is None:
            return None, True
        return (loaded, False) if loaded.embedded else (None, False)

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
