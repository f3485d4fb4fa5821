"""Liveness, readiness and Prometheus metrics for operators."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bff.metrics import CONTENT_TYPE_LATEST, render
from bff.web.services import services


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    checks = {"database": await services(request).database.ping()}
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


async def metrics(request: Request) -> Response:
    return Response(render(services(request).registry), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, name="health:live"),
    Route("/readyz", readyz, name="health:ready"),
    Route("/metrics", metrics, name="health:metrics"),
]
