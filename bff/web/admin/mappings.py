"""``/admin/mappings``: mappings one by one, CSV import (preview, then apply) and export."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []

# The CSV upload reads its (larger) body against its own limit, not the 64 KiB form cap.
IMPORT_PATH = "/admin/mappings/import"
