"""``bff serve``, the command the Dockerfile runs, as a real process."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from bff.demo.run import prepare
from bff.demo.seed import DemoAccount
from bff.demo.server import Gate, serve_in_thread
from bff.demo.vendor import VendorConfig, create_vendor_app
from bff.settings import Settings
from tests.conftest import random_key

# Failed sign-ins one client address may make per window (bff.web.auth.ratelimit).
PER_ADDRESS = 50


SERVERS = [
    "uvicorn",
    pytest.param(
        "granian",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("granian") is None, reason="granian is not installed"
        ),
    ),
]


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> str:
    """Each server `bff serve` can run (`--server`)."""
    name: str = request.param
    return name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(
    directory: Path, *options: str, env: Mapping[str, str] | None = None
) -> Iterator[tuple[str, Path]]:
    """``bff serve`` in ``directory`` until the block ends; yields its URL and log file."""
    with serving(directory, *options, env=env) as (url, log, _process):
        yield url, log


def serve_env(**settings: str) -> dict[str, str]:
    """The environment of a ``bff serve`` process: no BFF_* of the developer's shell,
    fresh keys unless ``settings`` name them, then ``settings``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("BFF_") or key.startswith("BFF_TEST_")
    }
    env.update(BFF_SECRET_KEYS=random_key(), BFF_ENCRYPTION_KEYS=random_key())
    env.update(settings)
    return env


@contextmanager
def serving(
    directory: Path,
    *options: str,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """Like :func:`serve`, and yields the process too; a test that ends it itself
    leaves it ended."""
    port = port or free_port()
    log = directory / f"serve-{port}.log"
    # A file, not a pipe: nobody reads a pipe while the server runs, and a full one
    # would block its logging.
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "bff", "serve", "--port", str(port), *options],
            cwd=directory,
            env=dict(env) if env is not None else serve_env(),
            stdout=output,
            stderr=output,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx2.get(f"{url}/healthz", timeout=1)
                break
            except httpx2.TransportError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "bff serve did not come up"
                time.sleep(0.1)
        yield url, log, process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=30)


def test_serve_runs_migrates_and_logs_json(
    tmp_path: Path, server: str, request: pytest.FixtureRequest
) -> None:
    if server == "granian":
        # Why `bff serve` runs uvicorn (bench/README.md, "Server"); strict, so a Granian
        # that can leave the header out shows up here.
        request.applymarker(
            pytest.mark.xfail(
                reason="Granian always sends Server: granian (emmett-framework/granian#594)",
                strict=True,
            )
        )
    with serve(tmp_path, "--server", server) as (url, log):
        response = httpx2.get(f"{url}/readyz", timeout=5)
        assert response.status_code == 200
        assert "server" not in response.headers
    assert (tmp_path / "var" / "bff.db").is_file()
    output = log.read_text()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert lines, output
    assert any("GET /readyz" in line["message"] for line in lines)
    assert {"time", "level", "logger", "message"} <= set(lines[0])


def failed_sign_in(browser: httpx2.Client, n: int, forwarded_for: str) -> int:
    form = browser.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    data = {"email": f"nobody{n}@example.com", "password": "wrong", "csrf_token": token[1]}
    response = browser.post("/login", data=data, headers={"X-Forwarded-For": forwarded_for})
    return response.status_code


def test_a_forged_forwarded_for_is_ignored_unless_the_proxy_is_trusted(
    tmp_path: Path, server: str
) -> None:
    """Otherwise one client could dodge the per-address sign-in limit by inventing
    addresses; behind a trusted proxy the forwarded address is the client."""
    with (
        serve(tmp_path, "--server", server) as (url, _),
        httpx2.Client(base_url=url, timeout=10) as browser,
    ):
        codes = [failed_sign_in(browser, n, f"198.51.100.{n}") for n in range(PER_ADDRESS + 1)]
    assert codes[:PER_ADDRESS] == [400] * PER_ADDRESS
    assert codes[PER_ADDRESS] == 429

    trusted = ("--server", server, "--forwarded-allow-ips", "127.0.0.1")
    with serve(tmp_path, *trusted) as (url, _), httpx2.Client(base_url=url, timeout=10) as browser:
        codes = [failed_sign_in(browser, n, "203.0.113.7") for n in range(PER_ADDRESS + 1)]
        assert codes[:PER_ADDRESS] == [400] * PER_ADDRESS
        assert codes[PER_ADDRESS] == 429
        assert failed_sign_in(browser, PER_ADDRESS + 1, "203.0.113.8") == 400


def sign_in(browser: httpx2.Client, account: DemoAccount) -> None:
    form = browser.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    data = {"email": account.email, "password": account.password, "csrf_token": token[1]}
    assert browser.post("/login", data=data).status_code == 303


def vendor_env(vendor: VendorConfig, vendor_url: str, port: int) -> dict[str, str]:
    """Settings of a bff on ``port`` in front of the demo vendor at ``vendor_url``."""
    return {
        "BFF_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "BFF_UPSTREAM_BASE_URL": vendor_url,
        "BFF_UPSTREAM_API_KEY": vendor.api_key,
        "BFF_UPSTREAM_API_SECRET": vendor.api_secret,
        "BFF_DASHBOARD_URL": f"{vendor_url}/dashboard/",
        "BFF_DASHBOARD_DELIVERY": "post",
    }


# What a client sees of a server that stopped accepting: no listener, or (a connection
# that was still in the closed listener's backlog) a reset.
REFUSED = (httpx2.ConnectError, httpx2.ReadError, httpx2.RemoteProtocolError)


def refuses_connections(url: str) -> bool:
    try:
        httpx2.get(f"{url}/healthz", timeout=1)
    except REFUSED:
        return True
    return False


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(
    tmp_path: Path, server: str
) -> None:
    """A cold dashboard load waits on the vendor when SIGTERM arrives: the server stops
    accepting connections, the load still gets its page, and the process exits 0 after
    the app's shutdown (broker, database) ran without an error."""
    vendor = VendorConfig()
    gate = Gate(create_vendor_app(vendor), holds=lambda scope: scope["path"].startswith("/api/"))
    account = DemoAccount("ann@example.com", f"pw-{random_key()}", False, (("acme", "north"),))
    database = tmp_path / "var" / "bff.db"
    asyncio.run(
        prepare(
            Settings((random_key(),), (random_key(),), database_url=f"sqlite:///{database}"),
            (account,),
        )
    )
    port = free_port()
    with serve_in_thread(gate) as vendor_url:
        env = serve_env(**vendor_env(vendor, vendor_url, port))
        with (
            serving(tmp_path, "--server", server, env=env, port=port) as (url, log, process),
            httpx2.Client(base_url=url, timeout=30) as browser,
            ThreadPoolExecutor(1) as pool,
        ):
            sign_in(browser, account)
            page = pool.submit(browser.get, "/")
            gate.wait_for(1)  # the page's token call is held at the vendor
            process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 30
            while not refuses_connections(url):
                assert time.monotonic() < deadline, "still accepting after SIGTERM"
                assert process.poll() is None, "exited with a request in flight"
                time.sleep(0.02)
            assert process.poll() is None, "exited with a request in flight"
            gate.open()
            assert page.result(timeout=30).status_code == 200
            assert process.wait(timeout=30) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert [line for line in lines if line["level"] in ("ERROR", "CRITICAL")] == []
    assert vendor.calls["token"] == 1


def test_workers_above_one_serve_from_several_processes(tmp_path: Path, server: str) -> None:
    redis_url = os.environ.get("BFF_TEST_REDIS_URL")
    if not redis_url:
        pytest.skip("BFF_TEST_REDIS_URL is not set; --workers 2 needs Redis")
    env = serve_env(BFF_REDIS_URL=redis_url)
    with serving(tmp_path, "--server", server, "--workers", "2", env=env) as (url, log, process):
        for _ in range(20):
            assert httpx2.get(f"{url}/readyz", timeout=5).status_code == 200
        deadline = time.monotonic() + 30
        while len(workers := _workers(process.pid)) < 2:
            assert time.monotonic() < deadline, (workers, log.read_text())
            time.sleep(0.05)
        assert len(workers) == 2, (workers, log.read_text())
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def _workers(pid: int) -> list[str]:
    """The server's worker processes (multiprocessing may add its resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [child for child in children if "resource_tracker" not in _command_line(child)]


def _command_line(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""
