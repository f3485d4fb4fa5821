"""``GET /api/openapi.json`` and ``GET /api/docs``: the API description, public (it holds
no secret), and its page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bff.web.openapi import OPERATIONS, document
from bff.web.services import services


async def openapi_json(request: Request) -> Response:
    return JSONResponse(document(services(request).settings.public_url))


async def docs_page(request: Request) -> Response:
    return services(request).templates.TemplateResponse(
        request, "api_docs.html", {"operations": OPERATIONS}
    )


routes: list[BaseRoute] = [
    Route("/api/openapi.json", openapi_json, name="api:openapi"),
    Route("/api/docs", docs_page, name="api:docs"),
]
