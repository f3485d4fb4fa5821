"""What each middleware costs a warm dashboard page, measured in process.

    .venv/bin/python -m bench.middleware               # 20,000 requests per variant
    .venv/bin/python -m bench.middleware --requests 5000

Calls bff's ASGI app directly (no HTTP server, no sockets) with a signed-in
``GET /``: first the whole stack, then the same stack with one middleware at a
time replaced by a pass-through, in alternating rounds. The difference is what
that middleware costs per request. The session middleware cannot be bypassed
(the page needs the session), so it has no row; the rest of a request
(routing, the session and mapping caches, the broker's cache hit, the template)
is what the whole stack costs minus the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, cast

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench.web import signed_in_cookies
from bff.app import create_app
from bff.demo.run import prepare, settings_for
from bff.demo.seed import DemoAccount
from bff.demo.server import serve_in_thread
from bff.demo.vendor import VendorConfig, create_vendor_app
from bff.web.auth.guard import SessionMiddleware


class PassThrough:
    """Stands in for a bypassed middleware."""

    def __init__(self, app: ASGIApp, **_options: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def with_bypassed(app: Starlette, bypassed: object) -> Starlette:
    """``app`` with one middleware class replaced by :class:`PassThrough` (Starlette
    builds its stack on the first call, so resetting it takes effect)."""
    original: list[Middleware] = app.state.bench_middleware
    app.user_middleware = [
        Middleware(cast(Any, PassThrough)) if cast(object, entry.cls) is bypassed else entry
        for entry in original
    ]
    app.middleware_stack = None
    return app


async def per_request(app: Starlette, state: dict[str, Any], cookie: bytes, count: int) -> float:
    """Mean seconds per ``GET /`` through ``app``, called directly."""
    headers = [(b"host", b"127.0.0.1"), (b"cookie", cookie)]

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    def scope() -> Scope:
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

    gc.collect()
    started = time.perf_counter()
    for _ in range(count):
        await app(scope(), receive, send)
    elapsed = time.perf_counter() - started
    assert set(statuses) == {200}, set(statuses)
    return elapsed / count


async def measure(app: Starlette, cookie: bytes, requests: int, rounds: int) -> None:
    app.state.bench_middleware = list(app.user_middleware)
    variants: list[object] = [None]
    variants += [
        entry.cls
        for entry in app.user_middleware
        if cast(object, entry.cls) is not SessionMiddleware
    ]
    totals: dict[object, float] = dict.fromkeys(variants, 0.0)
    async with app.router.lifespan_context(app) as lifespan_state:
        state = dict(lifespan_state or {})
        for variant in variants:  # warm-up
            await per_request(with_bypassed(app, variant), state, cookie, requests // 10)
        for _ in range(rounds):
            for variant in variants:
                totals[variant] += await per_request(
                    with_bypassed(app, variant), state, cookie, requests
                )
    whole = totals[None] / rounds
    print(f"\n{requests} requests x {rounds} rounds per variant, called in process\n")
    print("| part | µs per request |")
    print("|---|---:|")
    print(f"| whole stack | {whole * 1e6:.1f} |")
    rest = whole
    for variant in variants[1:]:
        cost = whole - totals[variant] / rounds
        rest -= cost
        print(f"| {getattr(variant, '__name__', variant)} | {cost * 1e6:.1f} |")
    print(f"| everything else (session, route, page) | {rest * 1e6:.1f} |")


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
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        vendor_url = stack.enter_context(serve_in_thread(create_vendor_app(vendor)))
        settings = dataclasses.replace(
            settings_for(vendor, vendor_url, 18_081, directory / "bench.db", "post"),
            log_level="WARNING",
        )
        asyncio.run(prepare(settings, (account,)))
        # Signing in needs a server; the measured app is a second one on the same database.
        signing_in = stack.enter_context(serve_in_thread(create_app(settings), port=18_081))
        cookies, _page = signed_in_cookies(signing_in, account)
        cookie = "; ".join(f"{name}={value}" for name, value in cookies.items()).encode()
        asyncio.run(measure(create_app(settings), cookie, args.requests, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
