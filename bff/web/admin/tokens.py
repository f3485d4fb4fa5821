"""``/admin/tokens``: the token cache: each key's expiry, last refresh and last error;
refresh now; evict. Never a token value.

It lists what this process knows (:meth:`TokenBroker.snapshot`): with several
processes each one shows its own view of a shared cache.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bff.operations import tokens as ops
from bff.web.admin.console import admin_form, field, redirect_done, render, require_admin
from bff.web.services import services

SECTION = "admin:tokens"
PATH = "/admin/tokens"
NOTICES = {
    "refreshed": "A new token was obtained.",
    "refresh-failed": "The vendor did not issue a new token; the key's last error says why.",
    "evicted": "The token was evicted; the next request obtains a new one.",
}


def until(moment: datetime, now: datetime) -> str:
    """How long until ``moment``, for people: "in 3 h 5 min"."""
    seconds = round((moment - now).total_seconds())
    return "now" if seconds <= 0 else f"in {_span(seconds)}"


def ago(moment: datetime, now: datetime) -> str:
    seconds = round((now - moment).total_seconds())
    return "just now" if seconds <= 0 else f"{_span(seconds)} ago"


def _span(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


@dataclasses.dataclass(frozen=True)
class OutcomeView:
    """A broker answer as the console shows it: a badge, a title and a sentence."""

    status: str
    badge: str
    title: str
    message: str
    expires_at: datetime | None
    expires_in: str


def describe_outcome(outcome: ops.TokenOutcome, now: datetime) -> OutcomeView:
    scope = outcome.scope
    pair = f"({scope.tenant_id}, {scope.sub_tenant_id})"
    if outcome.status == "ok":
        assert outcome.expires_at is not None
        return OutcomeView(
            "ok",
            "ok",
            "OK",
            f"The vendor issued a token for {pair}.",
            outcome.expires_at,
            until(outcome.expires_at, now),
        )
    if outcome.status == "refused":
        return OutcomeView("refused", "bad", "Vendor refused", outcome.message, None, "")
    retry = f" Retry in {outcome.retry_after} s." if outcome.retry_after else ""
    return OutcomeView("unavailable", "warn", "Unavailable", outcome.message + retry, None, "")


async def tokens_page(request: Request) -> Response:
    require_admin(request)
    svc = services(request)
    now = svc.clock.now()
    rows = [
        {
            "key": key,
            "expires_in": until(key.expires_at, now) if key.expires_at else "",
            "refreshed_ago": ago(key.obtained_at, now) if key.obtained_at else "",
            "blocked_for": until(key.blocked_until, now) if key.blocked_until else "",
        }
        for key in svc.broker.snapshot()
    ]
    return render(request, "admin/tokens.html", {"rows": rows}, section=SECTION, notices=NOTICES)


async def refresh_token(request: Request) -> Response:
    session, form = await admin_form(request)
    svc = services(request)
    scope = ops.token_scope(
        field(form, "connection_id"), field(form, "tenant_id"), field(form, "sub_tenant_id")
    )
    outcome = await ops.refresh_token(svc.database, session.email, svc.broker, scope)
    return redirect_done(PATH, "refreshed" if outcome.status == "ok" else "refresh-failed")


async def evict_token(request: Request) -> Response:
    session, form = await admin_form(request)
    svc = services(request)
    scope = ops.token_scope(
        field(form, "connection_id"), field(form, "tenant_id"), field(form, "sub_tenant_id")
    )
    await ops.evict_token(svc.database, session.email, svc.broker, scope)
    return redirect_done(PATH, "evicted")


routes: list[BaseRoute] = [
    Route(PATH, tokens_page, name=SECTION),
    Route(f"{PATH}/refresh", refresh_token, methods=["POST"], name="admin:tokens.refresh"),
    Route(f"{PATH}/evict", evict_token, methods=["POST"], name="admin:tokens.evict"),
]
