"""The per-pair step of a connection-wide kind (``apikey-jwt``,
``oauth2-client-credentials``, ``static-bearer``): the connection's credential buys a
dashboard token for one (tenant, sub-tenant), so no browser ever holds a token that
speaks for the whole connection.

    POST {pair_token_url}
      Authorization: Bearer <connection token>   (or Basic, for a static key presented so)
      x-tenant-id: T      x-sub-tenant-id: S      style "headers" (seed 004's headers)
      {"tenant_id": T, "sub_tenant_id": S}        style "json"
    200 {"data": {"token": ...}}, {"token": ...} or {"access_token": ..., "expires_in"?}

The broker keeps the credential under the connection's shared key, fetched by
``inner`` and reused by every pair, and caches, single-flights and refreshes the
dashboard tokens per pair; only those ever leave the broker.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from bff.broker.connectors.base import (
    Connector,
    Issued,
    Send,
    VendorRequest,
    number_field,
    text_field,
)
from bff.broker.scope import TokenScope, VendorToken
from bff.errors import UpstreamBadResponse
from bff.settings import PairTokenStyle

# A dashboard token whose answer states no lifetime and that carries no `exp` is
# trusted this long: the shortest lifetime of the kinds it is bought with.
DEFAULT_PAIR_TOKEN_LIFETIME = 60 * 60


@dataclasses.dataclass(frozen=True)
class PairTokenConnector:
    inner: Connector
    url: str
    style: PairTokenStyle = "headers"
    # oauth2: the `Realm` header the vendor wants on every API request, not just the grant.
    realm: str | None = None
    lifetime: float = DEFAULT_PAIR_TOKEN_LIFETIME

    per_pair: ClassVar[bool] = True
    single_use: ClassVar[bool] = False

    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def endpoint(self) -> str:
        return self.url

    async def exchange(self, scope: TokenScope, credential: VendorToken, send: Send) -> Issued:
        """A dashboard token for ``scope``'s pair, bought with the connection's ``credential``."""
        headers = {"authorization": credential.authorization, "accept": "application/json"}
        if self.realm is not None:
            headers["realm"] = self.realm
        body = None
        if self.style == "headers":
            headers["x-tenant-id"] = scope.tenant_id
            headers["x-sub-tenant-id"] = scope.sub_tenant_id
        else:
            body = {"tenant_id": scope.tenant_id, "sub_tenant_id": scope.sub_tenant_id}
        answer = await send(VendorRequest("POST", self.url, headers=headers, json=body))
        token = (
            text_field(answer, "data", "token")
            or text_field(answer, "token")
            or text_field(answer, "access_token")
        )
        if token is None:
            raise UpstreamBadResponse(
                "the pair token endpoint answered 200 without data.token, token or access_token",
                status=200,
            )
        if token == credential.value:
            # Handing this on would put the connection-wide credential in a browser.
            raise UpstreamBadResponse(
                "the pair token endpoint answered with the connection's own credential",
                status=200,
            )
        return Issued(token, number_field(answer, "expires_in"), "maybe-jwt")
