"""The dashboard: ``GET /`` embeds the vendor dashboard for the session's active pair,
``POST /scope`` switches pairs, and ``/vendor/…`` is the proxy in ``proxy`` mode.

The active pair lives in the server-side session, and every use checks it
against the user's mappings in the database again: a pair the browser names is
refused unless mapped, and a remembered pair whose mapping is gone is dropped.
The vendor token comes from the broker for exactly that pair; vendor failures
propagate to the friendly 503/502 handlers (or, inside the proxied iframe, to a
framed notice).
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from bff.broker.scope import TokenScope
from bff.errors import UpstreamRejected, UpstreamUnavailable
from bff.services import Services, services
from bff.settings import Settings
from bff.web.access import Pair, parse_pair
from bff.web.auth import (
    SignInReason,
    current_session,
    login_url,
    require_session,
    session_ended,
)
from bff.web.csrf import require_csrf
from bff.web.delivery import FRAME_NAME, PAGE_HEADERS, embed
from bff.web.errors import UNAVAILABLE, error_page, unavailable_retry
from bff.web.proxy import VendorProxy, framed_page
from bff.web.security import content_security_policy, csp_nonce
from bff.web.sessions import Session
from bff.web.vendor_target import PREFIX, VendorTarget

logger = logging.getLogger(__name__)

# The default vendor connection, built from the BFF_UPSTREAM_* settings.
CONNECTION_ID = "default"
NOT_MAPPED = "You do not have access to that tenant."


async def dashboard(request: Request) -> Response:
    session = require_session(request)
    svc = services(request)
    pairs = await svc.mappings.pairs(session.user_id)
    if not pairs:
        return svc.templates.TemplateResponse(
            request, "no_access.html", {"email": session.email}, status_code=403
        )
    active = await _active_pair(svc, session, pairs)
    dashboard_url = svc.settings.dashboard_url
    if dashboard_url is None:
        return error_page(
            request, 503, "Dashboard not configured", "No vendor dashboard has been configured."
        )
    token = await svc.broker.get(TokenScope(CONNECTION_ID, *active))
    page = embed(svc.settings.dashboard_delivery, dashboard_url, token.value)
    nonce = csp_nonce(request)
    headers = {
        **PAGE_HEADERS,
        "Content-Security-Policy": content_security_policy(
            nonce, frame_src=page.frame_src, form_action=page.form_action
        ),
    }
    context = {
        "scopes": pairs,
        "active": active,
        "embed": page,
        "frame_name": FRAME_NAME,
    }
    return svc.templates.TemplateResponse(request, "dashboard.html", context, headers=headers)


async def switch_scope(request: Request) -> Response:
    session = require_session(request)
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


async def authorize_proxy(request: Request) -> str | Response:
    """The vendor token for a proxied request: the session's active pair, mapped right now."""
    session = current_session(request)
    if session is None:
        reason: SignInReason | None = "expired" if session_ended(request) else None
        return framed_page(
            request,
            401,
            "Session ended",
            "Your session has ended. Sign in again to see the dashboard.",
            link=(login_url(reason=reason), "Sign in"),
        )
    svc = services(request)
    pair = session.scope
    if pair is None or not await svc.mappings.allows(session.user_id, pair):
        pairs = await svc.mappings.pairs(session.user_id)
        if not pairs:
            return framed_page(
                request, 403, "No access", NOT_MAPPED, link=("/", "Back to your dashboard")
            )
        pair = await _active_pair(svc, session, pairs)
    try:
        token = await svc.broker.get(TokenScope(CONNECTION_ID, *pair))
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
    return token.value


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


def routes(settings: Settings) -> list[BaseRoute]:
    target = (
        VendorTarget.from_dashboard_url(settings.dashboard_url)
        if settings.dashboard_url and settings.dashboard_delivery == "proxy"
        else None
    )
    return [
        Route("/", dashboard, methods=["GET"], name="dashboard:index"),
        Route("/scope", switch_scope, methods=["POST"], name="dashboard:scope"),
        Mount(PREFIX, app=VendorProxy(target, authorize_proxy), name="dashboard:vendor"),
    ]
