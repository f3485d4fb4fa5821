"""``static-bearer``: a long-lived API key token sent as ``Authorization: Bearer``.

There is nothing to exchange; the key is checked against the vendor's "who am I"
endpoint, and that verdict is cached like a token so a revoked key is noticed
within a day without calling the vendor on every request.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from bff.broker.connectors.base import Issued, Send, VendorRequest, join_url
from bff.broker.scope import TokenScope

DEFAULT_WHOAMI_PATH = "/user"


@dataclasses.dataclass(frozen=True)
class StaticBearerConnector:
    base_url: str
    api_key: str = dataclasses.field(repr=False)
    whoami_url: str = DEFAULT_WHOAMI_PATH
    lifetime: float = 24 * 60 * 60

    kind: ClassVar[str] = "static-bearer"
    per_pair: ClassVar[bool] = False
    single_use: ClassVar[bool] = False

    @property
    def endpoint(self) -> str:
        return join_url(self.base_url, self.whoami_url)

    async def fetch(self, scope: TokenScope, send: Send) -> Issued:
        await send(
            VendorRequest(
                "GET",
                self.endpoint,
                headers={"authorization": f"Bearer {self.api_key}", "accept": "application/json"},
            )
        )
        # Some vendors issue these keys as JWTs with an `exp`; honour it when present.
        return Issued(self.api_key, None, "maybe-jwt")
