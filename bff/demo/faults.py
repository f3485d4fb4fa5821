"""The ways the demo vendor can misbehave, switchable at runtime by tests and benches."""

from __future__ import annotations

import dataclasses
from typing import Literal

FaultKind = Literal[
    # HTTP-level trouble
    "rate_limit",  # 429; Retry-After as given (None: no header), message in the body
    "server_error",  # 500 with the contract's body
    "timeout",  # stall for VendorConfig.hang seconds before answering
    "malformed",  # 200 with truncated JSON
    "html",  # 200 with an HTML page
    "unauthorized",  # 401
    "forbidden",  # 403 with the contract's body
    # a 200 whose token is wrong
    "null_token",  # the token field is null
    "opaque_token",  # a token that is not a JWT
    "no_exp",  # a JWT without `exp`
    "expired",  # a JWT whose `exp` has passed
    "far_future",  # a JWT whose `exp` is ten years ahead
]

RATE_LIMIT_MESSAGE = "Rate limit exceeded. Try again in 60 seconds."


@dataclasses.dataclass(frozen=True)
class Fault:
    kind: FaultKind
    retry_after: str | None = None
    message: str = RATE_LIMIT_MESSAGE
    # Adds `X-RateLimit-Scope: global`: the limit covers the whole API key.
    connection_wide: bool = False
    # The 429's `Date` header (the vendor's clock), when given.
    date: str | None = None

    @classmethod
    def rate_limit(
        cls,
        retry_after: str | None = None,
        message: str = RATE_LIMIT_MESSAGE,
        *,
        connection_wide: bool = False,
        date: str | None = None,
    ) -> Fault:
        return cls("rate_limit", retry_after, message, connection_wide, date)

    @property
    def shapes_token(self) -> bool:
        """The fault changes the token in an otherwise successful answer."""
        return self.kind in ("null_token", "opaque_token", "no_exp", "expired", "far_future")
