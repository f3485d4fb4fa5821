"""Cross-site request forgery: a token in every state-changing form, and a refusal of
unsafe requests a browser marks as coming from another site.

The form token is an HMAC of a per-session secret kept server-side, so a token
is valid for exactly one session. Before sign-in there is no session yet, so the
sign-in form's token is bound to a *pre-session*: a random nonce in its own
signed, HttpOnly cookie (``__Host-bff_presession``, see :mod:`bff.web.auth.cookies`),
minted the first time a page asks for :func:`csrf_token` without a session.
A forged sign-in ("login CSRF") therefore needs the victim's pre-session cookie,
which a foreign site can neither read nor set.

:class:`CrossSiteCheck` refuses POST, PUT, PATCH and DELETE when
``Sec-Fetch-Site`` is ``cross-site`` or ``Origin`` names another origin than
``BFF_PUBLIC_URL`` (or the host the request was sent to). ``Origin: null`` is
accepted only with ``Sec-Fetch-Site: same-origin``: that is what a browser sends
from a page of ours whose ``Referrer-Policy`` is ``no-referrer``. Requests with
neither header (servers, scripts) pass; they still need a token where a form does.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope

from bff.settings import Settings
from bff.web.auth.cookies import CookieJar, set_cookie_header
from bff.web.auth.guard import current_session
from bff.web.errors import error_page
from bff.web.security import origin_of

logger = logging.getLogger(__name__)

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PRESESSION_MAX_AGE = 24 * 60 * 60
_PRESESSION = "bff.presession"
_PRESESSION_NEW = "bff.presession_new"
FORBIDDEN_MESSAGE = (
    "This form has expired or was not sent from this site. Reload the page and try again."
)


def csrf_token(request: Request) -> str:
    """The token for forms on this page: bound to the session, or to the pre-session."""
    session = current_session(request)
    if session is not None:
        return _derive(session.csrf_secret)
    state = request.scope.setdefault("state", {})
    nonce = state.get(_PRESESSION) or state.get(_PRESESSION_NEW)
    if nonce is None:
        nonce = state[_PRESESSION_NEW] = secrets.token_urlsafe(32)
    return _derive(nonce)


def presession_token(request: Request) -> str | None:
    """The pre-session's token when the browser sent a valid pre-session cookie."""
    nonce = request.scope.get("state", {}).get(_PRESESSION)
    return _derive(nonce) if nonce else None


def check_csrf_token(
    request: Request, token: str | None, *, allow_presession: bool = False
) -> bool:
    """Whether ``token`` belongs to this request's session (or, when allowed or signed
    out, to its pre-session)."""
    if not token:
        return False
    expected: list[str] = []
    session = current_session(request)
    if session is not None:
        expected.append(_derive(session.csrf_secret))
    if session is None or allow_presession:
        presession = presession_token(request)
        if presession is not None:
            expected.append(presession)
    # Compare against every candidate so timing does not reveal which one matched.
    matches = [hmac.compare_digest(token.encode(), value.encode()) for value in expected]
    return any(matches)


async def require_csrf(request: Request, *, allow_presession: bool = False) -> FormData:
    """The submitted form, after checking its ``csrf_token`` (or the ``X-CSRF-Token``
    header); HTTPException 403 otherwise."""
    form = await request.form()
    token = form.get(FIELD)
    if not isinstance(token, str):
        token = request.headers.get(HEADER)
    if not check_csrf_token(request, token, allow_presession=allow_presession):
        raise HTTPException(403, FORBIDDEN_MESSAGE)
    return form


@functools.lru_cache(maxsize=10_000)  # every page with a form asks again
def _derive(secret: str) -> str:
    return hmac.new(secret.encode(), b"bff.csrf.v1", hashlib.sha256).hexdigest()


class CrossSiteCheck:
    """Which unsafe requests to refuse, and the pre-session cookie, for one set of
    settings; :class:`~bff.web.request_pipeline.RequestPipeline` asks it on every
    request."""

    def __init__(self, settings: Settings) -> None:
        self.cookies = CookieJar(settings)
        self.public_origin = origin_of(settings.public_url).lower()

    def refuses(
        self,
        method: str,
        *,
        origin: str | None,
        fetch_site: str | None,
        host: str | None,
        scheme: str,
    ) -> bool:
        """Whether this request is an unsafe one from another site."""
        if method not in UNSAFE_METHODS:
            return False
        fetch_site = (fetch_site or "").lower()
        if fetch_site == "cross-site":
            return True
        if origin is None:
            return False
        origin = origin.strip().lower()
        if origin == "null":
            return fetch_site != "same-origin"
        own = {self.public_origin}
        if host:
            own.add(f"{scheme}://{host}".lower())
        return origin not in own

    def refusal(
        self, scope: Scope, receive: Receive, *, origin: str | None, fetch_site: str | None
    ) -> Response:
        logger.warning(
            "refused a cross-site %s request",
            scope["method"],
            extra={"origin": origin, "fetch_site": fetch_site},
        )
        return _forbidden(Request(scope, receive))

    def read_presession(self, state: dict[str, Any], cookie: str | None) -> None:
        """Put the pre-session nonce of a valid cookie where :func:`csrf_token` finds it."""
        state[_PRESESSION] = self.cookies.unsign_presession(cookie, PRESESSION_MAX_AGE)

    def new_presession_cookie(self, state: Mapping[str, Any]) -> bytes | None:
        """The ``Set-Cookie`` value for a pre-session this request minted, if any."""
        nonce = state.get(_PRESESSION_NEW)
        if not nonce:
            return None
        return set_cookie_header(
            self.cookies.presession_name,
            self.cookies.sign_presession(nonce),
            max_age=None,
            secure=self.cookies.secure,
            same_site="Lax",
        ).encode("latin-1")


def _forbidden(request: Request) -> Response:
    if "services" not in request.scope.get("state", {}):
        return PlainTextResponse(FORBIDDEN_MESSAGE, status_code=403)
    return error_page(request, 403, "Forbidden", FORBIDDEN_MESSAGE)
