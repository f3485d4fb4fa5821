"""OpenID Connect relying party: authorization code flow with PKCE, state and nonce.

authlib supplies the protocol pieces (PKCE challenge, authorization URL, ID token
claim rules) and joserfc checks the ID token signature against the provider's
published keys; the HTTP calls go through bff's own httpx2 client. Errors from
the provider, the network or token validation become :class:`OIDCError` here and
nowhere else.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any
from urllib.parse import quote

import httpx2
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from bff.clock import Clock
from bff.errors import BffError
from bff.settings import OIDCSettings

logger = logging.getLogger(__name__)

SCOPE = "openid email profile"
METADATA_TTL = 3600.0
LEEWAY_SECONDS = 60
# Never "none", never a MAC keyed with the client secret.
_SIGNING_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class OIDCError(BffError):
    """The identity provider could not be used, or its answer was not acceptable."""


@dataclasses.dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str = dataclasses.field(repr=False)
    nonce: str = dataclasses.field(repr=False)
    code_verifier: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class Identity:
    subject: str
    email: str | None
    email_verified: bool


class OIDCClient:
    def __init__(
        self,
        settings: OIDCSettings,
        http: httpx2.AsyncClient,
        *,
        redirect_uri: str,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.redirect_uri = redirect_uri
        self._http = http
        self._clock = clock
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: KeySet | None = None

    async def start(self) -> AuthorizationRequest:
        """A fresh authorization request; keep its secrets until the callback."""
        metadata = await self._discover()
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        url = prepare_grant_uri(
            metadata["authorization_endpoint"],
            self.settings.client_id,
            "code",
            redirect_uri=self.redirect_uri,
            scope=SCOPE,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        return AuthorizationRequest(str(url), str(state), str(nonce), str(verifier))

    async def finish(self, *, code: str, code_verifier: str, nonce: str) -> Identity:
        """Exchange the code and validate the ID token; returns who signed in."""
        metadata = await self._discover()
        tokens = await self._post_json(
            metadata["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": code_verifier,
            },
        )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise OIDCError("the token response has no id_token")
        claims = await self._validate(id_token, nonce, tokens.get("access_token"), metadata)
        if "email" not in claims and isinstance(tokens.get("access_token"), str):
            claims = {**await self._userinfo(metadata, tokens["access_token"]), **claims}
        email = claims.get("email")
        verified = claims.get("email_verified")
        return Identity(
            subject=str(claims["sub"]),
            email=email if isinstance(email, str) else None,
            # Some providers send the string "true".
            email_verified=verified is True or verified == "true",
        )

    async def _discover(self) -> dict[str, Any]:
        if self._metadata is not None and time.monotonic() - self._metadata_at < METADATA_TTL:
            return self._metadata
        url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
        metadata = await self._get_json(url)
        if metadata.get("issuer") != self.settings.issuer.rstrip("/"):
            raise OIDCError("the provider's metadata names another issuer")
        for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(metadata.get(field), str):
                raise OIDCError(f"the provider's metadata has no {field}")
        self._metadata, self._metadata_at = metadata, time.monotonic()
        return metadata

    async def _keys(self, metadata: dict[str, Any], *, refresh: bool = False) -> KeySet:
        if self._jwks is None or refresh:
            try:
                jwks: Any = await self._get_json(metadata["jwks_uri"])
                self._jwks = KeySet.import_key_set(jwks)
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise OIDCError("the provider's signing keys are unusable") from exc
        return self._jwks

    async def _validate(
        self, id_token: str, nonce: str, access_token: object, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in offered if alg in _SIGNING_ALGORITHMS]
        if not algorithms:
            raise OIDCError("the provider offers no acceptable ID token signature algorithm")
        try:
            try:
                token = jwt.decode(id_token, await self._keys(metadata), algorithms=algorithms)
            except InvalidKeyIdError:
                # The provider rotated its keys since we fetched them.
                keys = await self._keys(metadata, refresh=True)
                token = jwt.decode(id_token, keys, algorithms=algorithms)
            claims = CodeIDToken(
                token.claims,
                token.header,
                {
                    "iss": {"essential": True, "value": self.settings.issuer.rstrip("/")},
                    "aud": {"essential": True, "value": self.settings.client_id},
                },
                {
                    "nonce": nonce,
                    "client_id": self.settings.client_id,
                    "access_token": access_token if isinstance(access_token, str) else None,
                },
            )
            claims.validate(now=int(self._clock.now().timestamp()), leeway=LEEWAY_SECONDS)
        except (JoseError, ValueError) as exc:
            raise OIDCError(f"the ID token was refused: {type(exc).__name__}") from exc
        return dict(claims)

    async def _userinfo(self, metadata: dict[str, Any], access_token: str) -> dict[str, Any]:
        endpoint = metadata.get("userinfo_endpoint")
        if not isinstance(endpoint, str):
            return {}
        return await self._get_json(endpoint, headers={"Authorization": f"Bearer {access_token}"})

    async def _get_json(self, url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        return await self._request("GET", url, headers=headers)

    async def _post_json(self, url: str, data: dict[str, str]) -> dict[str, Any]:
        return await self._request(
            "POST",
            url,
            data=data,
            # RFC 6749 section 2.3.1: form-encode both parts before Basic.
            auth=httpx2.BasicAuth(
                quote(self.settings.client_id, safe=""), quote(self.settings.client_secret, safe="")
            ),
        )

    async def _request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx2.HTTPError as exc:
            raise OIDCError(f"the identity provider is unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise OIDCError(f"the identity provider answered {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise OIDCError("the identity provider answered something other than JSON") from exc
        if not isinstance(body, dict):
            raise OIDCError("the identity provider answered something other than a JSON object")
        return body
