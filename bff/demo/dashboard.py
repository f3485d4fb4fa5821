"""The demo vendor's insights dashboard: proves a token reached it, for the right pair.

It accepts the token the four delivery modes bring: an ``Authorization: Bearer``
header (proxy), a form field ``token`` (post), the URL fragment ``#token=``
(read by ``app.js``, which calls ``insights.json`` with the token in a header)
and a ``?token=`` query parameter. Every link, asset and fetch is relative, so
the page also works under a proxy's path prefix.

``probe.html`` (with ``probe.js``) plays a hostile vendor: it tries to read the
document of the page that frames it and to fetch bff's pages with the user's
cookies, and writes what happened to ``#result`` as JSON. The isolation browser
test proves every attempt fails once the proxy has its own origin.

A token for one pair shows that pair, and only that one: request headers naming
another pair make it invalid. A connection-wide credential (an apikey-jwt or
oauth2 token, the static key as ``Bearer`` or as HTTP ``Basic``) shows the pair
the server-side caller names in seed 004's ``x-tenant-id`` / ``x-sub-tenant-id``
headers (the proxy pins them), and "all tenants" without them: what a browser
holding such a credential could see.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import random
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from bff.demo import tokens
from bff.resources import templates_dir

if TYPE_CHECKING:
    from bff.demo.vendor import VendorConfig

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun")
_ASSETS = {
    "app.js": "text/javascript",
    "app.css": "text/css",
    # A hostile page: what vendor code would try against the page that frames it.
    "probe.html": "text/html; charset=utf-8",
    "probe.js": "text/javascript",
}
SECURITY_HEADERS = {
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'"
    ),
}


@dataclasses.dataclass(frozen=True)
class Viewer:
    """Whom a valid token speaks for; both ids are ``None`` for a partner-wide token
    used without a pair."""

    tenant_id: str | None
    sub_tenant_id: str | None
    # The credential speaks for every tenant; the pair (if any) came from headers.
    partner_wide: bool = False

    @property
    def heading(self) -> str:
        if self.tenant_id is None:
            return "Insights for all tenants (partner-wide access)"
        return f"Insights for tenant {self.tenant_id} / sub-tenant {self.sub_tenant_id}"


def insights(viewer: Viewer) -> dict[str, Any]:
    """Made-up figures, the same every time for the same pair."""
    seed = f"{viewer.tenant_id}\x00{viewer.sub_tenant_id}".encode()
    rng = random.Random(hashlib.sha256(seed).digest())
    values = [rng.randint(12, 100) for _ in _MONTHS]
    series = [
        {"label": month, "value": value} for month, value in zip(_MONTHS, values, strict=True)
    ]
    return {
        "tenant_id": viewer.tenant_id,
        "sub_tenant_id": viewer.sub_tenant_id,
        "heading": viewer.heading,
        "access": "partner-wide" if viewer.partner_wide else "pair",
        "kpis": [
            {"label": "Conversations", "value": str(sum(values))},
            {"label": "Win rate", "value": f"{rng.randint(8, 61)} %"},
            {"label": "Avg. talk time", "value": f"{rng.randint(3, 27)} min"},
        ],
        "series": series,
    }


def routes(config: VendorConfig) -> list[BaseRoute]:
    templates = Jinja2Templates(directory=templates_dir())
    assets = {name: (templates_dir() / "demo_vendor" / name).read_bytes() for name in _ASSETS}

    def holder(request: Request, token: str | None) -> Viewer | None:
        """Whom ``token`` (or the request's HTTP Basic credentials) speaks for."""
        if token:
            claims = tokens.verify(token, config.signing_key, config.clock.now().timestamp())
            if claims is not None and claims.get("jti") in config.revoked:
                return None
            if claims is not None:
                tenant, sub_tenant = claims.get("tenant_id"), claims.get("sub_tenant_id")
                if isinstance(tenant, str) and isinstance(sub_tenant, str):
                    return Viewer(tenant, sub_tenant)
                return Viewer(None, None, partner_wide=True)
            # A static-bearer connection's token is the API key itself.
            if hmac.compare_digest(token.encode(), config.api_key.encode()):
                return Viewer(None, None, partner_wide=True)
            return None
        if config.is_basic(request.headers.get("authorization", "")):
            return Viewer(None, None, partner_wide=True)
        return None

    def viewer(request: Request, token: str | None) -> Viewer | None:
        found = holder(request, token)
        pinned = _pinned_pair(request)
        if found is None or pinned is None:
            return found
        if found.partner_wide:
            return Viewer(*pinned, partner_wide=True)
        # A token for one pair cannot be pointed at another.
        return found if pinned == (found.tenant_id, found.sub_tenant_id) else None

    def page(request: Request, token: str | None) -> Response:
        config.calls["dashboard"] += 1
        if token is None and not _has_basic(request):
            # No token on the wire: app.js looks for one in the URL fragment.
            context: dict[str, Any] = {"state": "awaiting"}
            status = 200
        elif (found := viewer(request, token)) is None:
            context, status = {"state": "invalid"}, 401
        else:
            context, status = {"state": "ok", "insights": insights(found)}, 200
        return templates.TemplateResponse(
            request,
            "demo_vendor/dashboard.html",
            context,
            status_code=status,
            headers=SECURITY_HEADERS,
        )

    async def show(request: Request) -> Response:
        return page(request, _bearer(request) or request.query_params.get("token"))

    async def posted(request: Request) -> Response:
        form = await request.form()
        token = form.get("token")
        return page(request, token if isinstance(token, str) else "")

    async def data(request: Request) -> Response:
        found = viewer(request, _bearer(request))
        if found is None:
            return JSONResponse({"error": "invalid token"}, 401, headers=SECURITY_HEADERS)
        return JSONResponse(insights(found), headers=SECURITY_HEADERS)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            return Response("not found", 404, media_type="text/plain")
        return Response(
            assets[name],
            media_type=_ASSETS[name],
            headers={"cache-control": "no-cache", "x-content-type-options": "nosniff"},
        )

    return [
        Route("/", show, methods=["GET"]),
        Route("/", posted, methods=["POST"]),
        Route("/insights.json", data, methods=["GET"]),
        Route("/{name:str}", asset, methods=["GET"]),
    ]


async def redirect_to_slash(request: Request) -> Response:
    # Relative, so it also lands right under a proxy's path prefix.
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"dashboard/{query}", 307)


def _pinned_pair(request: Request) -> tuple[str, str] | None:
    tenant = request.headers.get("x-tenant-id", "").strip()
    sub_tenant = request.headers.get("x-sub-tenant-id", "").strip()
    return (tenant, sub_tenant) if tenant and sub_tenant else None


def _has_basic(request: Request) -> bool:
    return request.headers.get("authorization", "").partition(" ")[0].lower() == "basic"


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
