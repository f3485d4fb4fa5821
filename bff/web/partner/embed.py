"""The embed pages: redeeming a launch, the framed dashboard, the cookieless fallback.

- ``GET /embed/launch?ticket=T`` (``partner:launch``): 303 to
  ``/embed/{app_id}/#handle=H`` with the embed cookie; or a 410 / 403 notice.
- ``GET /embed/{app_id}/`` (``partner:embed``): the dashboard for an embed session of
  this app; the bootstrap when none came; else a 403 notice.
- ``GET /embed/{app_id}/frame`` (``partner:frame``): the fallback's JSON, for the
  ``X-Bff-Embed-Session`` handle only.

**Redemption.** The ticket is used up atomically (:func:`bff.operations.launches.redeem`);
the browser's previous embed session, if it sent one, ends. The new embedded session
is bound to the app, the partner's user, the one pair and the origin the launch named
(``embed_origin``), and lives :data:`~bff.web.auth.sessions.EMBED_SESSION_SECONDS` at
most (idle timeout as any session). Its signed id is set as the embed cookie
(``SameSite=None; Secure; HttpOnly; Partitioned``) and also travels once as the
*handle* ``H`` in the redirect's fragment, which no server, log or ``Referer`` sees;
the page's script removes it from the address at once (``history.replaceState``), so
it never outlives the page in history. A ticket unknown, used or expired: 410 and
``session-expired`` (reason ``launch-invalid``); a revoked app: 403 and ``error``
(``forbidden``). These two are the only pages any origin may frame
(:data:`~bff.web.partner.frame.ANYONE`): they hold nothing and no form, and the host
page must hear why its frame is empty.

**Framing.** ``/embed/{app_id}/`` and its notices send ``frame-ancestors`` with
exactly that app's allowed origins (``'none'`` without any), as a header. A first-party
session, or an embedded one of another app, gets 403 there; an embedded session gets
403 on the first-party pages (:func:`~bff.web.auth.guard.require_first_party_session`).

**Messages to the host page** (``static/embed-frame.js``, to the session's exact
``embed_origin``; ``"*"`` only before any session is known, and then they carry
nothing but their type and reason)::

    {"bff": 1, "type": "ready"}                       the dashboard iframe is in place
    {"bff": 1, "type": "resize", "height": 812}        #bff-embed-content changed >= 1 px
    {"bff": 1, "type": "session-expiring", "expiresIn": 120}   120 s before the end
    {"bff": 1, "type": "session-expired"}              at the end, or on a 401
    {"bff": 1, "type": "session-expired", "reason": "launch-invalid"}
    {"bff": 1, "type": "error", "reason": "cookies-blocked" | "forbidden"
                                        | "vendor-unavailable" | "vendor-error"}

The host renews by pointing a frame at a fresh launch URL; nothing else is needed.

**The cookieless fallback.** When the browser keeps no cookie for bff inside the
partner's page (third-party cookies blocked, older Safari), ``/embed/{app_id}/``
arrives without one and answers the *bootstrap* (same policy, no data). Its script
takes ``H`` from the fragment, removes it from the address, keeps it in memory only
and calls ``GET /embed/{app_id}/frame`` with ``X-Bff-Embed-Session: H`` and no
credentials. That route, and only that route, reads the header
(:data:`~bff.web.auth.guard.HANDLE_PATH`); it answers ``no-store`` JSON::

    {"mode": "post", "origin": "https://partner.example", "expiresIn": 3599,
     "pair": {"tenant_id": "acme", "sub_tenant_id": "north"},
     "frame": {"name": "vendor-dashboard", "src": "about:blank", "title": "…"},
     "post": {"action": "https://vendor…/dashboard/", "fields": {"token": "…"}}}

or a problem (``application/problem+json``) with a ``reason``: 401 (handle forged,
unknown or ended: the script posts ``session-expired``), 403 ``forbidden``, 409
``cookies-blocked``, 502 ``vendor-error``, 503 ``vendor-unavailable``. Per delivery mode:

- ``post``: the script builds the named iframe and a form holding the token, submits
  it into the iframe and drops the form: the token is in no URL, as with the cookie.
- ``fragment`` / ``query``: the iframe's ``src`` is the vendor URL with the token, as
  on the first-party page; the vendor never needed bff's cookie.
- ``proxy``: not offered. The vendor dashboard's own requests (its scripts, data,
  navigation under ``/vendor/``) cannot carry a header and would need the cookie, so
  the bootstrap shows why and posts ``error`` with ``cookies-blocked``.

Without a handle (a reload, a direct visit) the bootstrap posts ``cookies-blocked``
too, or ``session-expired`` when a cookie did arrive but its session had ended.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bff.errors import (
    NotFoundError,
    RevokedError,
    SessionEnded,
    UpstreamRejected,
    UpstreamUnavailable,
)
from bff.operations import launches
from bff.web.auth.guard import current_session, embed_session, embed_session_ended
from bff.web.auth.sessions import Session
from bff.web.dashboard.delivery import FRAME_NAME, PAGE_HEADERS, Embed, embed
from bff.web.dashboard.page import vendor_embed
from bff.web.errors import UNAVAILABLE, problem, unavailable_retry
from bff.web.partner import frame
from bff.web.partner.frame import EmbedApp, Reason
from bff.web.services import Services, services

logger = logging.getLogger(__name__)

LAUNCH_PATH = "/embed/launch"
PAGE_PATH = "/embed/{app_id:int}/"
FRAME_PATH = "/embed/{app_id:int}/frame"


async def launch(request: Request) -> Response:
    if request.method != "GET":
        # A HEAD (a link checker, a prefetch) must not use the ticket up.
        return Response(status_code=405, headers={"Allow": "GET"})
    svc = services(request)
    try:
        redeemed = await launches.redeem(
            svc.database, request.query_params.get("ticket", ""), now=svc.clock.now()
        )
    except NotFoundError:
        logger.info("refused a launch: its ticket is unknown, used or expired")
        return frame.launch_invalid(request)
    except RevokedError:
        logger.info("refused a launch of a revoked partner app")
        return frame.forbidden(request, frame.ANYONE)
    session = await _start(svc, redeemed)
    if session is None:
        return frame.forbidden(request, frame.ANYONE)
    previous = embed_session(request)
    if previous is not None:
        await svc.sessions.revoke(previous.id)
    app_id = redeemed.partner_app_id
    handle = svc.auth.cookies.sign_session(session.id)
    page = request.app.url_path_for("partner:embed", app_id=app_id)
    response = RedirectResponse(
        f"{page}#handle={handle}",
        status_code=303,
        headers=frame.headers(request, (redeemed.origin,)),
    )
    lifetime = int(svc.sessions.lifetime(session).total_seconds())
    svc.auth.cookies.set_session(response, session.id, embedded=True, max_age=lifetime)
    logger.info(
        "started an embed session",
        extra={"partner_app_id": app_id, "user_id": redeemed.user_id},
    )
    return response


async def _start(svc: Services, redeemed: launches.Redeemed) -> Session | None:
    """The embedded session for a redeemed ticket; None when its user or app was
    disabled or revoked meanwhile."""
    try:
        session = await svc.sessions.create(
            redeemed.user_id,
            embedded=True,
            scope=redeemed.pair,
            partner_app_id=redeemed.partner_app_id,
            embed_origin=redeemed.origin,
        )
    except (NotFoundError, SessionEnded):
        return None
    # A revocation committed after the redemption's check but before this session
    # existed could not end it; one committed after this read will.
    app = await frame.load_app(svc, redeemed.partner_app_id)
    if app is None or not app.active:
        await svc.sessions.revoke(session.id)
        return None
    return session


async def page(request: Request) -> Response:
    svc = services(request)
    app = await frame.load_app(svc, request.path_params["app_id"])
    if app is None:
        return frame.forbidden(request, frame.NOBODY, status=404)
    if not app.active:
        return frame.forbidden(request, app.frame_ancestors)
    session = embed_session(request)
    if session is None:
        if current_session(request) is not None:
            logger.info("refused a first-party session on an embed page")
            return frame.forbidden(request, app.frame_ancestors)
        return _bootstrap(request, svc, app)
    if not await frame.serves(svc, app, session):
        logger.info(
            "refused an embed session on another app's page",
            extra={"partner_app_id": app.id, "user_id": session.user_id},
        )
        return frame.forbidden(request, app.frame_ancestors)
    return await _dashboard(request, svc, app, session)


async def _dashboard(request: Request, svc: Services, app: EmbedApp, session: Session) -> Response:
    assert session.scope is not None  # frame.serves checked it
    shown = await _vendor(request, svc, app, session)
    if isinstance(shown, Response):
        return shown
    label = " / ".join(session.scope)
    context = {"embed": shown, "frame_name": FRAME_NAME, "label": label}
    settings = frame.config(origin=session.embed_origin, expires=frame.expires_in(svc, session))
    headers = frame.headers(
        request, app.frame_ancestors, frame_src=shown.frame_src, form_action=shown.form_action
    )
    return frame.render(request, "embed/page.html", context, settings, headers=headers)


async def _vendor(
    request: Request, svc: Services, app: EmbedApp, session: Session
) -> Embed | Response:
    """The vendor embed for the session's pair, or the framed notice of its failure."""
    assert session.scope is not None
    expires = frame.expires_in(svc, session)
    try:
        shown = await vendor_embed(svc, session.scope)
    except UpstreamUnavailable as exc:
        retry, message = unavailable_retry(exc)
        logger.warning("vendor unavailable: %s", exc)
        settings = frame.config(
            origin=session.embed_origin,
            expires=expires,
            event=frame.error_event("vendor-unavailable"),
        )
        return frame.notice(
            request,
            503,
            UNAVAILABLE,
            message,
            settings,
            frame_ancestors=app.frame_ancestors,
            retry_after=retry,
        )
    except UpstreamRejected as exc:
        logger.error("vendor rejected our request (configuration error): %s", exc)
        return _vendor_error(request, 502, frame.MISCONFIGURED, app, session, expires)
    if shown is None:
        return _vendor_error(request, 503, frame.NOT_CONFIGURED, app, session, expires)
    return shown


def _vendor_error(
    request: Request, status: int, message: str, app: EmbedApp, session: Session, expires: int
) -> Response:
    settings = frame.config(
        origin=session.embed_origin, expires=expires, event=frame.error_event("vendor-error")
    )
    return frame.notice(
        request,
        status,
        "Dashboard not available",
        message,
        settings,
        frame_ancestors=app.frame_ancestors,
    )


def _bootstrap(request: Request, svc: Services, app: EmbedApp) -> Response:
    """No embed session came with the request: the cookieless fallback's page."""
    ended = embed_session_ended(request)
    mode = svc.settings.dashboard_delivery
    dashboard_url = svc.settings.dashboard_url
    if mode == "proxy":
        if ended:
            event: frame.Event = {"type": "session-expired"}
            title, message = "Session ended", frame.SESSION_ENDED
        else:
            event = frame.error_event("cookies-blocked")
            title, message = "Cookies blocked", frame.COOKIES_BLOCKED
        return frame.notice(
            request,
            200,
            title,
            message,
            frame.config(event=event),
            frame_ancestors=app.frame_ancestors,
        )
    # The policy the fallback's iframe and form need; the token is not known yet.
    shown = embed(mode, dashboard_url, "") if dashboard_url else None
    headers = frame.headers(
        request,
        app.frame_ancestors,
        frame_src=shown.frame_src if shown else (),
        form_action=shown.form_action if shown else (),
    )
    fallback = request.app.url_path_for("partner:frame", app_id=app.id)
    context = {
        "cookies_blocked": frame.COOKIES_BLOCKED,
        "session_ended": frame.SESSION_ENDED,
    }
    settings = frame.config(fallback=str(fallback), ended=ended)
    return frame.render(request, "embed/bootstrap.html", context, settings, headers=headers)


async def frame_json(request: Request) -> Response:
    """The fallback: how to show the dashboard, for the handle's session only."""
    svc = services(request)
    session = embed_session(request)
    if session is None:
        return _refused(401, "This embed session has ended or its handle is not valid.")
    app = await frame.load_app(svc, request.path_params["app_id"])
    if app is None or not await frame.serves(svc, app, session):
        return _refused(403, frame.FORBIDDEN, "forbidden")
    assert session.scope is not None
    origin = session.embed_origin
    expires = frame.expires_in(svc, session)
    if svc.settings.dashboard_delivery == "proxy":
        return _refused(409, frame.COOKIES_BLOCKED, "cookies-blocked", origin)
    try:
        shown = await vendor_embed(svc, session.scope)
    except UpstreamUnavailable as exc:
        retry, message = unavailable_retry(exc)
        logger.warning("vendor unavailable: %s", exc)
        refused = _refused(503, message, "vendor-unavailable", origin)
        refused.headers["Retry-After"] = str(retry)
        return refused
    except UpstreamRejected as exc:
        logger.error("vendor rejected our request (configuration error): %s", exc)
        return _refused(502, frame.MISCONFIGURED, "vendor-error", origin)
    if shown is None:
        return _refused(503, frame.NOT_CONFIGURED, "vendor-error", origin)
    tenant_id, sub_tenant_id = session.scope
    answer = {
        "mode": shown.mode,
        "origin": origin,
        "expiresIn": expires,
        "pair": {"tenant_id": tenant_id, "sub_tenant_id": sub_tenant_id},
        "frame": {
            "name": FRAME_NAME,
            "src": shown.iframe_src,
            "title": f"Dashboard for {tenant_id} / {sub_tenant_id}",
        },
        "post": (
            {"action": shown.post_action, "fields": {"token": shown.post_token}}
            if shown.post_action
            else None
        ),
    }
    return JSONResponse(answer, headers=PAGE_HEADERS)


def _refused(
    status: int, detail: str, reason: Reason | None = None, origin: str | None = None
) -> Response:
    extra: dict[str, str] = {} if reason is None else {"reason": reason}
    if origin is not None:
        extra["origin"] = origin
    return problem(status, detail, headers=PAGE_HEADERS, **extra)


routes: list[BaseRoute] = [
    Route(LAUNCH_PATH, launch, methods=["GET"], name="partner:launch"),
    Route(PAGE_PATH, page, methods=["GET"], name="partner:embed"),
    Route(FRAME_PATH, frame_json, methods=["GET"], name="partner:frame"),
]
