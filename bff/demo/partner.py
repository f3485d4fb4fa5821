"""The demo partner: another company's web app that embeds bff, on a site of its own.

``bff demo`` serves it at ``http://localhost:PORT`` while bff is at
``http://127.0.0.1:PORT``: two sites, so in the iframe the browser treats bff's
cookies as third-party, exactly as at a real partner. It does what a partner's
server must (DESIGN section 6): exchange its client credentials for a bearer token
at bff's token endpoint (cached until shortly before it expires), ask bff for a
launch for its user and one pair, and give the page nothing but the single-use
launch URL. The page mounts it with bff's ``embed.js``, lists every embed event in
``<ol id="events">``, and renews the launch in place ("Renew", or by itself when the
frame says the session is expiring).

| route          | does                                                          |
|----------------|---------------------------------------------------------------|
| ``GET /``      | the page, with a fresh launch (``?pair=T/S`` picks the pair)  |
| ``POST /launch`` | ``{"pair": "T/S"}`` → ``{"url"}``: a fresh launch, same origin only |
| ``GET /partner.js`` | the page's script                                         |

Errors from bff (refused credentials, a refused launch, bff unreachable) become a
:class:`PartnerApiError` at one boundary, :class:`PartnerApiClient`, and reach the
person as one sentence on the page or as ``{"error"}``, never as a traceback.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypedDict
from urllib.parse import urlsplit

import anyio
import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from bff.clock import Clock, SystemClock
from bff.resources import templates_dir

Pair = tuple[str, str]

TOKEN_PATH = "/api/v1/oauth/token"
LAUNCHES_PATH = "/api/v1/embed/launches"
# A cached token is dropped this long before bff says it expires.
TOKEN_MARGIN = 60.0
TIMEOUT = 10.0


class PartnerUser(TypedDict):
    id: str
    email: str
    name: str


DEMO_USER: PartnerUser = {
    "id": "partner-user-1",
    "email": "pat@partner.test",
    "name": "Pat Partner",
}


@dataclasses.dataclass(frozen=True)
class PartnerConfig:
    """Where bff is, who this partner app is there, and where its own page lives."""

    bff_url: str
    origin: str
    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    pairs: tuple[Pair, ...]
    user: PartnerUser = dataclasses.field(default_factory=lambda: DEMO_USER.copy())


class PartnerApiError(Exception):
    """bff refused a request or could not be reached. ``str()`` is one sentence for a
    person; ``status`` is bff's HTTP status, ``None`` when there was no answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PartnerApiClient:
    """bff's partner API as this partner's server calls it: one token at a time,
    reused until :data:`TOKEN_MARGIN` seconds before it expires."""

    def __init__(
        self,
        http: httpx2.AsyncClient,
        client_id: str,
        client_secret: str,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._http = http
        self._credentials = (client_id, client_secret)
        self._clock = clock or SystemClock()
        self._token: str | None = None
        self._expires = 0.0
        self._lock = anyio.Lock()

    async def token(self) -> str:
        """A bearer token: the cached one, or a new one (one request at a time)."""
        async with self._lock:
            if self._token is None or self._clock.monotonic() >= self._expires:
                self._token, lifetime = await self._fetch_token()
                self._expires = self._clock.monotonic() + max(0.0, lifetime - TOKEN_MARGIN)
            return self._token

    async def launch(self, user: PartnerUser, pair: Pair, origin: str) -> str:
        """A single-use launch URL for ``user`` and ``pair``, for a page on ``origin``."""
        body = {
            "user": dict(user),
            "tenant_id": pair[0],
            "sub_tenant_id": pair[1],
            "origin": origin,
        }
        token = await self.token()
        response = await self._send("a launch", "POST", LAUNCHES_PATH, json=body, bearer=token)
        if response.status_code == 401:
            # A token bff no longer honours (its signing key rotated away): once more, fresh.
            self._forget(token)
            token = await self.token()
            response = await self._send("a launch", "POST", LAUNCHES_PATH, json=body, bearer=token)
        if response.status_code != 201:
            raise _refusal("a launch", response)
        url = _field(response, "a launch", "url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise PartnerApiError("bff's answer to a launch holds no launch URL.", 201)
        return url

    def _forget(self, token: str) -> None:
        if self._token == token:
            self._token = None

    async def _fetch_token(self) -> tuple[str, float]:
        response = await self._send(
            "a token",
            "POST",
            TOKEN_PATH,
            data={"grant_type": "client_credentials"},
            basic=self._credentials,
        )
        if response.status_code != 200:
            raise _refusal("a token", response)
        token = _field(response, "a token", "access_token")
        lifetime = _field(response, "a token", "expires_in")
        if not isinstance(token, str) or not token or not isinstance(lifetime, int | float):
            raise PartnerApiError("bff's answer to a token request holds no usable token.", 200)
        return token, float(lifetime)

    async def _send(
        self,
        what: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        bearer: str | None = None,
        basic: tuple[str, str] | None = None,
    ) -> httpx2.Response:
        headers = {"accept": "application/json"}
        if bearer is not None:
            headers["authorization"] = f"Bearer {bearer}"
        try:
            return await self._http.request(
                method, path, json=json, data=data, headers=headers, auth=basic
            )
        except httpx2.HTTPError as exc:
            raise PartnerApiError(
                f"bff did not answer the request for {what} ({type(exc).__name__}: {exc})."
            ) from exc


def _field(response: httpx2.Response, what: str, name: str) -> object:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise PartnerApiError(f"bff's answer to {what} is not a JSON object.", response.status_code)
    return body.get(name)


def _refusal(what: str, response: httpx2.Response) -> PartnerApiError:
    """One sentence from bff's error answer: RFC 6749 ``error`` or RFC 9457 ``detail``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    said = ""
    if isinstance(body, dict):
        parts = [
            str(body[key])
            for key in ("error", "title", "detail", "error_description")
            if isinstance(body.get(key), str) and body[key]
        ]
        said = ": " + "; ".join(dict.fromkeys(parts)) if parts else ""
    status = response.status_code
    message = f"bff refused {what} (HTTP {status}{said})."
    if status == 429 and "retry-after" in response.headers:
        message += f" Try again in {response.headers['retry-after']} s."
    elif status == 401 and what == "a token":
        message += " Check the client credentials: was the app revoked or its secret regenerated?"
    return PartnerApiError(message, status)


# The web app.


def _csp(nonce: str, bff_origin: str) -> str:
    # A plausible partner policy: its own scripts plus bff's embed.js, frames from bff only.
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {bff_origin}",
            f"style-src 'self' 'nonce-{nonce}'",
            f"frame-src {bff_origin}",
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
        ]
    )


def _headers(nonce: str, bff_origin: str) -> dict[str, str]:
    return {
        "content-security-policy": _csp(nonce, bff_origin),
        # The page holds a launch URL: neither cached nor sent on as a Referer.
        "cache-control": "no-store",
        "referrer-policy": "no-referrer",
        "x-content-type-options": "nosniff",
    }


def _pair_named(config: PartnerConfig, value: str | None) -> Pair | None:
    if not value:
        return config.pairs[0]
    tenant, _, sub_tenant = value.partition("/")
    pair = (tenant, sub_tenant)
    return pair if pair in config.pairs else None


def create_partner_app(
    config: PartnerConfig,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    clock: Clock | None = None,
) -> Starlette:
    """The demo partner's web app; ``transport`` reaches bff in-process (tests)."""
    if not config.pairs:
        raise ValueError("the demo partner needs at least one pair")
    templates = Jinja2Templates(directory=templates_dir())
    script = (templates_dir() / "demo_partner" / "partner.js").read_bytes()
    bff_url = config.bff_url.rstrip("/")
    parts = urlsplit(bff_url)
    bff_origin = f"{parts.scheme}://{parts.netloc}"

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, PartnerApiClient]]:
        async with httpx2.AsyncClient(
            base_url=bff_url, transport=transport, timeout=TIMEOUT, follow_redirects=False
        ) as http:
            yield {
                "bff": PartnerApiClient(http, config.client_id, config.client_secret, clock=clock)
            }

    async def page(request: Request) -> Response:
        nonce = secrets.token_urlsafe(16)
        pair = _pair_named(config, request.query_params.get("pair"))
        context: dict[str, Any] = {
            "nonce": nonce,
            "config": config,
            "pair": pair,
            "embed_script": f"{bff_url}/static/embed.js",
            "launch_url": None,
            "error": None,
        }
        status = 200
        if pair is None:
            context["error"] = "This partner app may not show that pair."
            status = 404
        else:
            try:
                context["launch_url"] = await request.state.bff.launch(
                    config.user, pair, config.origin
                )
            except PartnerApiError as exc:
                context["error"] = str(exc)
                status = 502
        return templates.TemplateResponse(
            request,
            "demo_partner/page.html",
            context,
            status_code=status,
            headers=_headers(nonce, bff_origin),
        )

    async def launch(request: Request) -> Response:
        headers = {"cache-control": "no-store", "x-content-type-options": "nosniff"}
        # Only the partner's own page may ask (a cross-site page must not mint launches).
        if request.headers.get("origin") != config.origin:
            return JSONResponse({"error": "cross-origin request refused"}, 403, headers=headers)
        try:
            body = await request.json()
        except ValueError:
            body = None
        named = body.get("pair") if isinstance(body, dict) else None
        pair = _pair_named(config, named if isinstance(named, str) else None)
        if pair is None:
            return JSONResponse({"error": "unknown pair"}, 404, headers=headers)
        try:
            url = await request.state.bff.launch(config.user, pair, config.origin)
        except PartnerApiError as exc:
            return JSONResponse({"error": str(exc)}, 502, headers=headers)
        return JSONResponse({"url": url}, headers=headers)

    async def page_script(request: Request) -> Response:
        return Response(
            script,
            media_type="text/javascript",
            headers={"cache-control": "no-cache", "x-content-type-options": "nosniff"},
        )

    return Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/launch", launch, methods=["POST"]),
            Route("/partner.js", page_script, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
