"""``/admin/mappings``: mappings one by one, CSV import (preview, then apply) and export."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
