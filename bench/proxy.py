"""The vendor proxy's throughput against the vendor itself and two minimal proxies, in one run.

    .venv/bin/python -m bench.proxy                          # uvicorn's defaults, 3 rounds x 5 s
    .venv/bin/python -m bench.proxy --server production      # as `bff serve` runs uvicorn
    .venv/bin/python -m bench.proxy --rounds 1 --profile     # cProfile of bff's process

Five targets serve the same two vendor assets, a small JSON answer and 1 MiB of
bytes: the vendor directly; a minimal Starlette proxy whose aiohttp client only
adds the bearer token; the same with an httpx2 client; bff in ``proxy`` delivery
on bff's origin (a signed-in session, a warm token); and bff in ``proxy``
delivery on the proxy's own origin, as production runs it (``BFF_PROXY_ORIGIN``
``http://localhost:PORT`` beside ``BFF_PUBLIC_URL`` ``http://127.0.0.1:PORT``: each
user signs in on 127.0.0.1, follows ``GET /vendor-frame`` through the handoff for a
proxy session cookie, and the load goes to ``Host: localhost:PORT`` with that cookie).
Each server is uvicorn in its own process on 127.0.0.1 (httptools and uvloop, as
installed); bff logs as in production (JSON lines at ``INFO`` to a null device).
The load generator is another process: 32 keep-alive HTTP/1.1 connections in a
closed loop (:func:`bench.web.load`). Rounds alternate between the targets, so drift and
other load on the machine hit them all; compare the ratios, not the absolutes.

``--server defaults`` gives every server uvicorn's defaults (its access log
included, written to a null device); ``--server production`` gives every server
what ``bff serve`` passes (no access log, no ``server`` header).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import json
import multiprocessing
import os
import pstats
import re
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, asynccontextmanager
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from bench.web import Result, signed_in_cookies
from bff.settings import Settings

HOST = "127.0.0.1"
TARGET_RATIO = 0.8
BFF = "bff proxy"
# bff with BFF_PROXY_ORIGIN: the proxy on an origin of its own (production's configuration).
BFF_OWN_ORIGIN = "bff proxy, own origin"
TARGETS = ("vendor direct", "minimal aiohttp proxy", "minimal httpx2 proxy", BFF, BFF_OWN_ORIGIN)
# With --bff-httpx2: bff once more, its proxy sending through a tuned httpx2 client.
BFF_HTTPX2 = "bff proxy, httpx2 client"
BFF_TARGETS = (BFF, BFF_OWN_ORIGIN, BFF_HTTPX2)
ASSETS = {"small JSON": "small.json", "1 MiB": "large.bin"}
LARGE = 1 << 20
BENCH_TOKEN = "Bearer bench-token"
# bff admits 16 proxied requests per session at once (proxy_limits.MAX_PER_SESSION): the
# load spreads over the sessions of a few users, each with a few connections.
SESSIONS = 4
MAX_REQUESTS = 500_000
# uvicorn.Config keyword arguments per --server; every server of a run gets the same.
SERVER_CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    # What `bff serve` passes (bff.cli._serve), without trusted proxies.
    "production": {
        "log_config": None,
        "proxy_headers": False,
        "server_header": False,
        "access_log": False,
    },
}
# The proxy origin's host name: another name for 127.0.0.1, so another origin (as bff demo).
PROXY_HOST = "localhost"
_START_TIMEOUT = 30.0


def vendor_app() -> Starlette:
    """The demo vendor, plus the two assets; they want a bearer token, any one."""
    from bff.demo.dashboard import Viewer, insights
    from bff.demo.vendor import VendorConfig, create_vendor_app

    small = json.dumps(insights(Viewer("acme", "north"))).encode()
    large = bytes(range(256)) * (LARGE // 256)

    def asset(name: str, body: bytes, media_type: str) -> Route:
        async def serve(request: Request) -> Response:
            if not request.headers.get("authorization", "").startswith("Bearer "):
                return Response(b"no token", 401, media_type="text/plain")
            return Response(body, media_type=media_type, headers={"cache-control": "no-cache"})

        return Route(f"/dashboard/{name}", serve)

    return Starlette(
        routes=[
            asset(ASSETS["small JSON"], small, "application/json"),
            asset(ASSETS["1 MiB"], large, "application/octet-stream"),
            Mount("", app=create_vendor_app(VendorConfig())),
        ]
    )


def aiohttp_proxy_app(vendor_url: str) -> Starlette:
    """The issue's minimal proxy: an aiohttp client that adds the bearer token. It reads
    the vendor's answer whole and sends it in one piece, the quickest way for a small one
    (a streaming ``StreamingResponse`` costs a task per response in Starlette)."""
    import aiohttp

    clients: list[aiohttp.ClientSession] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(vendor_url) as client:
            clients.append(client)
            yield

    async def forward(request: Request) -> Response:
        path = f"/dashboard/{request.path_params['path']}"
        async with clients[0].get(path, headers={"authorization": BENCH_TOKEN}) as upstream:
            body = await upstream.read()
            content_type = upstream.headers.get("content-type")
        return Response(body, upstream.status, media_type=content_type)

    return Starlette(routes=[Route("/vendor/{path:path}", forward)], lifespan=lifespan)


def httpx_proxy_app(vendor_url: str) -> Starlette:
    """The same minimal proxy with an httpx2 client."""
    clients: list[httpx2.AsyncClient] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx2.AsyncClient(base_url=vendor_url) as client:
            clients.append(client)
            yield

    async def forward(request: Request) -> Response:
        path = f"/dashboard/{request.path_params['path']}"
        upstream = await clients[0].get(path, headers={"authorization": BENCH_TOKEN})
        content_type = upstream.headers.get("content-type")
        return Response(upstream.content, upstream.status_code, media_type=content_type)

    return Starlette(routes=[Route("/vendor/{path:path}", forward)], lifespan=lifespan)


@dataclasses.dataclass(frozen=True)
class Spec:
    """One server process: which app, where, and how uvicorn runs it."""

    target: str
    port: int
    server: str
    vendor_url: str = ""
    settings: Settings | None = None
    profile_path: str | None = None


def serve(spec: Spec, stop: Event) -> None:
    """In a server process: serve ``spec`` until ``stop`` is set."""
    import uvicorn

    null = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    os.dup2(null.fileno(), 1)
    os.dup2(null.fileno(), 2)
    if spec.target in BFF_TARGETS:
        from bff.app import create_app
        from bff.logs import configure_logging
        from bff.web.dashboard.proxy_limits import ProxyLimits

        assert spec.settings is not None
        configure_logging(spec.settings.log_level, null)
        transport = None
        if spec.target == BFF_HTTPX2:
            # The broker's token client shares it: it is idle once the token is warm.
            transport = httpx2.AsyncHTTPTransport(limits=ProxyLimits().vendor_pool(), retries=0)
        app: Any = create_app(spec.settings, vendor_transport=transport)
    elif spec.target == "minimal aiohttp proxy":
        app = aiohttp_proxy_app(spec.vendor_url)
    elif spec.target == "minimal httpx2 proxy":
        app = httpx_proxy_app(spec.vendor_url)
    else:
        app = vendor_app()
    config = uvicorn.Config(
        app, host=HOST, port=spec.port, backlog=4096, **SERVER_CONFIGS[spec.server]
    )
    server = uvicorn.Server(config)

    def stop_when_told() -> None:
        stop.wait()
        server.should_exit = True

    threading.Thread(target=stop_when_told, daemon=True).start()
    profiler = cProfile.Profile() if spec.profile_path else None
    if profiler is not None:
        profiler.enable()
    server.run()
    if profiler is not None and spec.profile_path:
        profiler.disable()
        profiler.dump_stats(spec.profile_path)


def load(
    url: str, headers: list[str], connections: int, seconds: float
) -> tuple[list[float], float, int]:
    """In the load-generator process: latencies (s), elapsed (s) and failures. Connection
    ``i`` sends ``headers[i % len(headers)]`` (a header line, or a blank). Every server
    listens on 127.0.0.1: the connections go there whatever ``url``'s host name, which is
    the request's ``Host``."""
    return asyncio.run(_load(url, headers, connections, seconds))


async def _load(
    url: str, headers: list[str], connections: int, seconds: float
) -> tuple[list[float], float, int]:
    # As bench.web: a minimal HTTP/1.1 keep-alive client, so the bench measures the servers.
    parts = httpx2.URL(url)
    head = f"GET {parts.raw_path.decode()} HTTP/1.1\r\nHost: {parts.netloc.decode()}\r\n"
    latencies: list[float] = []
    failures = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def worker(extra: str) -> None:
        nonlocal failures
        request = (head + extra + "\r\n").encode()
        reader, writer = await asyncio.open_connection(HOST, parts.port)
        try:
            while time.perf_counter() < deadline and len(latencies) < MAX_REQUESTS:
                begun = time.perf_counter()
                writer.write(request)
                answer = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", answer)
                assert length, "the bench expects Content-Length responses"
                await reader.readexactly(int(length[1]))
                if answer.startswith(b"HTTP/1.1 200 "):
                    latencies.append(time.perf_counter() - begun)
                else:
                    failures += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker(headers[n % len(headers)]) for n in range(connections)))
    return latencies, time.perf_counter() - started, failures


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def server_process(spec: Spec, ready_path: str) -> Iterator[tuple[str, int]]:
    """Start ``spec`` in its own process; yields its base URL and process id once
    ``ready_path`` answers."""
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    process = spawn.Process(target=serve, args=(spec, stop), name=spec.target, daemon=True)
    process.start()
    url = f"http://{HOST}:{spec.port}"
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if not process.is_alive():
                raise RuntimeError(f"{spec.target} stopped during start-up")
            try:
                if httpx2.get(url + ready_path, timeout=2).status_code < 500:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{spec.target} did not start")
            time.sleep(0.1)
        assert process.pid is not None
        yield url, process.pid
    finally:
        stop.set()
        process.join(timeout=15)
        if process.is_alive():
            process.kill()


def run(args: argparse.Namespace) -> int:
    from bff.demo.run import prepare, settings_for
    from bff.demo.seed import DemoAccount
    from bff.demo.vendor import VendorConfig

    accounts = tuple(
        DemoAccount(
            f"bench{n}@example.com",
            f"bench-{secrets.token_urlsafe(12)}",
            False,
            (("acme", "north"),),
        )
        for n in range(SESSIONS)
    )
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        pids: dict[str, int] = {}
        vendor_url, pids["vendor direct"] = stack.enter_context(
            server_process(Spec("vendor direct", free_port(), args.server), "/dashboard/app.css")
        )
        urls = {"vendor direct": f"{vendor_url}/dashboard/"}
        for target in ("minimal aiohttp proxy", "minimal httpx2 proxy"):
            spec = Spec(target, free_port(), args.server, vendor_url)
            url, pids[target] = stack.enter_context(server_process(spec, "/vendor/app.css"))
            urls[target] = f"{url}/vendor/"
        jars = {"vendor direct": [f"Authorization: {BENCH_TOKEN}\r\n"]}
        jars.update({target: [""] for target in urls if target != "vendor direct"})
        targets = [*TARGETS, BFF_HTTPX2] if args.bff_httpx2 else list(TARGETS)
        profile_path = tempfile.mkstemp(suffix=".prof")[1] if args.profile else None
        for target in targets:
            if target not in BFF_TARGETS:
                continue
            port = free_port()
            database = directory / f"{port}.db"
            own_origin = target == BFF_OWN_ORIGIN
            settings = dataclasses.replace(
                settings_for(VendorConfig(), vendor_url, port, database, "proxy"),
                log_level=args.log_level,
                proxy_origin=f"http://{PROXY_HOST}:{port}" if own_origin else None,
            )
            asyncio.run(prepare(settings, accounts))
            profiled = profile_path if target == args.profile_target else None
            spec = Spec(target, port, args.server, vendor_url, settings, profiled)
            bff_url, pids[target] = stack.enter_context(server_process(spec, "/healthz"))
            signed_in = [signed_in_cookies(bff_url, a)[0] for a in accounts]
            if own_origin:
                urls[target] = f"http://{PROXY_HOST}:{port}/vendor/"
                jars[target] = [_cookie_line(handed_over(bff_url, c)) for c in signed_in]
            else:
                urls[target] = f"{bff_url}/vendor/"
                jars[target] = [_cookie_line(c) for c in signed_in]
        spawn = multiprocessing.get_context("spawn")
        pool = stack.enter_context(ProcessPoolExecutor(1, mp_context=spawn))
        results = {(t, a): Result(f"{t}, {a}") for a in ASSETS for t in targets}
        cpu = {key: 0.0 for key in results}
        for target in targets:  # warm-up, discarded
            for asset in ASSETS.values():
                pool.submit(
                    load, urls[target] + asset, jars[target], args.connections, 0.5
                ).result()
        for _ in range(args.rounds):
            for name, asset in ASSETS.items():
                if args.asset not in (None, name):
                    continue
                for target in targets:
                    before = cpu_seconds(pids[target])
                    latencies, elapsed, failures = pool.submit(
                        load, urls[target] + asset, jars[target], args.connections, args.seconds
                    ).result()
                    result = results[(target, name)]
                    cpu[(target, name)] += cpu_seconds(pids[target]) - before
                    result.latencies += latencies
                    result.seconds += elapsed
                    result.failures += failures
        stack.close()  # stops the servers; bff writes its profile as it exits
        met = report(results, cpu, targets, args)
        if profile_path is not None:
            print_profile(profile_path)
            os.unlink(profile_path)
    return 0 if met or args.profile else 1


def handed_over(bff_url: str, cookies: dict[str, str]) -> dict[str, str]:
    """The proxy session cookie for a signed-in session (``cookies``), as the dashboard's
    frame gets it: ``GET /vendor-frame`` on bff's origin, 303 to the proxy origin's
    ``/handoff?ticket=…``, which sets the cookie and 303s to ``/vendor/``."""
    with httpx2.Client(base_url=bff_url, cookies=cookies, timeout=30) as browser:
        frame = browser.get("/vendor-frame", headers={"sec-fetch-site": "same-origin"})
        assert frame.status_code == 303, frame.status_code
        handoff = httpx2.URL(frame.headers["location"])
        assert handoff.host == PROXY_HOST and handoff.path == "/handoff", handoff
    # To 127.0.0.1 (where the server listens) with the proxy origin's Host, and none of
    # bff's cookies (the browser keeps them for 127.0.0.1).
    answer = httpx2.get(
        f"{bff_url}{handoff.raw_path.decode()}",
        headers={"host": handoff.netloc.decode(), "sec-fetch-site": "cross-site"},
        timeout=30,
    )
    assert answer.status_code == 303, answer.status_code
    assert answer.headers["location"].endswith("/vendor/"), answer.headers["location"]
    proxy_cookies = {
        name: value
        for name, value in (
            line.split(";", 1)[0].split("=", 1) for line in answer.headers.get_list("set-cookie")
        )
        if name.endswith("bff_proxy_session")
    }
    assert len(proxy_cookies) == 1, "no proxy session cookie"
    return proxy_cookies


def print_profile(path: str, top: int = 25) -> None:
    stats = pstats.Stats(path)
    entries: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    entries = stats.stats  # type: ignore[attr-defined]
    by_file: dict[str, float] = {}
    for (filename, _line, _name), (_cc, _nc, own, _cumulative, _callers) in entries.items():
        for marker in ("site-packages/", "/python3.11/", "/bff/", "/bench/"):
            if marker in filename:
                filename = marker.strip("/") + ":" + filename.split(marker, 1)[1]
                break
        by_file[filename] = by_file.get(filename, 0.0) + own
    total = sum(by_file.values()) or 1.0
    print(f"\nbff's process (start-up and warm-up included): {total:.2f} s of own time; by file:")
    for filename, own in sorted(by_file.items(), key=lambda item: -item[1])[:top]:
        print(f"  {own / total:6.1%}  {filename}")
    print(f"\ntop {top} functions by own time:")
    stats.sort_stats("tottime").print_stats(top)


def _cookie_line(cookies: dict[str, str]) -> str:
    return "Cookie: " + "; ".join(f"{name}={value}" for name, value in cookies.items()) + "\r\n"


def report(
    results: dict[tuple[str, str], Result],
    cpu: dict[tuple[str, str], float],
    targets: Sequence[str],
    args: argparse.Namespace,
) -> bool:
    print(
        f"\n{args.rounds} round(s) x {args.seconds:g} s per target and asset, "
        f"{args.connections} connections, uvicorn {args.server}, bff log level {args.log_level}\n"
    )
    print(
        "| asset | target | requests | req/s | p50 ms | p99 ms | failures | "
        "server CPU µs / request | req/s / direct | req/s / aiohttp proxy |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    met = True
    for asset in ASSETS:
        if args.asset not in (None, asset):
            continue
        direct = results[("vendor direct", asset)].rate or 1.0
        minimal = results[("minimal aiohttp proxy", asset)].rate or 1.0
        for target in targets:
            r = results[(target, asset)]
            per_request = cpu[(target, asset)] / max(len(r.latencies) + r.failures, 1) * 1e6
            print(
                f"| {asset} | {target} | {len(r.latencies)} | {r.rate:,.0f} | "
                f"{r.quantile(0.5):.2f} | {r.quantile(0.99):.2f} | {r.failures} | "
                f"{per_request:,.0f} | {r.rate / direct:.2f} | {r.rate / minimal:.2f} |"
            )
        for target in (BFF, BFF_OWN_ORIGIN):
            ratio = results[(target, asset)].rate / minimal
            verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
            print(
                f"|  | {target} / minimal aiohttp proxy: **{ratio:.2f}** "
                f"({verdict} {TARGET_RATIO}) ||||||||"
            )
            met = met and ratio >= TARGET_RATIO
    return met


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per target, asset and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--server", choices=sorted(SERVER_CONFIGS), default="defaults")
    parser.add_argument("--asset", choices=sorted(ASSETS), help="only this one")
    parser.add_argument(
        "--log-level", choices=("INFO", "WARNING"), default="INFO", help="bff's BFF_LOG_LEVEL"
    )
    parser.add_argument("--bff-httpx2", action="store_true", help=f"add a target: {BFF_HTTPX2}")
    parser.add_argument("--profile", action="store_true", help="cProfile bff's process (slows it)")
    parser.add_argument(
        "--profile-target",
        choices=(BFF, BFF_OWN_ORIGIN),
        default=BFF,
        help="with --profile: which bff",
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
