"""Dashboard page throughput against a bare Starlette page, in the same run.

    .venv/bin/python -m bench.web                  # 3 rounds x 5 s per page (httptools, uvloop)
    .venv/bin/python -m bench.web --log-share      # also bff at WARNING: the access record's share
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

Besides req/s, each page's server thread's CPU time per request is reported (from
``/proc/self/task/<tid>/schedstat``): on a shared machine req/s moves with the other
processes, CPU per request hardly. ``--log-share`` loads bff a third time per round
with the root logger at ``WARNING``; the difference in CPU per request is the access
record's share.

``--profile`` runs cProfile (CPU time of the thread) in bff's server thread during
the measured rounds (which slows bff, so its throughput is not comparable then) and
prints the shares of logging, middleware, templates and the HTTP server, the own
time by file and the functions with the most own time, so the next person starts
from a measurement; ``BENCH_CALLERS="name,..."`` also prints who calls those.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import logging
import multiprocessing
import os
import pstats
import re
import secrets
import sys
import tempfile
import threading
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
    # On-CPU time of the page's server thread while it was loaded.
    cpu_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_request(self) -> float:
        """Server-thread CPU µs per request: unlike req/s, barely moved by other load."""
        return self.cpu_seconds / len(self.latencies) * 1e6 if self.latencies else 0.0

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


def server_cpu_seconds(url: str) -> float:
    """On-CPU time so far of the thread serving ``url`` (``serve_in_thread`` names it)."""
    port = httpx2.URL(url).port
    (thread,) = [each for each in threading.enumerate() if each.name == f"uvicorn:{port}"]
    with open(f"/proc/self/task/{thread.native_id}/schedstat") as schedstat:
        return int(schedstat.read().split()[0]) / 1e9


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


def print_profile(profiler: cProfile.Profile, requests: int, top: int = 25) -> None:
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
        ("logging (stdlib logging, bff/logs.py, the access record)", _LOGGING_FILES),
        ("middleware (bff/web/*middleware*, security, csrf, auth)", _MIDDLEWARE_FILES),
        ("Jinja templates", ("/jinja2/",)),
        ("HTTP server (uvicorn, h11, httptools)", ("/uvicorn/", "/h11/", "httptools")),
        ("asyncio event loop", ("/asyncio/", "uvloop")),
    ):
        print(f"  {share(*fragments):6.1%}  {label}")
    print(f"\nown time by file, µs per request under the profiler ({requests} requests):")
    by_file: dict[str, float] = {}
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in entries.items():
        by_file[_short(filename)] = by_file.get(_short(filename), 0.0) + tottime
    for filename, own in sorted(by_file.items(), key=lambda item: -item[1])[:top]:
        print(f"  {own / max(requests, 1) * 1e6:7.1f}  {own / total:6.1%}  {filename}")
    print(f"\ntop {top} functions by own time:")
    stats.sort_stats("tottime").print_stats(top)
    for name in os.environ.get("BENCH_CALLERS", "").split(","):
        if name:
            stats.print_callers(name)


_LOGGING_FILES = ("/logging/", "bff/logs.py", "bff/web/access_log.py")


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/python3.11/", "/work/main/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


_MIDDLEWARE_FILES = (
    "bff/web/middleware.py",
    "bff/web/request_pipeline.py",
    "bff/web/access_log.py",
    "bff/metrics.py",
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
        # CPU time of the profiled thread: time other processes take is not counted.
        profiler = cProfile.Profile(time.thread_time_ns, 1e-9)
        bff_app = create_app(settings)
        # Only when profiling: the wrapper is one more layer, which the bare page lacks.
        profiled = Profiled(bff_app, profiler) if args.profile else None
        server = SERVERS[args.server]
        bff_url = stack.enter_context(serve_in_thread(profiled or bff_app, port=port, **server))
        cookies, page = signed_in_cookies(bff_url, account)
        headers = {name: page.headers[name] for name in _COPIED_HEADERS if name in page.headers}
        bare_url = stack.enter_context(serve_in_thread(bare_app(page.text, headers), **server))
        spawn = multiprocessing.get_context("spawn")
        pool = stack.enter_context(ProcessPoolExecutor(1, mp_context=spawn))
        level = logging.getLevelName(args.log_level)
        targets = {
            BARE: (bare_url, {}, level),
            BFF: (bff_url, cookies, level),
        }
        if args.log_share:
            targets[BFF_WARNING] = (bff_url, cookies, logging.WARNING)
        results = {name: Result(name) for name in targets}
        # A short warm-up of each, discarded: imports, JIT-free but cache-warming.
        for url, jar, _level in targets.values():
            pool.submit(load, f"{url}/", jar, args.connections, 0.5).result()
        for _ in range(args.rounds):
            for name, (url, jar, round_level) in targets.items():
                if profiled is not None:
                    profiled.active = url == bff_url
                logging.getLogger().setLevel(round_level)
                cpu = server_cpu_seconds(url)
                latencies, elapsed, failures = pool.submit(
                    load, f"{url}/", jar, args.connections, args.seconds
                ).result()
                results[name].cpu_seconds += server_cpu_seconds(url) - cpu
                results[name].latencies += latencies
                results[name].seconds += elapsed
                results[name].failures += failures
        logging.getLogger().setLevel(level)
        if profiled is not None:
            profiled.active = False
            # One more request, so the server thread notices and stops profiling.
            httpx2.get(f"{bff_url}/healthz", timeout=10)
    report(results, args)
    if args.profile:
        print_profile(profiler, len(results[BFF].latencies))
        return 0
    ratio = results[BFF].rate / results[BARE].rate
    return 0 if ratio >= TARGET_RATIO else 1


BARE = "bare Starlette page"
BFF = "bff GET /"
BFF_WARNING = "bff GET / at WARNING"


def report(results: dict[str, Result], args: argparse.Namespace) -> None:
    print(
        f"\n{args.rounds} round(s) x {args.seconds:g} s per page, "
        f"{args.connections} connections, delivery={args.delivery}, server={args.server}, "
        f"log level {args.log_level}\n"
    )
    print("| page | requests | req/s | p50 ms | p99 ms | failures | server CPU µs/request |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for result in results.values():
        print(
            f"| {result.name} | {len(result.latencies)} | {result.rate:.0f} | "
            f"{result.quantile(0.5):.2f} | {result.quantile(0.99):.2f} | {result.failures} | "
            f"{result.cpu_per_request:.1f} |"
        )
    bff, bare = results[BFF], results[BARE]
    ratio = bff.rate / bare.rate if bare.rate else 0.0
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"\nbff / bare throughput: {ratio:.0%} ({verdict} the {TARGET_RATIO:.0%} target)")
    if bff.cpu_per_request:
        print(
            f"bare / bff server CPU per request: {bare.cpu_per_request / bff.cpu_per_request:.0%}"
        )
    if BFF_WARNING in results and bff.cpu_per_request:
        share = 1 - results[BFF_WARNING].cpu_per_request / bff.cpu_per_request
        print(f"the access record's share of bff's server CPU at {args.log_level}: {share:.1%}")


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
    parser.add_argument(
        "--log-share",
        action="store_true",
        help="also load bff at WARNING, for the access record's share of its CPU",
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
