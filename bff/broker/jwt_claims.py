"""Read a JWT's ``exp`` without verifying it.

bff never authorizes anything on these claims: the vendor signed the token for
its own dashboard, and bff only needs to know when to stop using it.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime


class NotAJwt(ValueError):
    """The value is not a compact JWS with a JSON payload."""


def expiry(token: str) -> datetime | None:
    """The ``exp`` claim as an aware UTC datetime; ``None`` when absent.

    Raises :class:`NotAJwt` when ``token`` is not a JWT at all.
    """
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise NotAJwt("not three dot-separated parts")
    try:
        header = json.loads(_b64url(parts[0]))
        claims = json.loads(_b64url(parts[1]))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise NotAJwt("header or payload is not base64url JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise NotAJwt("header or payload is not a JSON object")
    exp = claims.get("exp")
    # bool is an int subclass; a claim of `true` is not a timestamp.
    if exp is None or isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        # Beyond what datetime can hold: as good as "never", which callers cap anyway.
        return datetime.max.replace(tzinfo=UTC)


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
