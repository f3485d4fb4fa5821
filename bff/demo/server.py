"""Run any ASGI app as a real uvicorn server on 127.0.0.1, in a background thread.

Used by end-to-end tests, benches and ``bff demo`` — for the demo vendor and for
bff itself — so they talk over real sockets exactly as in production. A
:class:`Gate` in front of an app holds its requests until the caller opens it, so a
test can keep a request in flight for exactly as long as it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
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


class Gate:
    """An ASGI wrapper that holds each HTTP request ``holds`` selects until :meth:`open`.

    Thread-safe from the outside: the app runs in a server thread, the test in its own.
    ``arrived`` counts the requests that reached the gate (held or not)."""

    def __init__(self, app: ASGIApp, holds: Callable[[Scope], bool] = lambda scope: True) -> None:
        self.app = app
        self.holds = holds
        self.arrived = 0
        self._changed = threading.Condition()
        self._opened = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.holds(scope):
            with self._changed:
                self.arrived += 1
                self._changed.notify_all()
                opened = self._opened
                if not opened and self._event is None:
                    self._loop = asyncio.get_running_loop()
                    self._event = asyncio.Event()
                event = self._event
            if not opened and event is not None:
                await event.wait()
        await self.app(scope, receive, send)

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        """Block until at least ``count`` requests reached the gate."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.arrived >= count, timeout):
                raise TimeoutError(f"{self.arrived} of {count} requests reached the gate")

    def open(self) -> None:
        """Let every held request through, and every later one."""
        with self._changed:
            self._opened = True
            loop, event = self._loop, self._event
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)

    def close(self) -> None:
        """Hold the requests that arrive from now on (those let through stay so)."""
        with self._changed:
            self._opened = False
            self._loop = self._event = None
