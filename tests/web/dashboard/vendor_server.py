"""A fake vendor served for real on 127.0.0.1, for the proxy's own client to reach.

:func:`serve_in_loop` runs uvicorn in the test's own event loop, so the vendor and the
test share events (a held request waits on an ``anyio.Event`` the test sets); tests
driven by ``TestClient`` use :func:`bff.demo.server.serve_in_thread` instead.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import uvicorn
from starlette.types import ASGIApp

# Only guards against a hang; no outcome depends on it.
_START_GUARD = 15.0


@asynccontextmanager
async def serve_in_loop(app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``app`` in this event loop until the block ends; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        lifespan="off",
        http="httptools",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [sock])
            with anyio.fail_after(_START_GUARD):
                # uvicorn offers a flag, not an event.
                while not server.started:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            try:
                yield f"http://127.0.0.1:{sock.getsockname()[1]}"
            finally:
                server.should_exit = True
    finally:
        sock.close()
