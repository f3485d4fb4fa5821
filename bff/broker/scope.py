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
    """A token obtained from the vendor; ``value`` never goes into a repr or a log."""

    value: str = dataclasses.field(repr=False)
    expires_at: datetime
    obtained_at: datetime
