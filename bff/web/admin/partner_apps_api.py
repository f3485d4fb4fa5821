"""The admin API for partner apps (``/api/v1/partner-apps``)."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
