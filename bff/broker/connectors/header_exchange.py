"""``header-exchange``: the reference vendor contract (DESIGN §2).

``GET {base}/api/v1/partner/dashboard/auth/token`` with the key, the secret and
the pair as headers; the JWT is at ``data.token`` and lasts 24 hours.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from bff.broker.connectors.base import Issued, Send, VendorRequest, join_url, text_field
from bff.broker.scope import TokenScope
from bff.errors import UpstreamBadResponse

TOKEN_PATH = "/api/v1/partner/dashboard/auth/token"


@dataclasses.dataclass(frozen=True)
class HeaderExchangeConnector:
    base_url: str
    api_key: str = dataclasses.field(repr=False)
    api_secret: str = dataclasses.field(repr=False)
    lifetime: float = 24 * 60 * 60

    kind: ClassVar[str] = "header-exchange"
    per_pair: ClassVar[bool] = True
    single_use: ClassVar[bool] = False

    @property
    def endpoint(self) -> str:
        return join_url(self.base_url, TOKEN_PATH)

    async def fetch(self, scope: TokenScope, send: Send) -> Issued:
        body = await send(
            VendorRequest(
                "GET",
                self.endpoint,
                headers={
                    "x-api-key": self.api_key,
                    "x-api-secret": self.api_secret,
                    "x-tenant-id": scope.tenant_id,
                    "x-sub-tenant-id": scope.sub_tenant_id,
                    "accept": "application/json",
                },
            )
        )
        token = text_field(body, "data", "token")
        if token is None:
            raise UpstreamBadResponse("the vendor answered 200 without data.token", status=200)
        return Issued(token, None, "jwt")
