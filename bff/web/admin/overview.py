"""``/admin/``: counts, token cache health, upstream calls and errors of the last 24 hours.

The calls and errors come from the broker's in-process history
(:mod:`bff.broker.history`): this process's calls since it started, at most 24 hours.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from sqlalchemy import Select, func, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bff.broker.history import HourCount
from bff.store.database import Database
from bff.store.models import PartnerApp, SubTenant, Tenant, User, UserScope
from bff.web.admin.console import render, require_admin
from bff.web.admin.tokens import ago
from bff.web.services import services

SECTION = "admin:overview"
RECENT_ERRORS = 5
EXPIRING_WITHIN = timedelta(hours=1)
# The charts' drawing box; the CSS scales it to the page.
CHART_WIDTH = 240
CHART_HEIGHT = 60
_COUNTED: tuple[tuple[str, Select[int]], ...] = (
    ("Users", select(func.count(User.id)).where(User.partner_app_id.is_(None))),
    ("Tenants", select(func.count(Tenant.id))),
    ("Sub-tenants", select(func.count(SubTenant.id))),
    ("Mappings", select(func.count(UserScope.user_id))),
    ("Partner apps", select(func.count(PartnerApp.id))),
    ("Partner users", select(func.count(User.id)).where(User.partner_app_id.is_not(None))),
)


@dataclasses.dataclass(frozen=True)
class Bar:
    x: int
    y: float
    height: float
    value: int
    label: str


@dataclasses.dataclass(frozen=True)
class Chart:
    title: str
    description: str
    total: int
    bars: list[Bar]
    bar_width: int


async def _counts(database: Database) -> list[tuple[str, int]]:
    found = []
    async with database.session() as db:
        for label, query in _COUNTED:
            found.append((label, await db.scalar(query) or 0))
    return found


def _chart(title: str, hours: list[HourCount], values: list[int], kind: str) -> Chart:
    slot = CHART_WIDTH // max(1, len(values))
    top = max(values, default=0) or 1
    bars = []
    for index, (hour, value) in enumerate(zip(hours, values, strict=True)):
        height = round(value / top * CHART_HEIGHT, 1)
        bars.append(
            Bar(
                x=index * slot + 1,
                y=round(CHART_HEIGHT - height, 1),
                height=height,
                value=value,
                label=f"{hour.start:%H}:00 UTC: {value} {kind}",
            )
        )
    first, last = hours[0].start, hours[-1].start
    description = (
        f"{sum(values)} {kind} from {first:%Y-%m-%d %H}:00 to {last:%H}:59 UTC, "
        f"at most {max(values, default=0)} in one hour."
    )
    return Chart(title, description, sum(values), bars, slot - 2)


def _health(request: Request, now: datetime) -> dict[str, object]:
    broker = services(request).broker
    keys = broker.snapshot()
    valid = [key for key in keys if key.expires_at is not None]
    return {
        "cached": len(valid),
        "expiring": sum(
            1 for key in valid if key.expires_at and key.expires_at - now <= EXPIRING_WITHIN
        ),
        "failing": sum(1 for key in keys if key.error is not None and key.expires_at is None),
        "errors": [
            {"error": error, "ago": ago(error.at, now)}
            for error in broker.history.recent_errors()[:RECENT_ERRORS]
        ],
    }


async def overview_page(request: Request) -> Response:
    require_admin(request)
    svc = services(request)
    now = svc.clock.now()
    hours = svc.broker.history.hours()
    context = {
        "counts": await _counts(svc.database),
        "health": _health(request, now),
        "hours": hours,
        "calls": _chart("Upstream calls per hour", hours, [h.calls for h in hours], "calls"),
        "failures": _chart("Upstream errors per hour", hours, [h.errors for h in hours], "errors"),
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
    }
    return render(request, "admin/overview.html", context, section=SECTION)


routes: list[BaseRoute] = [Route("/admin/", overview_page, name=SECTION)]
