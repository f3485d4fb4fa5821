"""``bff serve``, the command the Dockerfile runs, as a real process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from tests.conftest import random_key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_runs_migrates_and_logs_json(tmp_path: Path) -> None:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("BFF_") or key.startswith("BFF_TEST_")
    }
    env.update(BFF_SECRET_KEYS=random_key(), BFF_ENCRYPTION_KEYS=random_key())
    process = subprocess.Popen(
        [sys.executable, "-m", "bff", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx2.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx2.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "bff serve did not come up"
                time.sleep(0.1)
        assert response.status_code == 200
        assert "server" not in response.headers
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=15)
    assert (tmp_path / "var" / "bff.db").is_file()
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert lines, stderr
    assert any("GET /readyz" in line["message"] for line in lines)
    assert {"time", "level", "logger", "message"} <= set(lines[0])
