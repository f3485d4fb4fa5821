"""What the embed pages render, and who may frame them.

Every embed page is a small document whose content sits in ``#bff-embed-content``
and whose ``static/embed-frame.js`` reads ``#bff-embed-config``, a JSON block (not
an executable script, so the nonce-based CSP has nothing to allow)::

    {"origin": "https://partner.example" | null,  # where messages go; null: "*"
     "expiresIn": 3599 | null,                     # seconds to the session's end
     "event": {"type": "error", "reason": "…"} | null,   # posted once, at load
     "fallback": {"url": "/embed/7/frame", "ended": false} | null}

``origin`` is null only on pages that know no session of their own (the launch
refusals, the forbidden notices, the bootstrap before its fallback answered): their
messages say nothing but their type and reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict

from starlette.requests import Request
from starlette.responses import Response

from bff.logs import request_id
from bff.operations.launches import allowed_origins
from bff.store.models import PartnerApp, PartnerAppScope
from bff.web.auth.sessions import Session
from bff.web.dashboard.delivery import PAGE_HEADERS
from bff.web.security import content_security_policy, csp_nonce
from bff.web.services import Services, services

Reason = Literal[
    "cookies-blocked", "forbidden", "vendor-unavailable", "vendor-error", "launch-invalid"
]
# The launch refusals show nothing and hold no form: any page may frame them, so the
# host page hears why its frame is empty (it may not be one of the app's origins yet).
ANYONE = ("*",)
NOBODY = ("'none'",)

EXPIRED_LINK = "This link has expired or was already used. Ask for a new one."
FORBIDDEN = "This dashboard is not available here."
COOKIES_BLOCKED = (
    "Your browser did not keep the cookie this embedded dashboard needs. Allow cookies "
    "for this dashboard's site in your browser settings, then reload the page."
)
SESSION_ENDED = "This dashboard session has ended. Reload the page to continue."
MISCONFIGURED = "The dashboard connection is misconfigured. An administrator has been notified."
NOT_CONFIGURED = "No vendor dashboard has been configured."
# What the script may show by itself (reason, title, message), in every embed page.
NOTICES = (
    ("cookies-blocked", "Cookies blocked", COOKIES_BLOCKED),
    ("session-expired", "Session ended", SESSION_ENDED),
    ("forbidden", "Not available", FORBIDDEN),
    (
        "vendor-unavailable",
        "Dashboard temporarily unavailable",
        "The dashboard is temporarily unavailable. Retrying shortly.",
    ),
    ("vendor-error", "Dashboard not available", "The dashboard is not available right now."),
)


class Event(TypedDict, total=False):
    type: str
    reason: Reason


def error_event(reason: Reason) -> Event:
    return {"type": "error", "reason": reason}


@dataclasses.dataclass(frozen=True)
class EmbedApp:
    """A partner app as its embed pages see it."""

    id: int
    active: bool
    origins: tuple[str, ...]

    @property
    def frame_ancestors(self) -> tuple[str, ...]:
        """Exactly the app's allowed origins; an app without any is framed nowhere."""
        return self.origins or NOBODY


async def load_app(svc: Services, app_id: int) -> EmbedApp | None:
    async with svc.database.session() as db:
        app = await db.get(PartnerApp, app_id)
        if app is None:
            return None
        return EmbedApp(app.id, not app.disabled, tuple(allowed_origins(app)))


async def serves(svc: Services, app: EmbedApp, session: Session) -> bool:
    """Whether ``session`` is one of ``app``'s, for an origin and a pair it still allows.

    (Revoking the app, a new secret or a removed pair end its sessions already; this
    also covers an origin removed since the launch and a pair whose tenant is gone.)"""
    if not app.active or session.partner_app_id != app.id or session.scope is None:
        return False
    if session.embed_origin not in app.origins:
        return False
    async with svc.database.session() as db:
        allowed = await db.get(PartnerAppScope, (app.id, *session.scope))
    return allowed is not None


def expires_in(svc: Services, session: Session) -> int:
    """Whole seconds until the session's absolute end."""
    left = svc.sessions.expires_at(session) - svc.clock.now()
    return max(0, int(left.total_seconds()))


def config(
    *,
    origin: str | None = None,
    expires: int | None = None,
    event: Event | None = None,
    fallback: str | None = None,
    ended: bool = False,
) -> dict[str, Any]:
    return {
        "origin": origin,
        "expiresIn": expires,
        "event": event,
        "fallback": None if fallback is None else {"url": fallback, "ended": ended},
    }


def headers(
    request: Request,
    frame_ancestors: Sequence[str],
    *,
    frame_src: Sequence[str] = (),
    form_action: Sequence[str] = (),
) -> dict[str, str]:
    """``no-store``, ``no-referrer`` and the page's own policy."""
    policy = content_security_policy(
        csp_nonce(request),
        frame_src=frame_src,
        form_action=form_action,
        frame_ancestors=frame_ancestors,
    )
    return {**PAGE_HEADERS, "Content-Security-Policy": policy}


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    frame_config: dict[str, Any],
    *,
    status: int = 200,
    headers: Mapping[str, str],
) -> Response:
    """``template`` with ``frame_config`` as the page's ``#bff-embed-config``."""
    page = {**context, "config": frame_config, "notices": NOTICES}
    return services(request).templates.TemplateResponse(
        request, template, page, status_code=status, headers=headers
    )


def notice(
    request: Request,
    status: int,
    title: str,
    message: str,
    frame_config: dict[str, Any],
    *,
    frame_ancestors: Sequence[str],
    retry_after: int | None = None,
) -> Response:
    """A message in the frame (no data, no form), and the event its script posts."""
    page_headers = headers(request, frame_ancestors)
    if retry_after is not None:
        page_headers["Retry-After"] = str(retry_after)
    context = {
        "title": title,
        "message": message,
        "request_id": request_id.get(),
        "retry_after": retry_after,
    }
    return render(
        request, "embed/notice.html", context, frame_config, status=status, headers=page_headers
    )


def launch_invalid(request: Request) -> Response:
    event: Event = {"type": "session-expired", "reason": "launch-invalid"}
    return notice(
        request, 410, "Link expired", EXPIRED_LINK, config(event=event), frame_ancestors=ANYONE
    )


def forbidden(request: Request, frame_ancestors: Sequence[str], *, status: int = 403) -> Response:
    return notice(
        request,
        status,
        "Not available",
        FORBIDDEN,
        config(event=error_event("forbidden")),
        frame_ancestors=frame_ancestors,
    )
