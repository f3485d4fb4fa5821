"""Every route of the partner wing."""

from __future__ import annotations

from starlette.routing import BaseRoute

from bff.web.partner import embed, launches, token

routes: list[BaseRoute] = [*token.routes, *launches.routes, *embed.routes]
