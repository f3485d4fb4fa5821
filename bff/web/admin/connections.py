"""``/admin/connections``: vendor connections, secrets write-only, "test connection"."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
