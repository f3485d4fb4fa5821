"""A cap on request bodies, so a client cannot make a route read megabytes into memory.

Every body bff parses itself is a small form (sign-in, CSRF-protected posts): past
``limit`` bytes the read fails with 413 and the route never sees the rest. The
check sits in ``receive``, so it applies whether the client declared a
``Content-Length`` or streams chunks, and costs nothing on requests whose body is
never read. Paths under an exempt prefix (the vendor proxy, which streams bodies
through without holding them) are left alone.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024
TOO_LARGE = "The request is larger than this page accepts."


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, limit: int = MAX_BODY_BYTES, exempt: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            # Raised inside the route's read, where the HTTP error handlers answer it.
            if declared is not None and declared > self.limit:
                raise HTTPException(413, TOO_LARGE)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, TOO_LARGE)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            # A malformed length is left to the server, which refuses it itself.
            return int(value) if value.isdigit() else None
    return None
