"""Every page of the account wing."""

from __future__ import annotations

from starlette.routing import BaseRoute

from bff.web.account import api_keys, set_password

routes: list[BaseRoute] = [*api_keys.routes, *set_password.routes]
