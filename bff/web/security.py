"""Security headers on every response.

Defaults, each kept when a route already set its own value:

- ``Content-Security-Policy``: nonce-based scripts and styles, ``frame-src`` the
  vendor origin of ``BFF_DASHBOARD_URL`` only, ``frame-ancestors 'none'``. Routes
  that need another policy (the dashboard delivery pages, embed pages) build one
  with :func:`content_security_policy` and set it; ``X-Frame-Options: DENY`` is
  added only alongside the default policy, so it never contradicts theirs.
- ``Referrer-Policy: same-origin``: no Referer ever leaves the site. Not
  ``no-referrer`` everywhere, because under that policy browsers send
  ``Origin: null`` on same-origin form posts, which the cross-site check in
  :mod:`bff.web.auth.csrf` then has to take on ``Sec-Fetch-Site`` alone. Pages that
  carry a vendor token set ``no-referrer`` themselves.
- ``X-Content-Type-Options: nosniff``.
- ``Cache-Control: no-store`` on everything outside ``/static/``: pages depend on
  the session, and nothing else is worth caching.
- ``Strict-Transport-Security`` when ``BFF_PUBLIC_URL`` is https (one year,
  without ``includeSubDomains``: the operator's other hosts are not ours to pin).

Each request gets a fresh nonce in ``request.state.csp_nonce`` (from
:class:`~bff.web.request_pipeline.RequestPipeline`); templates see it as ``csp_nonce``.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ExceptionHandler

from bff.settings import Settings

HSTS = "max-age=31536000"
_SOURCE = re.compile(r"[^\s;,]+")


def content_security_policy(
    nonce: str,
    *,
    frame_src: Sequence[str],
    form_action: Sequence[str] = ("'self'",),
    frame_ancestors: Sequence[str] = ("'none'",),
) -> str:
    """A strict policy: only this site's and nonce-tagged scripts and styles, frames only
    from ``frame_src``, framed only by ``frame_ancestors``."""
    policy = _policy_around_nonce(tuple(frame_src), tuple(form_action), tuple(frame_ancestors))
    return policy.replace(_NONCE, nonce)


# Stands for the nonce in a cached policy; whitespace never occurs inside a source.
_NONCE = "\n"


@functools.lru_cache(maxsize=256)
def _policy_around_nonce(
    frame_src: tuple[str, ...], form_action: tuple[str, ...], frame_ancestors: tuple[str, ...]
) -> str:
    for source in (*frame_src, *form_action, *frame_ancestors):
        # A ';' or ',' would end the directive or start a second policy.
        if not _SOURCE.fullmatch(source):
            raise ValueError(f"not a CSP source expression: {source!r}")
    directives: dict[str, Sequence[str]] = {
        "default-src": ["'self'"],
        "script-src": ["'self'", f"'nonce-{_NONCE}'"],
        "style-src": ["'self'", f"'nonce-{_NONCE}'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-src": frame_src or ["'none'"],
        "form-action": form_action or ["'none'"],
        "frame-ancestors": frame_ancestors or ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class SecurityHeaders:
    """The default headers for one set of settings, encoded once: they go on every
    response."""

    def __init__(self, settings: Settings) -> None:
        self.frame_src = (origin_of(settings.dashboard_url),) if settings.dashboard_url else ()
        before, between, after = content_security_policy(_NONCE, frame_src=self.frame_src).split(
            _NONCE
        )
        self._policy = (before.encode(), between.encode(), after.encode())
        self._always = [
            (b"referrer-policy", b"same-origin"),
            (b"x-content-type-options", b"nosniff"),
        ]
        if settings.is_https:
            self._always.append((b"strict-transport-security", HSTS.encode()))

    def add_to(self, raw: list[tuple[bytes, bytes]], *, path: str, nonce: str) -> None:
        """Append each default that ``raw`` (a response's headers) does not set itself."""
        present = {name for name, _ in raw}
        if b"content-security-policy" not in present:
            before, between, after = self._policy
            token = nonce.encode()
            raw.append((b"content-security-policy", before + token + between + token + after))
            if b"x-frame-options" not in present:
                raw.append((b"x-frame-options", b"DENY"))
        for header in self._always:
            if header[0] not in present:
                raw.append(header)
        if b"cache-control" not in present and not path.startswith("/static/"):
            raw.append((b"cache-control", b"no-store"))

    def apply(self, headers: MutableHeaders, *, path: str, nonce: str) -> None:
        self.add_to(headers.raw, path=path, nonce=nonce)


def with_security_headers(
    handler: Callable[[Request, Exception], Awaitable[Response]], settings: Settings
) -> ExceptionHandler:
    """Wrap the 500 handler: Starlette runs it outside every user middleware."""
    headers = SecurityHeaders(settings)

    async def handle(request: Request, exc: Exception) -> Response:
        response = await handler(request, exc)
        nonce = getattr(request.state, "csp_nonce", None) or secrets.token_urlsafe(16)
        headers.apply(response.headers, path=request.url.path, nonce=nonce)
        return response

    return handle


def csp_nonce(request: Request) -> str:
    """This request's nonce, for ``<script nonce=…>`` and route-built policies."""
    nonce: str = request.scope.get("state", {}).get("csp_nonce", "")
    return nonce
