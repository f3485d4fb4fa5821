"""HS256 JWTs for the demo vendor: issued by its token endpoints, checked by its dashboard."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

_HEADER = {"alg": "HS256", "typ": "JWT"}


def issue(claims: Mapping[str, Any], key: str) -> str:
    signing_input = f"{_encode(_HEADER)}.{_encode(claims)}"
    return f"{signing_input}.{_b64(_sign(signing_input, key))}"


def verify(token: str, key: str, now: float) -> dict[str, Any] | None:
    """The claims of a token this vendor signed and that has not expired, else ``None``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    signing_input = f"{parts[0]}.{parts[1]}"
    try:
        header = json.loads(_unb64(parts[0]))
        signature = _unb64(parts[2])
        claims = json.loads(_unb64(parts[1]))
    except ValueError:
        return None
    if header != _HEADER or not hmac.compare_digest(signature, _sign(signing_input, key)):
        return None
    if not isinstance(claims, dict):
        return None
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= now:
        return None
    return claims


def _sign(signing_input: str, key: str) -> bytes:
    return hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()


def _encode(value: Mapping[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
