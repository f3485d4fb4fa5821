"""Dashboard page throughput against a bare Starlette page, in the same run.

    .venv/bin/python -m bench.web                  # 3 rounds x 5 s per page (httptools, uvloop)
    .venv/bin/python -m bench.web --server h11     # uvicorn's pure-Python parser and asyncio
    .venv/bin/python -m bench.web --seconds 2 --rounds 1 --delivery proxy
    .venv/bin/python -m bench.web --profile        # where bff's server thread spends its time

Both pages run as real uvicorn servers on 127.0.0.1 with the same configuration
(:func:`bff.demo.server.serve_in_thread`), and both are loaded by the same load
generator: a separate process (so it does not share the servers' GIL) running a
fixed number of keep-alive HTTP/1.1 connections in a closed loop, bounded by time
and by a request count. Rounds alternate between the pages so drift hits both.

The BFF page is a signed-in ``GET /`` with a warm token: the session, the
mapping check, the broker's cache and the template, with the demo vendor behind
it. bff logs as in production: JSON lines at ``INFO``, an access record per
request, written to a null device instead of a terminal. The bare page returns
HTML of the same size from a plain route, with the same response headers.

``--profile`` runs cProfile in bff's server thread during the measured rounds
(which slows bff, so its throughput is not comparable then) and prints the
functions with the most own time and the share of the thread's time spent in
logging, so the next person starts from a measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import multiprocessing
import os
import pstats
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bff.app import create_app
from bff.demo.run import prepare, settings_for
from bff.demo.seed import DemoAccount
from bff.demo.server import serve_in_thread
from bff.demo.vendor import VendorConfig, create_vendor_app
from bff.logs import configure_logging
from bff.settings import DELIVERY_MODES

TARGET_RATIO = 0.7
# uvicorn's HTTP parser and loop: what `bff serve` picks when installed (the locked
# set), and the pure-Python pair for comparison.
SERVERS: dict[str, dict[str, Any]] = {
    "httptools": {"http": "httptools", "loop": "uvloop"},
    "h11": {"http": "h11", "loop": "asyncio"},
}
MAX_REQUESTS = 200_000
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclasses.dataclass
class Result:
    name: str
    latencies: list[float] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    failures: int = 0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def load(
    url: str, cookies: dict[str, str], connections: int, seconds: float
) -> tuple[list[float], float, int]:
    """In the load-generator process: latencies (s), elapsed (s) and failures."""
    return asyncio.run(_load(url, cookies, connections, seconds))


async def _load(
    url: str, cookies: dict[str, str], connections: int, seconds: float
) -> tuple[list[float], float, int]:
    # A minimal HTTP/1.1 keep-alive client: a full client library costs more CPU per
    # request than the pages under test, and would measure itself instead.
    parts = httpx2.URL(url)
    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
    request = (
        f"GET {parts.raw_path.decode()} HTTP/1.1\r\nHost: {parts.netloc.decode()}\r\n"
        + (f"Cookie: {cookie}\r\n" if cookie else "")
        + "\r\n"
    ).encode()
    latencies: list[float] = []
    failures = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def worker() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection(parts.host, parts.port)
        try:
            while time.perf_counter() < deadline and len(latencies) < MAX_REQUESTS:
                begun = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                assert length, "the bench expects Content-Length responses"
                await reader.readexactly(int(length[1]))
                if head.startswith(b"HTTP/1.1 200 "):
                    latencies.append(time.perf_counter() - begun)
                else:
                    failures += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return latencies, time.perf_counter() - started, failures


def bare_app(body: str, headers: dict[str, str]) -> Starlette:
    async def page(request: Request) -> Response:
        return HTMLResponse(body, headers=headers)

    return Starlette(routes=[Route("/", page)])


class Profiled:
    """Runs ``profiler`` in the thread that serves ``app`` while ``active`` is set; cProfile
    sees only the thread that enabled it, and that is the server's event loop thread."""

    def __init__(self, app: ASGIApp, profiler: cProfile.Profile) -> None:
        self.app = app
        self.profiler = profiler
        self.active = False
        self._enabled = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.active != self._enabled:
            if self.active:
                self.profiler.enable()
            else:
                self.profiler.disable()
            self._enabled = self.active
        await self.app(scope, receive, send)


def print_profile(profiler: cProfile.Profile, top: int = 25) -> None:
    stats = pstats.Stats(profiler)
    entries: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    entries = stats.stats  # type: ignore[attr-defined]
    total: float = sum(tottime for _cc, _nc, tottime, _ct, _callers in entries.values()) or 1.0

    def share(*fragments: str) -> float:
        own: float = sum(
            tottime
            for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in entries.items()
            if any(fragment in filename for fragment in fragments)
        )
        return own / total

    print(f"\nprofile of bff's server thread: {total:.2f} s of own time in all")
    for label, fragments in (
        ("logging (stdlib logging, bff/logs.py)", ("/logging/", "bff/logs.py")),
        ("middleware (bff/web/*middleware*, security, csrf, auth)", _MIDDLEWARE_FILES),
        ("Jinja templates", ("/jinja2/",)),
        ("HTTP server (uvicorn, h11, httptools)", ("/uvicorn/", "/h11/", "httptools")),
        ("asyncio event loop", ("/asyncio/", "uvloop")),
    ):
        print(f"  {share(*fragments):6.1%}  {label}")
    print(f"\ntop {top} functions by own time:")
    stats.sort_stats("tottime").print_stats(top)


_MIDDLEWARE_FILES = (
    "bff/web/middleware.py",
    "bff/web/security.py",
    "bff/web/auth/csrf.py",
    "bff/web/auth/guard.py",
    "bff/web/body_limit.py",
    "starlette/middleware/",
)


# Headers of bff's page that the bare page sends too; the server adds the rest.
_COPIED_HEADERS = (
    "cache-control",
    "content-security-policy",
    "referrer-policy",
    "x-content-type-options",
    "x-frame-options",
    "x-request-id",
)


def signed_in_cookies(url: str, account: DemoAccount) -> tuple[dict[str, str], httpx2.Response]:
    """Sign in as ``account``; returns the cookies and the warm dashboard page."""
    with httpx2.Client(base_url=url, timeout=30) as browser:
        token = _CSRF.search(browser.get("/login").text)
        assert token, "no sign-in form"
        data = {"email": account.email, "password": account.password, "csrf_token": token[1]}
        signed_in = browser.post("/login", data=data)
        assert signed_in.status_code == 303, signed_in.status_code
        page = browser.get("/")
        assert page.status_code == 200, page.status_code
        return dict(browser.cookies.items()), page


def run(args: argparse.Namespace) -> int:
    account = DemoAccount(
        "bench@example.com", f"bench-{secrets.token_urlsafe(12)}", False, (("acme", "north"),)
    )
    vendor = VendorConfig()
    with ExitStack() as stack:
        # Entered first, closed last: every server logs into it until it has stopped.
        null = stack.enter_context(open(os.devnull, "w"))
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        vendor_url = stack.enter_context(serve_in_thread(create_vendor_app(vendor)))
        port = args.port
        settings = dataclasses.replace(
            settings_for(vendor, vendor_url, port, directory / "bench.db", args.delivery),
            log_level=args.log_level,
        )
        asyncio.run(prepare(settings, (account,)))
        configure_logging(settings.log_level, null)
        profiler = cProfile.Profile()
        bff_app = Profiled(create_app(settings), profiler)
        server = SERVERS[args.server]
        bff_url = stack.enter_context(serve_in_thread(bff_app, port=port, **server))
        cookies, page = signed_in_cookies(bff_url, account)
        headers = {name: page.headers[name] for name in _COPIED_HEADERS if name in page.headers}
        bare_url = stack.enter_context(serve_in_thread(bare_app(page.text, headers), **server))
        spawn = multiprocessing.get_context("spawn")
        pool = stack.enter_context(ProcessPoolExecutor(1, mp_context=spawn))
        targets = {
            "bare Starlette page": (f"{bare_url}/", {}),
            "bff GET /": (f"{bff_url}/", cookies),
        }
        results = {name: Result(name) for name in targets}
        # A short warm-up of each, discarded: imports, JIT-free but cache-warming.
        for url, jar in targets.values():
            pool.submit(load, url, jar, args.connections, 0.5).result()
        for _ in range(args.rounds):
            for name, (url, jar) in targets.items():
                bff_app.active = args.profile and url.startswith(bff_url)
                latencies, elapsed, failures = pool.submit(
                    load, url, jar, args.connections, args.seconds
                ).result()
                results[name].latencies += latencies
                results[name].seconds += elapsed
                results[name].failures += failures
        bff_app.active = False
        # One more request, so the server thread notices and stops profiling.
        httpx2.get(f"{bff_url}/healthz", timeout=10)
    report(results["bff GET /"], results["bare Starlette page"], args)
    if args.profile:
        print_profile(profiler)
        return 0
    ratio = results["bff GET /"].rate / results["bare Starlette page"].rate
    return 0 if ratio >= TARGET_RATIO else 1


def report(bff: Result, bare: Result, args: argparse.Namespace) -> None:
    print(
        f"\n{args.rounds} round(s) x {args.seconds:g} s per page, "
        f"{args.connections} connections, delivery={args.delivery}, server={args.server}, "
        f"log level {args.log_level}\n"
    )
    print("| page | requests | req/s | p50 ms | p99 ms | failures |")
    print("|---|---:|---:|---:|---:|---:|")
    for result in (bare, bff):
        print(
            f"| {result.name} | {len(result.latencies)} | {result.rate:.0f} | "
            f"{result.quantile(0.5):.2f} | {result.quantile(0.99):.2f} | {result.failures} |"
        )
    ratio = bff.rate / bare.rate if bare.rate else 0.0
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"\nbff / bare throughput: {ratio:.0%} ({verdict} the {TARGET_RATIO:.0%} target)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per page per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--server", choices=sorted(SERVERS), default="httptools", help="uvicorn's HTTP stack"
    )
    parser.add_argument("--delivery", choices=DELIVERY_MODES, default="post")
    parser.add_argument("--port", type=int, default=18_080, help="the BFF's port")
    parser.add_argument(
        "--log-level", choices=("INFO", "WARNING"), default="INFO", help="bff's BFF_LOG_LEVEL"
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile bff's server thread (slows it)"
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
