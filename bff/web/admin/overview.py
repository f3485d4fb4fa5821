"""``/admin/``: counts, token cache health, upstream calls and errors of the last 24 hours."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
