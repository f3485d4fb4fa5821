"""Run any ASGI app as a real uvicorn server on 127.0.0.1, in a background thread.

Used by end-to-end tests, benches and ``bff demo`` — for the demo vendor and for
bff itself — so they talk over real sockets exactly as in production.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import HTTPProtocolType, LifespanType, LoopFactoryType

_STARTUP_TIMEOUT = 15.0


@contextmanager
def serve_in_thread(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    lifespan: LifespanType = "auto",
    http: HTTPProtocolType = "auto",
    loop: LoopFactoryType = "auto",
) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL (a free port unless given).

    ``http`` and ``loop`` default, as in ``bff serve``, to httptools and uvloop when
    installed; benches pass ``"h11"`` and ``"asyncio"`` to compare.
    """
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and without it every response split in two writes waits ~40 ms on delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        http=http,
        loop=loop,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        ws="none",
        # Long-polling or stalled requests (the vendor's "timeout" fault) must not hold up exit.
        timeout_graceful_shutdown=1,
        backlog=4096,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=_run, args=(server, sock), name=f"uvicorn:{bound_port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server stopped during start-up (see the log)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start within {_STARTUP_TIMEOUT:g} s")
            time.sleep(0.01)
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _run(server: uvicorn.Server, sock: socket.socket) -> None:
    # uvicorn exits the process when the app's start-up fails; in a thread that only
    # ends the thread, and serve_in_thread reports it to the caller.
    with contextlib.suppress(SystemExit):
        server.run(sockets=[sock])
