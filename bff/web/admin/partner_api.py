"""``/admin/partner-api``: the Partner API credentials page."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
