"""``POST /api/v1/embed/launches``: a single-use launch URL for one partner user and pair."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
