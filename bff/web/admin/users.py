"""``/admin/users``: search, create, disable and enable, delete, the admin flag."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
