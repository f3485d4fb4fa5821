"""``oauth2-client-credentials``: a client-credentials grant at a token endpoint.

Credentials go in the form body or as HTTP Basic; some vendors want a ``Realm``
header. The answer's ``refresh_token`` is used while it is valid; when it is
missing, expired or refused, a new client-credentials grant is made. The refresh
token also rides with the token it came with (:class:`VendorToken`), and the broker
hands back the latest one with :meth:`~OAuth2ClientCredentialsConnector.resume`
before each call when the cache is shared, so no stale refresh token is ever sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from bff.broker.connectors.base import (
    Issued,
    Send,
    VendorRequest,
    join_url,
    number_field,
    text_field,
)
from bff.broker.scope import TokenScope, VendorToken
from bff.clock import Clock
from bff.errors import UpstreamBadResponse, UpstreamRejected

DEFAULT_TOKEN_PATH = "/oauth/token"


class OAuth2ClientCredentialsConnector:
    kind: ClassVar[str] = "oauth2-client-credentials"
    per_pair: ClassVar[bool] = False
    single_use: ClassVar[bool] = False

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        clock: Clock,
        *,
        token_url: str = DEFAULT_TOKEN_PATH,
        basic_auth: bool = False,
        realm: str | None = None,
        lifetime: float = 60 * 60,
    ) -> None:
        self._endpoint = join_url(base_url, token_url)
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self._basic_auth = basic_auth
        self._realm = realm
        self.lifetime = lifetime
        self._refresh_token: str | None = None
        self._refresh_until: datetime | None = None

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentialsConnector(endpoint={self._endpoint!r})"

    @property
    def endpoint(self) -> str:
        return self._endpoint

    async def fetch(self, scope: TokenScope, send: Send) -> Issued:
        refresh_token = self._usable_refresh_token()
        if refresh_token is not None:
            try:
                return await self._grant(
                    send, {"grant_type": "refresh_token", "refresh_token": refresh_token}
                )
            except UpstreamRejected:
                # Revoked or expired early: the client credentials still work.
                self._refresh_token = None
        return await self._grant(send, {"grant_type": "client_credentials"})

    def resume(self, latest: VendorToken | None) -> None:
        """Renew with ``latest``'s refresh token from now on (None: with none)."""
        if latest is None:
            self._refresh_token = self._refresh_until = None
        else:
            self._refresh_token, self._refresh_until = latest.refresh_token, latest.refresh_until

    def _usable_refresh_token(self) -> str | None:
        if self._refresh_token is None:
            return None
        if self._refresh_until is not None and self._refresh_until <= self._clock.now():
            self._refresh_token = None
            return None
        return self._refresh_token

    async def _grant(self, send: Send, form: dict[str, str]) -> Issued:
        headers = {"accept": "application/json"}
        if self._realm is not None:
            headers["realm"] = self._realm
        basic = None
        if self._basic_auth:
            basic = (self._client_id, self._client_secret)
        else:
            form = {**form, "client_id": self._client_id, "client_secret": self._client_secret}
        started = self._clock.now()
        body = await send(
            VendorRequest("POST", self._endpoint, headers=headers, form=form, basic_auth=basic)
        )
        access_token = text_field(body, "access_token")
        if access_token is None:
            raise UpstreamBadResponse(
                "the token endpoint answered without access_token", status=200
            )
        refresh_token = text_field(body, "refresh_token")
        refresh_life = None
        if refresh_token is not None:
            self._refresh_token = refresh_token
            # The second spelling is how one vendor's documentation writes it.
            refresh_life = number_field(body, "refresh_token_expires_in") or number_field(
                body, "refresh_token_exires_in"
            )
            self._refresh_until = (
                started + timedelta(seconds=refresh_life) if refresh_life is not None else None
            )
        return Issued(
            access_token,
            number_field(body, "expires_in"),
            "maybe-jwt",
            refresh_token=refresh_token,
            refresh_lifetime=refresh_life,
        )
