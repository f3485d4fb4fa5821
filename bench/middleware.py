"""What each layer and each per-request step costs a warm dashboard page, in process.

    .venv/bin/python -m bench.middleware               # 20,000 requests per variant
    .venv/bin/python -m bench.middleware --requests 5000

Calls the ASGI apps directly (no HTTP server, no sockets) with a signed-in ``GET /``,
in alternating rounds, one turn of the event loop per request (so the access lines,
written at the next turn, are counted, each in a batch of one: their dearest case), and
counts the CPU time of the calling thread (other processes barely move it):

- bff's whole app at ``WARNING`` and at ``INFO`` (JSON lines to a null device, as in
  production): the difference is the access record;
- without Starlette's outer error layer (``ServerErrorMiddleware``; ``GET /`` skips the
  inner one, ``ExceptionMiddleware``, and the router): bff's
  :class:`~bff.web.middleware.RequestContextMiddleware` and
  :class:`~bff.web.request_pipeline.RequestPipeline`, then the pipeline alone;
- the dashboard's endpoint alone, with the state the pipeline would have put in the
  scope: the session's page and its response (what ``GET /`` runs past the pipeline);
- for comparison, the usual way to it: Starlette's ``ExceptionMiddleware`` and router;
- a bare Starlette app returning the same HTML with the same headers: the floor.

Then each step of the pipeline on its own (reading the headers, the ids, the cookies,
the sessions, the response headers, the metrics, the access record's fast path and,
for comparison, the same record through ``logging``).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import dataclasses
import gc
import io
import logging
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Scope

from bench.web import bare_app, signed_in_cookies
from bff.app import create_app
from bff.demo.run import prepare, settings_for
from bff.demo.seed import DemoAccount
from bff.demo.server import serve_in_thread
from bff.demo.vendor import VendorConfig, create_vendor_app
from bff.logs import JsonFormatter, configure_logging
from bff.web import middleware, request_pipeline
from bff.web.access_log import log_access
from bff.web.auth.cookies import parse_cookie_header
from bff.web.middleware import RequestContextMiddleware
from bff.web.request_pipeline import RequestPipeline


def _scope(headers: list[tuple[bytes, bytes]], state: dict[str, Any]) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 18080),
        "state": state.copy(),
    }


async def per_request(
    app: ASGIApp, headers: list[tuple[bytes, bytes]], state: Any, count: int
) -> float:
    """Mean CPU seconds per ``GET /`` through ``app``, called directly."""

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    gc.collect()
    started = time.thread_time()
    for _ in range(count):
        await app(_scope(headers, state), receive, send)
        # A turn of the event loop per request, as under a server with one request in
        # flight: work bff defers to the next turn (the access lines) is counted too.
        await asyncio.sleep(0)
    elapsed = time.thread_time() - started
    assert set(statuses) == {200}, set(statuses)
    return elapsed / count


def _pipeline(app: Starlette) -> RequestPipeline:
    layer = app.middleware_stack
    while not isinstance(layer, RequestPipeline):
        layer = layer.app  # type: ignore[union-attr]
    return layer


def _context(app: Starlette) -> RequestContextMiddleware:
    layer = app.middleware_stack
    while not isinstance(layer, RequestContextMiddleware):
        layer = layer.app  # type: ignore[union-attr]
    return layer


WHOLE_INFO = "bff, whole app, INFO"
WHOLE = "bff, whole app, WARNING"
BOTH = "bff's two layers and the page (no ServerErrorMiddleware), WARNING"
PIPELINE = "RequestPipeline and the page"
ENDPOINT = "the dashboard's endpoint alone (page, response)"
ROUTER = "the same through ExceptionMiddleware and the router (the usual way)"


def _set_level(level: int) -> None:
    logging.getLogger().setLevel(level)


async def layers(
    app: Starlette, bare: Starlette, cookie: bytes, requests: int, rounds: int
) -> None:
    headers = [(b"host", b"127.0.0.1"), (b"cookie", cookie)]
    async with app.router.lifespan_context(app) as lifespan_state:
        state = dict(lifespan_state or {})
        await per_request(app, headers, state, 10)  # builds the middleware stack
        pipeline = _pipeline(app)
        context = _context(app)
        # The same layers without ServerErrorMiddleware (GET / goes past the rest).
        pipeline_alone = copy.copy(pipeline)
        both_alone = copy.copy(context)
        both_alone.app = pipeline_alone
        both_alone._pipeline = pipeline_alone
        # What the pipeline leaves in the scope's state for the route.
        prepared = _scope(headers, state)
        await pipeline_alone(prepared, _receive, _ignore)
        route_state = prepared["state"]

        direct = pipeline.direct
        assert direct is not None, "GET / should go straight to the dashboard's endpoint"
        exceptions = pipeline.app

        async def endpoint_alone(scope: Scope, receive: Any, send: Any) -> None:
            scope["state"]["csp_nonce"] = secrets.token_urlsafe(16)
            await direct.endpoint(scope, receive, send)

        async def router_alone(scope: Scope, receive: Any, send: Any) -> None:
            scope["state"]["csp_nonce"] = secrets.token_urlsafe(16)
            await exceptions(scope, receive, send)

        variants: dict[str, tuple[ASGIApp, Any, int]] = {
            WHOLE_INFO: (app, state, logging.INFO),
            WHOLE: (app, state, logging.WARNING),
            BOTH: (both_alone, state, logging.WARNING),
            PIPELINE: (pipeline_alone, state, logging.WARNING),
            ENDPOINT: (endpoint_alone, route_state, logging.WARNING),
            ROUTER: (router_alone, route_state, logging.WARNING),
            "bare Starlette page (same HTML and headers)": (bare, {}, logging.WARNING),
        }
        totals = dict.fromkeys(variants, 0.0)
        for variant, variant_state, level in variants.values():  # warm-up
            _set_level(level)
            await per_request(variant, headers, variant_state, requests // 10)
        for _ in range(rounds):
            for name, (variant, variant_state, level) in variants.items():
                _set_level(level)
                totals[name] += await per_request(variant, headers, variant_state, requests)
    mean = {name: total / rounds * 1e6 for name, total in totals.items()}
    print(f"\n{requests} requests x {rounds} rounds per variant, called in process\n")
    print("| variant | µs per request |")
    print("|---|---:|")
    for name, value in mean.items():
        print(f"| {name} | {value:.1f} |")
    print("\n| part | µs per request |")
    print("|---|---:|")
    print(f"| access record at INFO | {mean[WHOLE_INFO] - mean[WHOLE]:.1f} |")
    print(f"| Starlette's ServerErrorMiddleware | {mean[WHOLE] - mean[BOTH]:.1f} |")
    print(f"| RequestContextMiddleware (id, metrics) | {mean[BOTH] - mean[PIPELINE]:.1f} |")
    print(f"| RequestPipeline (nonce, sessions, headers) | {mean[PIPELINE] - mean[ENDPOINT]:.1f} |")
    print(f"| the dashboard's endpoint (page, response) | {mean[ENDPOINT]:.1f} |")
    print(f"| skipped: ExceptionMiddleware and the router | {mean[ROUTER] - mean[ENDPOINT]:.1f} |")


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _ignore(message: Message) -> None:
    pass


def steps(app: Starlette, cookie: bytes, count: int) -> None:
    """Each step the pipeline takes, timed on its own (µs per call)."""
    pipeline = _pipeline(app)
    context = _context(app)
    headers = [(b"host", b"127.0.0.1"), (b"cookie", cookie), (b"user-agent", b"bench")]
    sent = [(b"content-length", b"4000"), (b"content-type", b"text/html; charset=utf-8")]
    state: dict[str, Any] = {}
    scope = _scope(headers, {})
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("bff.access")
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    capture = logging.StreamHandler(io.StringIO())
    capture.setFormatter(JsonFormatter())

    def through_logging() -> None:
        access.addHandler(capture)  # a second handler: the fast path steps aside
        try:
            log_access(scope, "GET", "/", 200, 0.001)
        finally:
            access.removeHandler(capture)

    timed: dict[str, Callable[[], object]] = {
        "read the request headers (one pass)": lambda: request_pipeline._read(headers),
        "request id": lambda: middleware._request_id(headers),
        "CSP nonce": request_pipeline._nonce,
        "parse the Cookie header": lambda: parse_cookie_header(cookie.decode("latin-1")),
        "response headers (id, security headers)": lambda: pipeline._response_headers(
            sent, "/", "nonce", state, [], (b"x-request-id", b"0123456789abcdef")
        ),
        "metrics (count and latency)": lambda: context.metrics.observe("GET", "/", 200, 0.001),
        "access record, fast path": lambda: log_access(scope, "GET", "/", 200, 0.001),
        "access record through logging (for comparison)": through_logging,
    }
    print("\n| step | µs per call |")
    print("|---|---:|")
    try:
        for name, step in timed.items():
            for _ in range(count // 10):
                step()
            started = time.thread_time()
            for _ in range(count):
                step()
            print(f"| {name} | {(time.thread_time() - started) / count * 1e6:.2f} |")
    finally:
        root.handlers[:] = saved


async def _sessions_step(app: Starlette, cookie: bytes, count: int) -> float:
    pipeline = _pipeline(app)
    sent = parse_cookie_header(cookie.decode("latin-1"))
    async with app.router.lifespan_context(app) as lifespan_state:
        state = dict(lifespan_state or {})
        resolve: Callable[[], Awaitable[list[str]]] = lambda: pipeline.sessions.resolve(  # noqa: E731
            state, sent, method="GET", path="/", handle=None
        )
        for _ in range(count // 10):
            await resolve()
        started = time.thread_time()
        for _ in range(count):
            await resolve()
        return (time.thread_time() - started) / count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    account = DemoAccount(
        "bench@example.com", f"bench-{secrets.token_urlsafe(12)}", False, (("acme", "north"),)
    )
    vendor = VendorConfig()
    with ExitStack() as stack:
        null = stack.enter_context(open(os.devnull, "w"))
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        vendor_url = stack.enter_context(serve_in_thread(create_vendor_app(vendor)))
        settings = dataclasses.replace(
            settings_for(vendor, vendor_url, 18_081, directory / "bench.db", "post"),
            log_level="INFO",
        )
        asyncio.run(prepare(settings, (account,)))
        configure_logging("INFO", null)
        # Signing in needs a server; the measured app is a second one on the same database.
        signing_in = stack.enter_context(serve_in_thread(create_app(settings), port=18_081))
        cookies, page = signed_in_cookies(signing_in, account)
        cookie = "; ".join(f"{name}={value}" for name, value in cookies.items()).encode()
        copied = {
            name: page.headers[name]
            for name in ("cache-control", "content-security-policy", "referrer-policy")
        }
        app = create_app(settings)
        asyncio.run(layers(app, bare_app(page.text, copied), cookie, args.requests, args.rounds))
        steps(app, cookie, args.requests)
        seconds = asyncio.run(_sessions_step(app, cookie, args.requests))
        print(f"| sessions from the cookies (cached session) | {seconds * 1e6:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
