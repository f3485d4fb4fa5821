"""``bff serve``, the command the Dockerfile runs, as a real process."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2

from tests.conftest import random_key

# Failed sign-ins one client address may make per window (bff.web.auth.ratelimit).
PER_ADDRESS = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(directory: Path, *options: str) -> Iterator[tuple[str, Path]]:
    """``bff serve`` in ``directory`` until the block ends; yields its URL and log file."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("BFF_") or key.startswith("BFF_TEST_")
    }
    env.update(BFF_SECRET_KEYS=random_key(), BFF_ENCRYPTION_KEYS=random_key())
    log = directory / f"serve-{port}.log"
    # A file, not a pipe: nobody reads a pipe while the server runs, and a full one
    # would block its logging.
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "bff", "serve", "--port", str(port), *options],
            cwd=directory,
            env=env,
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
        yield url, log
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_serve_runs_migrates_and_logs_json(tmp_path: Path) -> None:
    with serve(tmp_path) as (url, log):
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


def test_a_forged_forwarded_for_is_ignored_unless_the_proxy_is_trusted(tmp_path: Path) -> None:
    """Otherwise one client could dodge the per-address sign-in limit by inventing
    addresses; behind a trusted proxy the forwarded address is the client."""
    with serve(tmp_path) as (url, _), httpx2.Client(base_url=url, timeout=10) as browser:
        codes = [failed_sign_in(browser, n, f"198.51.100.{n}") for n in range(PER_ADDRESS + 1)]
    assert codes[:PER_ADDRESS] == [400] * PER_ADDRESS
    assert codes[PER_ADDRESS] == 429

    trusted = ("--forwarded-allow-ips", "127.0.0.1")
    with serve(tmp_path, *trusted) as (url, _), httpx2.Client(base_url=url, timeout=10) as browser:
        codes = [failed_sign_in(browser, n, "203.0.113.7") for n in range(PER_ADDRESS + 1)]
        assert codes[:PER_ADDRESS] == [400] * PER_ADDRESS
        assert codes[PER_ADDRESS] == 429
        assert failed_sign_in(browser, PER_ADDRESS + 1, "203.0.113.8") == 400
