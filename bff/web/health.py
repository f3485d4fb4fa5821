"""Liveness, readiness and Prometheus metrics for operators.

``/readyz`` is 200 while the database answers. With ``BFF_REDIS_URL`` its checks
also say ``"redis": "connected"`` or ``"degraded"``; degraded is still ready (200,
``"status": "degraded"``): the process serves what it holds in memory and rejoins
Redis by itself, so taking it out of a load balancer would only make things worse.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bff.metrics import CONTENT_TYPE_LATEST, render
from bff.web.services import services


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    svc = services(request)
    ready = await svc.database.ping()
    checks: dict[str, bool | str] = {"database": ready}
    status = "ready" if ready else "not ready"
    if svc.shared is not None:
        checks["redis"] = svc.shared.state
        if ready and not svc.shared.healthy:
            status = "degraded"
    return JSONResponse({"status": status, "checks": checks}, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    return Response(render(services(request).registry), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, name="health:live"),
    Route("/readyz", readyz, name="health:ready"),
    Route("/metrics", metrics, name="health:metrics"),
]
