"""The dashboard: ``GET /`` embeds the vendor dashboard for the session's active pair,
``POST /scope`` switches pairs, and ``/vendor/…`` is the proxy in ``proxy`` mode.

The active pair lives in the server-side session, and every use checks it
against the user's mappings in the database again: a pair the browser names is
refused unless mapped, and a remembered pair whose mapping is gone is dropped.
The vendor token comes from the broker for exactly that pair; vendor failures
propagate to the friendly 503/502 handlers (or, inside the proxied iframe, to a
framed notice).

These pages are first-party: an embedded (partner iframe) session gets a 403 here
(:func:`~bff.web.auth.guard.require_first_party_session`); the embed pages
(:mod:`bff.web.partner.embed`) show it the same vendor embed, :func:`vendor_embed`.

In the proxy, :func:`authorize_proxy` turns the session into a
:class:`~bff.web.dashboard.proxy.Grant`: a session that has ended, before or while the
request ran, gets the framed "Session ended" notice (401), never an error page. An
embedded session is served its one pair (the partner app's, fixed at launch: the
user has no mappings), and the proxied pages may then be framed by its partner
origin too (:class:`FramedByPartner`), since ``frame-ancestors`` binds every
ancestor, the partner page above the embed page included.
When the vendor refuses a grant's token, the grant's ``renew`` purges it from the
broker, unless the broker already holds another one: a token obtained after the
request started is not the one the vendor refused, and purging it would only
cost a token call per proxied request in flight.

With ``BFF_PROXY_ORIGIN`` the proxy is not here: ``/vendor/`` answers 404 on bff's
origin, and the dashboard's frame opens ``GET /vendor-frame`` (:func:`vendor_frame`),
which hands the page's session over to the proxy origin
(:mod:`bff.web.dashboard.handoff`); the proxy there grants with :func:`proxy_grant`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bff.broker.scope import TokenScope, VendorToken
from bff.errors import SessionEnded, UpstreamError, UpstreamRejected, UpstreamUnavailable
from bff.settings import Settings
from bff.web.auth.access import Pair, parse_pair
from bff.web.auth.csrf import require_csrf
from bff.web.auth.guard import (
    SignInReason,
    current_session,
    embed_session_ended,
    login_url,
    require_first_party_session,
    session_ended,
)
from bff.web.auth.sessions import Session
from bff.web.dashboard.delivery import FRAME_NAME, PAGE_HEADERS, VENDOR_FRAME_PATH, Embed, embed
from bff.web.dashboard.handoff import ProxySessions
from bff.web.dashboard.proxy import Grant, VendorProxy, framed_page
from bff.web.dashboard.proxy_limits import ProxyLimits
from bff.web.dashboard.proxy_metrics import ProxyMetrics
from bff.web.dashboard.vendor_target import PREFIX, VendorTarget
from bff.web.errors import UNAVAILABLE, error_page, unavailable_retry
from bff.web.security import content_security_policy
from bff.web.services import Services, services

logger = logging.getLogger(__name__)

# The default vendor connection, built from the BFF_UPSTREAM_* settings.
CONNECTION_ID = "default"
NOT_MAPPED = "You do not have access to that tenant."


async def vendor_embed(svc: Services, pair: Pair) -> Embed | None:
    """How a page shows the vendor dashboard for ``pair``, with that pair's token from
    the broker; None when no dashboard is configured. The broker's
    :class:`~bff.errors.UpstreamUnavailable` and :class:`~bff.errors.UpstreamRejected`
    propagate."""
    dashboard_url = svc.settings.dashboard_url
    if dashboard_url is None:
        return None
    token = await svc.broker.get(TokenScope(CONNECTION_ID, *pair))
    settings = svc.settings
    return embed(settings.dashboard_delivery, dashboard_url, token.value, settings.proxy_origin)


async def dashboard(request: Request) -> Response:
    session = require_first_party_session(request)
    svc = services(request)
    pairs = await svc.mappings.pairs(session.user_id)
    if not pairs:
        return svc.templates.TemplateResponse(
            request, "no_access.html", {"email": session.email}, status_code=403
        )
    active = session.scope
    if active is None or active not in pairs:
        active = await _active_pair(svc, session, pairs)
    page = await vendor_embed(svc, active)
    if page is None:
        return error_page(
            request, 503, "Dashboard not configured", "No vendor dashboard has been configured."
        )
    embedded = page

    def headers(nonce: str) -> dict[str, str]:
        policy = content_security_policy(
            nonce, frame_src=embedded.frame_src, form_action=embedded.form_action
        )
        return {**PAGE_HEADERS, "Content-Security-Policy": policy}

    context = {
        "scopes": pairs,
        "active": active,
        "embed": page,
        "frame_name": FRAME_NAME,
    }
    # Served from the memo with this request's nonce; headers() runs once per page.
    return svc.pages.respond(request, "dashboard.html", context, headers)


class DashboardPage:
    """``GET /`` as a plain ASGI app rather than a route function: Starlette would wrap
    each view in a second ``Request`` and a second exception layer. Its errors (sign-in
    required, the embedded session's 403, a session ended mid-request, the vendor's
    503/502) reach the app's exception handlers through Starlette's
    ``ExceptionMiddleware``, with the same scope, as a route function's do."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await dashboard(Request(scope, receive, send))
        await response(scope, receive, send)


async def switch_scope(request: Request) -> Response:
    session = require_first_party_session(request)
    form = await require_csrf(request)
    svc = services(request)
    pair = parse_pair(form.get("scope"))
    if pair is None or not await svc.mappings.allows(session.user_id, pair):
        logger.warning(
            "refused a switch to an unmapped pair",
            extra={"user_id": session.user_id, "requested": str(form.get("scope"))[:140]},
        )
        raise HTTPException(403, NOT_MAPPED)
    await svc.sessions.set_scope(session.id, pair)
    return RedirectResponse("/", status_code=303)


async def authorize_proxy(request: Request) -> Grant | Response:
    """The grant for a proxied request: the session's active pair, mapped right now (an
    embedded session's own pair)."""
    session = current_session(request)
    if session is None:
        return _no_session(request)
    pair = await _proxy_pair(request, session)
    if isinstance(pair, Response):
        return pair
    return await proxy_grant(request, session.id, session.user_id, pair)


def vendor_frame(handoffs: ProxySessions) -> Callable[[Request], Awaitable[Response]]:
    """``GET /vendor-frame`` (with ``BFF_PROXY_ORIGIN``): the dashboard frame's way to the
    proxy origin, a single-use handoff of this session's pair. Only a frame of bff's own
    pages gets one (``Sec-Fetch-Site: same-origin`` when the browser says)."""

    async def start(request: Request) -> Response:
        session = current_session(request)
        if session is None:
            return _no_session(request)
        site = request.headers.get("sec-fetch-site")
        if site is not None and site != "same-origin":
            logger.info("refused a proxy handoff asked for by another site")
            return framed_page(
                request, 403, "No access", "The dashboard opens only inside its own page."
            )
        pair = await _proxy_pair(request, session)
        if isinstance(pair, Response):
            return pair
        location = await handoffs.mint(services(request), session, pair)
        return RedirectResponse(location, status_code=303, headers=PAGE_HEADERS)

    return start


def _no_session(request: Request) -> Response:
    if embed_session_ended(request):
        return _embed_session_ended(request)
    return _session_ended(request, "expired" if session_ended(request) else None)


async def _proxy_pair(request: Request, session: Session) -> Pair | Response:
    """The pair a proxied view of ``session`` shows, or the framed notice refusing it."""
    svc = services(request)
    pair = session.scope
    try:
        if session.embedded:
            if pair is None:
                return framed_page(request, 403, "No access", NOT_MAPPED)
        elif pair is None or not await svc.mappings.allows(session.user_id, pair):
            pairs = await svc.mappings.pairs(session.user_id)
            if not pairs:
                return framed_page(
                    request, 403, "No access", NOT_MAPPED, link=("/", "Back to your dashboard")
                )
            pair = await _active_pair(svc, session, pairs)
    except SessionEnded:
        # Signed out in another tab (or revoked) while this request ran.
        logger.info(
            "the session ended during a proxied request", extra={"user_id": session.user_id}
        )
        ended = _session_ended(request, "expired")
        cookies = svc.auth.cookies
        cookies.delete(
            ended, cookies.embed_session_name if session.embedded else cookies.session_name
        )
        return ended
    return pair


async def proxy_grant(
    request: Request, session_id: str, user_id: int, pair: Pair
) -> Grant | Response:
    """The grant of ``pair``'s vendor token to a proxied request of ``session_id`` (the
    framed 503 or 502 notice when the broker has none)."""
    svc = services(request)
    scope = TokenScope(CONNECTION_ID, *pair)
    try:
        token = await svc.broker.get(scope)
    except UpstreamUnavailable as exc:
        retry, message = unavailable_retry(exc)
        logger.warning("vendor unavailable: %s", exc)
        return framed_page(request, 503, UNAVAILABLE, message, retry_after=retry)
    except UpstreamRejected as exc:
        logger.error("vendor rejected our request (configuration error): %s", exc)
        return framed_page(
            request,
            502,
            "Dashboard not available",
            "The dashboard connection is misconfigured. An administrator has been notified.",
        )
    return Grant(
        session_id=session_id,
        user_id=user_id,
        pair=pair,
        authorization=token.authorization,
        renew=_renewer(svc, scope, token),
    )


def _session_ended(request: Request, reason: SignInReason | None) -> Response:
    return framed_page(
        request,
        401,
        "Session ended",
        "Your session has ended. Sign in again to see the dashboard.",
        link=(login_url(reason=reason), "Sign in"),
    )


def _embed_session_ended(request: Request) -> Response:
    # No sign-in link: the partner page that frames this starts a new session.
    return framed_page(
        request,
        401,
        "Session ended",
        "This dashboard session has ended. Reload the page that shows it to continue.",
    )


def _renewer(
    svc: Services, scope: TokenScope, refused: VendorToken
) -> Callable[[], Awaitable[None]]:
    async def renew() -> None:
        """Purge ``refused`` from the broker, unless it is no longer the current token."""
        try:
            current = await svc.broker.get(scope)
        except UpstreamError:
            return  # no token to purge; the retry's authorize says why
        if current.value != refused.value:
            return  # obtained after this request started: not the one refused
        logger.warning("the vendor refused a token before its expiry; purged")
        if svc.settings.upstream.pair_scoped:
            await svc.broker.purge(
                connection_id=scope.connection_id,
                tenant_id=scope.tenant_id,
                sub_tenant_id=scope.sub_tenant_id,
            )
        else:
            # One token serves every pair of this connection: that one was refused.
            await svc.broker.purge(connection_id=scope.connection_id)

    return renew


async def _active_pair(svc: Services, session: Session, pairs: tuple[Pair, ...]) -> Pair:
    """The session's pair when still mapped, else the first mapped pair (remembered)."""
    if session.scope is not None and session.scope in pairs:
        return session.scope
    if session.scope is not None:
        logger.info(
            "dropped a session pair that is no longer mapped", extra={"user_id": session.user_id}
        )
    active = pairs[0]
    await svc.sessions.set_scope(session.id, active)
    return active


class FramedByPartner:
    """Pure ASGI, around the proxy: for an embedded session, its partner origin joins
    ``'self'`` in the ``frame-ancestors`` of the proxied responses (the vendor page and
    the proxy's notices), else the partner page above the embed page could not frame
    them. Other sessions' responses pass unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session = current_session(Request(scope)) if scope["type"] == "http" else None
        origin = session.embed_origin if session is not None and session.embedded else None
        if origin is None or not _ORIGIN.fullmatch(origin):
            await self.app(scope, receive, send)
            return
        extra = origin.encode("ascii")

        async def send_framable(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (
                        name,
                        _with_ancestor(value, extra)
                        if name == b"content-security-policy"
                        else value,
                    )
                    for name, value in message.get("headers", [])
                    if name != b"x-frame-options"
                ]
            await send(message)

        await self.app(scope, receive, send_framable)


# A stored partner origin, checked again before it goes into a header.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")


def _with_ancestor(policy: bytes, origin: bytes) -> bytes:
    """``policy`` with ``origin`` added to a ``frame-ancestors`` that allows ``'self'``."""
    directives = []
    for directive in policy.split(b";"):
        sources = directive.split()
        if sources[:1] == [b"frame-ancestors"] and b"'self'" in sources[1:]:
            directive = b" ".join([*sources, origin])
        directives.append(directive.strip())
    return b"; ".join(directive for directive in directives if directive)


def routes(
    settings: Settings, proxy_metrics: ProxyMetrics, proxy_limits: ProxyLimits | None = None
) -> list[BaseRoute]:
    target = (
        VendorTarget.from_dashboard_url(settings.dashboard_url)
        if settings.dashboard_url and settings.dashboard_delivery == "proxy"
        else None
    )
    pages: list[BaseRoute] = [
        Route("/", DashboardPage(), methods=["GET"], name="dashboard:index"),
        Route("/scope", switch_scope, methods=["POST"], name="dashboard:scope"),
    ]
    if settings.proxy_origin is not None:
        # The proxy is on its own origin (bff.web.dashboard.proxy_origin); /vendor/ is a 404.
        if target is None:
            return pages
        start = request_response(vendor_frame(ProxySessions(settings)))
        return [
            *pages,
            Route(
                VENDOR_FRAME_PATH,
                FramedByPartner(start),
                methods=["GET"],
                name="dashboard:vendor_frame",
            ),
        ]
    return [
        *pages,
        Mount(
            PREFIX,
            app=FramedByPartner(VendorProxy(target, authorize_proxy, proxy_metrics, proxy_limits)),
            name="dashboard:vendor",
        ),
    ]
