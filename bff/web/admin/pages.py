"""Every page of the admin console, in the order of its navigation."""

from __future__ import annotations

from starlette.routing import BaseRoute

from bff.web.admin import (
    audit,
    connections,
    mappings,
    overview,
    partner_api,
    tenants,
    tokens,
    users,
)

routes: list[BaseRoute] = [
    *overview.routes,
    *users.routes,
    *tenants.routes,
    *mappings.routes,
    *connections.routes,
    *partner_api.routes,
    *tokens.routes,
    *audit.routes,
]
