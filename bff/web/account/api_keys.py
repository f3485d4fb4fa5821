"""``/account/api-keys``: the signed-in user's personal API keys."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
