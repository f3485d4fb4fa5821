"""What every connector kind has in common: the :class:`Connector` seam and its data."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol

from bff.broker.scope import TokenScope

# How the broker reads a token's expiry: a JWT's `exp` must be there, may be there, or never is.
TokenFormat = Literal["jwt", "maybe-jwt", "opaque"]


@dataclasses.dataclass(frozen=True)
class VendorRequest:
    """One HTTP call to the vendor, described; the gateway sends it."""

    method: Literal["GET", "POST"]
    url: str
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    form: Mapping[str, str] | None = dataclasses.field(default=None, repr=False)
    json: Mapping[str, str] | None = dataclasses.field(default=None, repr=False)
    basic_auth: tuple[str, str] | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True)
class Issued:
    """A token as the vendor gave it; the broker turns it into a :class:`VendorToken`."""

    value: str = dataclasses.field(repr=False)
    # Seconds the vendor said the token lasts (OAuth2 ``expires_in``), if it said.
    lifetime: float | None
    format: TokenFormat
    # The Authorization header value that presents the token, when not ``Bearer <value>``.
    authorization: str | None = dataclasses.field(default=None, repr=False)
    # OAuth2: the refresh token that came with it, and seconds it lasts (if said).
    refresh_token: str | None = dataclasses.field(default=None, repr=False)
    refresh_lifetime: float | None = None


# Sends a request and returns the JSON object of a 2xx answer; raises the bff error tree otherwise.
Send = Callable[[VendorRequest], Awaitable[Mapping[str, Any]]]


class Connector(Protocol):
    """Obtains vendor tokens for one connection, one kind of vendor contract."""

    @property
    def kind(self) -> str: ...

    @property
    def per_pair(self) -> bool:
        """Tokens are specific to a (tenant, sub-tenant); otherwise one serves the connection."""
        ...

    @property
    def single_use(self) -> bool:
        """Every use needs a fresh token: never cached, never shared."""
        ...

    @property
    def lifetime(self) -> float:
        """Seconds a token lasts when neither the vendor nor the token says otherwise."""
        ...

    @property
    def endpoint(self) -> str:
        """The URL the connector calls, for `bff check` and the admin (no secrets in it)."""
        ...

    async def fetch(self, scope: TokenScope, send: Send) -> Issued: ...


def join_url(base_url: str, path_or_url: str) -> str:
    """``path_or_url`` itself when absolute, else a path under ``base_url`` (keeping its prefix)."""
    if path_or_url.startswith(("http://", "https://")):
        return path_or_url
    return f"{base_url.rstrip('/')}/{path_or_url.lstrip('/')}"


def text_field(body: Mapping[str, Any], *path: str) -> str | None:
    """A non-empty string at ``body[path[0]][path[1]]…``, or ``None``."""
    value: Any = body
    for name in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value if isinstance(value, str) and value.strip() else None


def number_field(body: Mapping[str, Any], name: str) -> float | None:
    value = body.get(name)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and value > 0:
        return float(value)
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return float(value)
    return None
