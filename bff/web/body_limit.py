"""A cap on request bodies, so a client cannot make a route read megabytes into memory.

Every body bff parses itself is a small form (sign-in, CSRF-protected posts): past
``limit`` bytes the read fails with 413 and the route never sees the rest. The
check sits in ``receive``, so it applies whether the client declared a
``Content-Length`` or streams chunks, and costs nothing on requests whose body is
never read. A request with neither ``Content-Length`` nor ``Transfer-Encoding`` has
no body (RFC 9112, 6.3), so its ``receive`` is left as it is. Paths under an exempt
prefix (the vendor proxy, which streams bodies through without holding them) are
left alone; :class:`~bff.web.request_pipeline.RequestPipeline` decides that.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

MAX_BODY_BYTES = 64 * 1024
TOO_LARGE = "The request is larger than this page accepts."


def limit_body(receive: Receive, declared: bytes | None, limit: int = MAX_BODY_BYTES) -> Receive:
    """``receive`` that fails with 413 once the body passes ``limit`` bytes; ``declared``
    is the request's ``Content-Length`` as sent."""
    # A malformed length is left to the server, which refuses it itself.
    length = int(declared) if declared is not None and declared.isdigit() else None
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        # Raised inside the route's read, where the HTTP error handlers answer it.
        if length is not None and length > limit:
            raise HTTPException(413, TOO_LARGE)
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, TOO_LARGE)
        return message

    return limited_receive
