"""The embed pages: redeeming a launch, the framed dashboard, the cookieless fallback."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
