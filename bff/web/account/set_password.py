"""``/account/set-password``: redeem a one-time set-password link."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
