"""The production server: uvicorn (httptools + uvloop) against Granian, same app, same run.

    .venv/bin/python -m bench.server                      # 3 rounds x 5 s per page and server
    .venv/bin/python -m bench.server --seconds 2 --rounds 1
    .venv/bin/python -m bench.server --log-level WARNING

Each server runs exactly as ``bff serve --server NAME`` runs it (:mod:`bff.serve`,
one worker process), twice: once with bff (a signed-in ``GET /`` with a warm vendor
token, ``post`` delivery, SQLite, JSON access log at ``INFO`` to a null device) and
once with the bare Starlette page of :mod:`bench.web` (the same HTML and headers).
The demo vendor runs in this process. The load generator is :func:`bench.web.load`
in a separate process: 32 keep-alive HTTP/1.1 connections in a closed loop. Rounds
interleave the four targets so drift hits all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx2
from starlette.types import ASGIApp

from bench.web import Result, bare_app, load, signed_in_cookies
from bff.demo.run import prepare
from bff.demo.seed import DemoAccount
from bff.demo.server import serve_in_thread
from bff.demo.vendor import VendorConfig, create_vendor_app
from bff.serve import SERVERS, ServeOptions, run
from bff.settings import Settings

# The bare page's body and headers, for its server process.
_BARE_PAGE = "BENCH_BARE_PAGE"
_COPIED_HEADERS = (
    "cache-control",
    "content-security-policy",
    "referrer-policy",
    "x-content-type-options",
    "x-frame-options",
    "x-request-id",
)


def bare_app_from_env() -> ASGIApp:
    """The bare page's app in its server's worker process."""
    page = json.loads(Path(os.environ[_BARE_PAGE]).read_text())
    return bare_app(page["body"], page["headers"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server_process(
    argv: list[str], env: dict[str, str], port: int, errors: str = os.devnull
) -> Iterator[str]:
    """A server process on ``port`` until the block ends, once its ``/healthz`` answers;
    its standard error goes to the file ``errors``, its output nowhere."""
    with open(os.devnull, "w") as null, open(errors, "w") as error_log:
        process = subprocess.Popen(argv, env=env, stdout=null, stderr=error_log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx2.get(f"{url}/healthz", timeout=1)
                break
            except httpx2.TransportError:
                if process.poll() is not None:
                    raise RuntimeError(f"{argv} exited with {process.returncode}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv} did not come up") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_bench(args: argparse.Namespace) -> int:
    account = DemoAccount(
        "bench@example.com", f"bench-{secrets.token_urlsafe(12)}", False, (("acme", "north"),)
    )
    vendor = VendorConfig()
    keys = {"BFF_SECRET_KEYS": secrets.token_urlsafe(32)}
    keys["BFF_ENCRYPTION_KEYS"] = secrets.token_urlsafe(32)
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        database = f"sqlite:///{directory / 'bench.db'}"
        asyncio.run(
            prepare(Settings((keys["BFF_SECRET_KEYS"],), (keys["BFF_ENCRYPTION_KEYS"],),
                             database_url=database), (account,))
        )  # fmt: skip
        vendor_url = stack.enter_context(serve_in_thread(create_vendor_app(vendor)))
        base_env = {key: value for key, value in os.environ.items() if not key.startswith("BFF_")}
        targets: dict[str, tuple[str, dict[str, str]]] = {}
        for server in SERVERS:
            port = free_port()
            env = {
                **base_env,
                **keys,
                "BFF_DATABASE_URL": database,
                "BFF_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "BFF_UPSTREAM_BASE_URL": vendor_url,
                "BFF_UPSTREAM_API_KEY": vendor.api_key,
                "BFF_UPSTREAM_API_SECRET": vendor.api_secret,
                "BFF_DASHBOARD_URL": f"{vendor_url}/dashboard/",
                "BFF_DASHBOARD_DELIVERY": "post",
                "BFF_LOG_LEVEL": args.log_level,
            }
            argv = [sys.executable, "-m", "bff", "serve", "--server", server, "--port", str(port)]
            url = stack.enter_context(server_process(argv, env, port))
            cookies, page = signed_in_cookies(url, account)
            targets[f"bff GET / on {server}"] = (f"{url}/", cookies)
            page_file = directory / f"bare-{server}.json"
            headers = {name: page.headers[name] for name in _COPIED_HEADERS if name in page.headers}
            page_file.write_text(json.dumps({"body": page.text, "headers": headers}))
            bare_port = free_port()
            bare_env = {**base_env, _BARE_PAGE: str(page_file)}
            bare_argv = [sys.executable, "-m", "bench.server", "--serve-bare", server,
                         "--port", str(bare_port)]  # fmt: skip
            bare_url = stack.enter_context(server_process(bare_argv, bare_env, bare_port))
            targets[f"bare page on {server}"] = (f"{bare_url}/", {})
        spawn = multiprocessing.get_context("spawn")
        pool = stack.enter_context(ProcessPoolExecutor(1, mp_context=spawn))
        results = {name: Result(name) for name in targets}
        for url, jar in targets.values():
            pool.submit(load, url, jar, args.connections, 0.5).result()
        for _ in range(args.rounds):
            for name, (url, jar) in targets.items():
                latencies, elapsed, failures = pool.submit(
                    load, url, jar, args.connections, args.seconds
                ).result()
                results[name].latencies += latencies
                results[name].seconds += elapsed
                results[name].failures += failures
    report(results, args)
    return 0


def report(results: dict[str, Result], args: argparse.Namespace) -> None:
    print(
        f"\n{args.rounds} round(s) x {args.seconds:g} s per target, {args.connections} "
        f"connections, post delivery, log level {args.log_level}, one worker each\n"
    )
    print("| target | requests | req/s | p50 ms | p99 ms | failures |")
    print("|---|---:|---:|---:|---:|---:|")
    for result in results.values():
        print(
            f"| {result.name} | {len(result.latencies)} | {result.rate:.0f} | "
            f"{result.quantile(0.5):.2f} | {result.quantile(0.99):.2f} | {result.failures} |"
        )
    print()
    for server in SERVERS:
        bff, bare = results[f"bff GET / on {server}"], results[f"bare page on {server}"]
        print(f"{server}: bff / bare {bff.rate / bare.rate:.0%}" if bare.rate else server)
    uvicorn, granian = results["bff GET / on uvicorn"], results["bff GET / on granian"]
    if uvicorn.rate:
        print(f"bff on granian / bff on uvicorn: {granian.rate / uvicorn.rate:.2f} x")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per target per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--log-level", choices=("INFO", "WARNING"), default="INFO")
    parser.add_argument("--serve-bare", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        run(
            ServeOptions(
                port=args.port, server=args.serve_bare, factory="bench.server:bare_app_from_env"
            )
        )
        return 0
    return run_bench(args)


if __name__ == "__main__":
    sys.exit(main())
