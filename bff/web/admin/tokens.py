"""``/admin/tokens``: the token cache: refresh now, evict."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
