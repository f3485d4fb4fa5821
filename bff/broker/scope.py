"""What a vendor token is for, and the token itself."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import NamedTuple


class TokenScope(NamedTuple):
    """The cache key of a vendor token: a tuple, so no two pairs can collide."""

    connection_id: str
    tenant_id: str
    sub_tenant_id: str


@dataclasses.dataclass(frozen=True)
class VendorToken:
    """A token obtained from the vendor; ``value`` and ``authorization`` never go into a
    repr or a log.

    ``authorization`` is the whole ``Authorization`` header value that presents the
    token to the vendor: ``Bearer <value>`` unless the connector says otherwise (a
    static key presented as HTTP ``Basic``).

    ``refresh_token`` (OAuth2) renews the token; it travels with the token through the
    cache, so whoever renews next, in any process, uses the latest one. It never
    leaves the broker.
    """

    value: str = dataclasses.field(repr=False)
    expires_at: datetime
    obtained_at: datetime
    authorization: str = dataclasses.field(default="", repr=False)
    refresh_token: str | None = dataclasses.field(default=None, repr=False)
    # When the refresh token stops working; None when the vendor did not say.
    refresh_until: datetime | None = None

    def __post_init__(self) -> None:
        if not self.authorization:
            object.__setattr__(self, "authorization", f"Bearer {self.value}")
