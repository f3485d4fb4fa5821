"""``/admin/tenants``: tenants and sub-tenants: create, rename, delete."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
