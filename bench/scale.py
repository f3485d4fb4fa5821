"""Two instances of two workers against one instance of one: vendor calls, throughput, renewals.

    .venv/bin/python -m bench.scale                        # needs PostgreSQL and Redis
    .venv/bin/python -m bench.scale --seconds 10 --token-lifetime 8

PostgreSQL: ``BFF_BENCH_DATABASE_URL`` or else ``BFF_TEST_DATABASE_URL`` names a
server where the bench may create (and at the end drop) a database of its own.
Redis: ``BFF_BENCH_REDIS_URL`` or else ``BFF_TEST_REDIS_URL``; the bench claims a
free database number on that server and deletes bff's keys from it between layouts
and at the end.

The demo vendor runs in this process with 200 ms latency on every API call and
tokens of ``--token-lifetime`` seconds; every API call's start and end are
recorded. bff runs in ``proxy`` delivery, as real ``bff serve`` processes sharing the
database and Redis, in two layouts one after the other:

- ``1 x 1``: one instance, one worker;
- ``2 x 2``: two instances on two ports, ``--workers 2`` each, the load spread over
  both (as a load balancer would).

Each layout starts with every token cold (Redis emptied), warms one token per pair
(one request per user and instance: these wait on the vendor, and are not counted),
then measures two segments of ``--seconds`` each: the dashboard page (``GET /``) and
the vendor proxy (``GET /vendor/app.css``, the token attached by bff). Users are
mapped to one pair each, so each pair is one key. The load generator is a separate
process: ``--connections`` keep-alive connections in a closed loop, each signed in as
one user and aimed at one instance.

Reported per layout: vendor calls per key over the layout's run (target: the same as
one process makes, one per token lifetime: every renewal made once for the whole
fleet), and the renewals made twice (a key's call begun less than half a token
lifetime after its previous one); the instances' warnings and errors, from their logs
(a Redis timeout degrading a worker shows there); throughput of each segment;
latency overall and of the requests begun while a vendor call was in flight (target:
none waits on the vendor, so none takes the vendor's 200 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import itertools
import json
import multiprocessing
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager as ContextManager
from contextlib import ExitStack, contextmanager

import httpx2
import redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.server import free_port, server_process
from bench.web import signed_in_cookies
from bff.demo.seed import DemoAccount, seed
from bff.demo.server import serve_in_thread
from bff.demo.vendor import VendorConfig, create_vendor_app
from bff.store.database import Database, create_engine
from bff.store.users import ensure_scope

VENDOR_LATENCY = 0.2
HOST = "127.0.0.1"
LAYOUTS = {"1 x 1": (1, 1), "2 x 2": (2, 2)}
SEGMENTS = {"dashboard GET /": "/", "proxy GET /vendor/app.css": "/vendor/app.css"}
_CLAIM = "bff-bench-scale:claimed"
MAX_REQUESTS = 2_000_000


class CallRecorder:
    """Records when each vendor API call began and ended (monotonic seconds)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.calls: list[tuple[float, float]] = []
        # When each pair's calls began.
        self.pairs: dict[str, list[float]] = collections.defaultdict(list)
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        begun = time.monotonic()
        headers = dict(scope["headers"])
        pair = headers.get(b"x-sub-tenant-id", b"").decode()
        try:
            await self.app(scope, receive, send)
        finally:
            with self._lock:
                self.calls.append((begun, time.monotonic()))
                self.pairs[pair].append(begun)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.pairs.clear()


@dataclasses.dataclass
class Segment:
    name: str
    starts: list[float] = dataclasses.field(default_factory=list)
    latencies: list[float] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    failures: int = 0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


@dataclasses.dataclass
class LayoutResult:
    segments: dict[str, Segment]
    per_key: collections.Counter[tuple[str, str]]
    calls: list[tuple[float, float]]
    seconds: float
    began: float
    pairs: dict[str, list[float]]
    # The instances' warnings and errors (by message), from their logs.
    warnings: collections.Counter[str]


def duplicates(times: Sequence[float], lifetime: float) -> int:
    """Calls for one key begun less than half a token lifetime after the previous one:
    renewals made again (refresh-ahead starts after three quarters of a lifetime)."""
    ordered = sorted(times)
    return sum(b - a < lifetime / 2 for a, b in itertools.pairwise(ordered))


def warnings_in(path: str) -> collections.Counter[str]:
    found: collections.Counter[str] = collections.Counter()
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if '"level":"WARNING"' in line or '"level":"ERROR"' in line:
                try:
                    found[json.loads(line)["message"][:100]] += 1
                except (ValueError, KeyError, TypeError):
                    found[line[:100]] += 1
    return found


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


# -- the load generator (its own process) ---------------------------------------------


def load(
    targets: list[tuple[str, str]], path: str, connections: int, seconds: float
) -> tuple[list[float], list[float], float, int]:
    """Start times (monotonic), latencies, elapsed and failures; connection ``n`` uses
    ``targets[n % len(targets)]`` (base URL, cookie header)."""
    return asyncio.run(_load(targets, path, connections, seconds))


async def _load(
    targets: list[tuple[str, str]], path: str, connections: int, seconds: float
) -> tuple[list[float], list[float], float, int]:
    starts: list[float] = []
    latencies: list[float] = []
    failures = 0
    started = time.monotonic()
    deadline = started + seconds

    async def worker(url: str, cookie: str) -> None:
        nonlocal failures
        parts = httpx2.URL(url)
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc.decode()}\r\nCookie: {cookie}\r\n\r\n"
        ).encode()
        reader, writer = await asyncio.open_connection(parts.host, parts.port)
        try:
            while time.monotonic() < deadline and len(latencies) < MAX_REQUESTS:
                begun = time.monotonic()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                assert length, "the bench expects Content-Length responses"
                await reader.readexactly(int(length[1]))
                if head.startswith(b"HTTP/1.1 200 "):
                    starts.append(begun)
                    latencies.append(time.monotonic() - begun)
                else:
                    failures += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker(*targets[n % len(targets)]) for n in range(connections)))
    return starts, latencies, time.monotonic() - started, failures


# -- the servers ------------------------------------------------------------------------


def bff_serve(env: dict[str, str], port: int, workers: int, log: str) -> ContextManager[str]:
    argv = [sys.executable, "-m", "bff", "serve", "--port", str(port), "--workers", str(workers)]
    return server_process(argv, env, port, errors=log)


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    name = f"bff_bench_{secrets.token_hex(6)}"

    async def run(statement: str) -> None:
        admin = create_engine(server).execution_options(isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as connection:
                await connection.execute(text(statement))
        finally:
            await admin.dispose()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def claimed_redis(server: str) -> Iterator[tuple[str, redis.Redis]]:
    token = secrets.token_hex(8)
    for number in range(1, 15):
        url = str(httpx2.URL(server).copy_with(path=f"/{number}"))
        client = redis.Redis.from_url(url)
        if client.set(_CLAIM, token, nx=True, ex=3600):
            break
        client.close()
    else:
        raise RuntimeError("no free Redis database to claim")
    try:
        yield url, client
    finally:
        forget_tokens(client)
        client.delete(_CLAIM)
        client.close()


def forget_tokens(client: redis.Redis) -> None:
    keys = list(client.scan_iter(match="bff:*", count=1000))
    if keys:
        client.delete(*keys)


async def _seed(url: str, accounts: tuple[DemoAccount, ...]) -> None:
    database = Database(url)
    try:
        async with database.session() as session:
            for account in accounts:
                for tenant, sub_tenant in account.scopes:
                    await ensure_scope(session, tenant, sub_tenant)
        await seed(database, accounts)
    finally:
        await database.dispose()


# -- the bench --------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    database_server = os.environ.get("BFF_BENCH_DATABASE_URL") or os.environ.get(
        "BFF_TEST_DATABASE_URL"
    )
    redis_server = os.environ.get("BFF_BENCH_REDIS_URL") or os.environ.get("BFF_TEST_REDIS_URL")
    if not database_server or not redis_server:
        print("bench.scale needs BFF_TEST_DATABASE_URL and BFF_TEST_REDIS_URL", file=sys.stderr)
        return 2
    accounts = tuple(
        DemoAccount(
            f"bench{n}@example.com",
            f"bench-{secrets.token_urlsafe(12)}",
            False,
            (("bench", f"pair{n}"),),
        )
        for n in range(args.pairs)
    )
    vendor = VendorConfig(latency=VENDOR_LATENCY, token_lifetime=args.token_lifetime)
    recorder = CallRecorder(create_vendor_app(vendor))
    keys = {"BFF_SECRET_KEYS": secrets.token_urlsafe(32)}
    keys["BFF_ENCRYPTION_KEYS"] = secrets.token_urlsafe(32)
    report: dict[str, LayoutResult] = {}
    with ExitStack() as stack:
        database_url = stack.enter_context(fresh_database(database_server))
        redis_url, redis_client = stack.enter_context(claimed_redis(redis_server))
        vendor_url = stack.enter_context(serve_in_thread(recorder))
        base = {key: value for key, value in os.environ.items() if not key.startswith("BFF_")}
        env = {
            **base,
            **keys,
            "BFF_DATABASE_URL": database_url,
            "BFF_REDIS_URL": redis_url,
            "BFF_UPSTREAM_BASE_URL": vendor_url,
            "BFF_UPSTREAM_API_KEY": vendor.api_key,
            "BFF_UPSTREAM_API_SECRET": vendor.api_secret,
            "BFF_DASHBOARD_URL": f"{vendor_url}/dashboard/",
            "BFF_DASHBOARD_DELIVERY": "proxy",
            "BFF_LOG_LEVEL": "INFO",
        }
        migrated = subprocess.run(
            [sys.executable, "-m", "bff", "migrate"], env=env, capture_output=True, check=False
        )
        if migrated.returncode != 0:
            print(migrated.stderr.decode(), file=sys.stderr)
            return 1
        asyncio.run(_seed(database_url, accounts))
        spawn = multiprocessing.get_context("spawn")
        pool = stack.enter_context(ProcessPoolExecutor(1, mp_context=spawn))
        pool.submit(time.monotonic).result()  # started before any layout's clock runs
        for layout, (instances, workers) in LAYOUTS.items():
            forget_tokens(redis_client)
            report[layout] = run_layout(
                args, env, instances, workers, accounts, vendor, recorder, pool
            )
    print_report(args, report)
    return 0


def run_layout(
    args: argparse.Namespace,
    env: dict[str, str],
    instances: int,
    workers: int,
    accounts: tuple[DemoAccount, ...],
    vendor: VendorConfig,
    recorder: CallRecorder,
    pool: ProcessPoolExecutor,
) -> LayoutResult:
    logs = []
    with tempfile.TemporaryDirectory(prefix="bff-bench-scale-") as folder, ExitStack() as stack:
        urls = []
        for _ in range(instances):
            port = free_port()
            instance_env = {**env, "BFF_PUBLIC_URL": f"http://{HOST}:{port}"}
            logs.append(os.path.join(folder, f"{port}.log"))
            urls.append(stack.enter_context(bff_serve(instance_env, port, workers, logs[-1])))
        cookies = [signed_in_cookies(urls[0], account)[0] for account in accounts]
        headers = ["; ".join(f"{k}={v}" for k, v in jar.items()) for jar in cookies]
        # Warm: one proxied request per user on every instance (these wait on the vendor).
        for url in urls:
            for jar in cookies:
                response = httpx2.get(f"{url}/vendor/app.css", cookies=jar, timeout=30)
                assert response.status_code == 200, response.status_code
        vendor.reset_counters()
        recorder.reset()
        # Connection n: user n % pairs, instance n % instances (a balancer's round robin).
        targets = [
            (urls[n % len(urls)], headers[n % len(headers)])
            for n in range(max(len(urls) * len(headers), args.connections))
        ][: args.connections]
        segments = {}
        began = time.monotonic()
        for name, path in SEGMENTS.items():
            starts, latencies, elapsed, failures = pool.submit(
                load, targets, path, args.connections, args.seconds
            ).result()
            segments[name] = Segment(name, starts, latencies, elapsed, failures)
        lasted = time.monotonic() - began
        per_key = collections.Counter(vendor.pair_calls)
        calls = list(recorder.calls)
        pairs = {pair: list(times) for pair, times in recorder.pairs.items()}
        stack.close()  # the instances stop: their logs are complete
        warnings = sum((warnings_in(log) for log in logs), collections.Counter[str]())
    return LayoutResult(segments, per_key, calls, lasted, began, pairs, warnings)


def print_report(args: argparse.Namespace, report: dict[str, LayoutResult]) -> None:
    print(
        f"\n{args.pairs} pairs (keys), {args.connections} connections, {args.seconds:g} s per "
        f"segment, tokens of {args.token_lifetime:g} s, vendor latency "
        f"{VENDOR_LATENCY * 1000:.0f} ms, proxy delivery, PostgreSQL + Redis\n"
    )
    print("| layout | segment | req/s | p50 ms | p99 ms | max ms | failures |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for layout, result in report.items():
        for segment in result.segments.values():
            print(
                f"| {layout} | {segment.name} | {segment.rate:,.0f} | "
                f"{quantile(segment.latencies, 0.5):.2f} | "
                f"{quantile(segment.latencies, 0.99):.2f} | "
                f"{max(segment.latencies, default=0) * 1000:.1f} | {segment.failures} |"
            )
    print(
        "\n| layout | run s | vendor calls | per key (min-max) | lifetimes in the run "
        "| renewals made twice |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for layout, result in report.items():
        seconds = result.seconds
        counts = [result.per_key.get(("bench", f"pair{n}"), 0) for n in range(args.pairs)]
        twice = sum(duplicates(times, args.token_lifetime) for times in result.pairs.values())
        print(
            f"| {layout} | {seconds:.0f} | {sum(counts)} | {min(counts)}-{max(counts)} | "
            f"{seconds / args.token_lifetime:.2f} | {twice} |"
        )
    print(
        "\n| layout | requests begun during a vendor call | p99 ms | max ms | 200 ms or more "
        "| the others: p99 ms | max ms | 200 ms or more |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for layout, result in report.items():
        during: list[float] = []
        others: list[float] = []
        for segment in result.segments.values():
            for start, latency in zip(segment.starts, segment.latencies, strict=True):
                busy = any(begun <= start <= ended for begun, ended in result.calls)
                (during if busy else others).append(latency)
        print(
            f"| {layout} | {len(during)} | {quantile(during, 0.99):.2f} | "
            f"{max(during, default=0) * 1000:.1f} | {sum(x >= VENDOR_LATENCY for x in during)} | "
            f"{quantile(others, 0.99):.2f} | {max(others, default=0) * 1000:.1f} | "
            f"{sum(x >= VENDOR_LATENCY for x in others)} |"
        )
    print("\nvendor calls per key, seconds into the layout's run:")
    for layout, result in report.items():
        for pair, times in sorted(result.pairs.items()):
            moments = ", ".join(f"{moment - result.began:.1f}" for moment in times)
            print(f"  {layout} {pair}: {moments}")
    print("\nthe instances' warnings and errors:")
    for layout, result in report.items():
        for message, count in result.warnings.most_common():
            print(f"  {layout} {count} x {message}")
    for name in SEGMENTS:
        one, four = report["1 x 1"].segments[name], report["2 x 2"].segments[name]
        if one.rate:
            print(f"\n{name}: 2 x 2 / 1 x 1 throughput {four.rate / one.rate:.2f} x", end="")
    print(f"\n(this machine has {os.cpu_count()} CPUs)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=25.0, help="per segment and layout")
    parser.add_argument("--token-lifetime", type=float, default=20.0, help="vendor tokens, s")
    parser.add_argument("--pairs", type=int, default=8, help="users, one pair (key) each")
    parser.add_argument("--connections", type=int, default=32)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
