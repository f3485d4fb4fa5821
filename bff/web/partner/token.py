"""``POST /api/v1/oauth/token``: client credentials for a short-lived partner bearer token."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
