"""``static-bearer``: a long-lived API key, sent as ``Authorization: Bearer <key>`` or,
given a ``basic_username``, as HTTP Basic ``username:key`` (the vendor's first method).

There is nothing to exchange; the key is checked against the vendor's "who am I"
endpoint, and that verdict is cached like a token so a revoked key is noticed
within a day without calling the vendor on every request.
"""

from __future__ import annotations

import base64
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
    # Set: the key is presented as HTTP Basic with this username instead of as a bearer.
    basic_username: str | None = None

    kind: ClassVar[str] = "static-bearer"
    per_pair: ClassVar[bool] = False
    single_use: ClassVar[bool] = False

    @property
    def endpoint(self) -> str:
        return join_url(self.base_url, self.whoami_url)

    @property
    def authorization(self) -> str:
        if self.basic_username is not None:
            pair = f"{self.basic_username}:{self.api_key}".encode()
            return f"Basic {base64.b64encode(pair).decode('ascii')}"
        return f"Bearer {self.api_key}"

    async def fetch(self, scope: TokenScope, send: Send) -> Issued:
        authorization = self.authorization
        await send(
            VendorRequest(
                "GET",
                self.endpoint,
                headers={"authorization": authorization, "accept": "application/json"},
            )
        )
        if self.basic_username is not None:
            # A password, not a token: nothing in it says when it expires.
            return Issued(self.api_key, None, "opaque", authorization)
        # Some vendors issue these keys as JWTs with an `exp`; honour it when present.
        return Issued(self.api_key, None, "maybe-jwt")
