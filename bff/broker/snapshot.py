"""What the broker knows about one cache key, for the admin's token page. Never a token."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from bff.broker.scope import TokenScope

# The tenant fields of the key under which a connection-wide token is kept. Never a
# valid identifier, so it cannot collide with a real pair.
SHARED = ""


@dataclasses.dataclass(frozen=True)
class KeySnapshot:
    scope: TokenScope
    # The valid token's expiry and when it was obtained; None when there is none.
    expires_at: datetime | None
    obtained_at: datetime | None
    # The latest failure for this key (kept after a later success, until purged).
    error: str | None
    error_at: datetime | None
    # No call goes out for this key before then (a refusal remembered, a cool-down).
    blocked_until: datetime | None

    @property
    def connection_wide(self) -> bool:
        """The key of a connection's shared token (or the credential of its per-pair step)."""
        return self.scope.tenant_id == SHARED and self.scope.sub_tenant_id == SHARED
