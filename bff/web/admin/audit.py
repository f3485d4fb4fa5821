"""``/admin/audit``: every admin action, newest first, filtered by actor and action."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bff.operations import audit
from bff.web.admin.console import page_number, render, require_admin
from bff.web.services import services

_MAX_FILTER = 254


async def audit_page(request: Request) -> Response:
    require_admin(request)
    actor = request.query_params.get("actor", "").strip()[:_MAX_FILTER]
    action = request.query_params.get("action", "").strip()[:_MAX_FILTER]
    page = page_number(request.query_params.get("page", "1"))
    found = await audit.list_entries(
        services(request).database, actor=actor or None, action=action or None, page=page
    )
    filters = {key: value for key, value in (("actor", actor), ("action", action)) if value}

    def page_link(number: int) -> str:
        return "?" + urlencode({**filters, "page": str(number)})

    context = {
        "entries": found.items,
        "actor": actor,
        "action": action,
        "filtered": bool(filters),
        "previous_page": page_link(page - 1) if page > 1 else None,
        "next_page": page_link(found.next_page) if found.next_page else None,
        "page": page,
    }
    return render(request, "admin/audit.html", context, section="admin:audit")


routes: list[BaseRoute] = [Route("/admin/audit", audit_page, name="admin:audit")]
