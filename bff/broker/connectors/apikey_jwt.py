"""``apikey-jwt``: the API key (and an optional extra parameter) posted to an
authentication endpoint; the answer's ``token`` is a JWT valid about an hour,
reused by every pair until it expires — unless the endpoint is single-use.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from bff.broker.connectors.base import Issued, Send, VendorRequest, join_url, text_field
from bff.broker.scope import TokenScope
from bff.errors import UpstreamBadResponse

DEFAULT_AUTH_PATH = "/api/v1/authenticate"


@dataclasses.dataclass(frozen=True)
class ApiKeyJwtConnector:
    base_url: str
    api_key: str = dataclasses.field(repr=False)
    auth_url: str = DEFAULT_AUTH_PATH
    auth_param: str | None = dataclasses.field(default=None, repr=False)
    single_use: bool = False
    lifetime: float = 60 * 60

    kind: ClassVar[str] = "apikey-jwt"
    per_pair: ClassVar[bool] = False

    @property
    def endpoint(self) -> str:
        return join_url(self.base_url, self.auth_url)

    async def fetch(self, scope: TokenScope, send: Send) -> Issued:
        payload = {"api_key": self.api_key}
        if self.auth_param is not None:
            payload["auth_param"] = self.auth_param
        body = await send(
            VendorRequest(
                "POST", self.endpoint, headers={"accept": "application/json"}, json=payload
            )
        )
        token = text_field(body, "token")
        if token is None:
            raise UpstreamBadResponse("the vendor answered 200 without a token", status=200)
        return Issued(token, None, "jwt")
