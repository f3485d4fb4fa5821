"""Partner bearer tokens: short-lived JWTs that bff signs for a partner app and checks
on every partner API call.

A token is a compact JWS, HMAC-SHA256 (``HS256``)::

    header  {"typ": "JWT", "alg": "HS256", "kid": "<16 hex>"}
    claims  {"iss": BFF_PUBLIC_URL, "aud": "bff-partner", "sub": client id,
             "app": app id, "gen": credential generation,
             "iat": now, "exp": now + 3600, "jti": 128 random bits}

Each entry of ``BFF_SECRET_KEYS`` gives one signing key, HKDF-SHA256 of the entry with
the info ``bff.partner-token`` (so it is unrelated to the cookies' keys); its ``kid`` is
the first 16 hex digits of the SHA-256 of the derived key. The newest key signs and
every listed key verifies: put a new key in front, and tokens signed with the old one
keep working until they expire (an hour at most); drop the old key, and they fail.

:meth:`PartnerTokens.verify` accepts exactly what :meth:`PartnerTokens.issue` makes:
``alg`` ``HS256`` only (never ``none``, never a public-key algorithm), no header
parameter beyond ``typ``, ``alg`` and ``kid`` (no ``crit``, ``b64``, ``jku``), a known
``kid``, a good signature, this issuer and audience, an ``exp`` not passed (with
:data:`LEEWAY` seconds for clock skew), an ``iat`` not in the future, and claims of the
right types. Whether the token's ``gen`` is still the app's current credential
generation needs the database: :func:`bff.web.partner.auth.authenticate_partner`
checks it on every request. Tokens are never logged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeGuard

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.jws import extract_compact

ALGORITHM = "HS256"
AUDIENCE = "bff-partner"
LIFETIME_SECONDS = 3600
# Clock skew allowed on exp and iat; the lifetime itself is never stretched further.
LEEWAY = 5
# Ours are about 400 characters; anything much longer is refused before parsing.
MAX_TOKEN_LENGTH = 2048
_KDF_INFO = b"bff.partner-token"
_HEADER_NAMES = frozenset({"typ", "alg", "kid"})


@dataclasses.dataclass(frozen=True)
class IssuedToken:
    access_token: str = dataclasses.field(repr=False)
    expires_in: int


@dataclasses.dataclass(frozen=True)
class PartnerClaims:
    """What a verified token says: which app (and client id), for which secret generation."""

    app_id: int
    client_id: str
    generation: str
    expires_at: int


def derive_key(secret_key: str) -> bytes:
    """The 32-byte signing key derived from one ``BFF_SECRET_KEYS`` entry."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO).derive(
        secret_key.encode()
    )


def key_id(derived: bytes) -> str:
    return hashlib.sha256(derived).hexdigest()[:16]


class PartnerTokens:
    """Issues and verifies partner tokens with keys from ``secret_keys`` (newest first)."""

    def __init__(self, secret_keys: Sequence[str], issuer: str) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is required")
        self.issuer = issuer
        keys: dict[str, OctKey] = {}
        for secret_key in secret_keys:
            derived = derive_key(secret_key)
            keys.setdefault(key_id(derived), OctKey.import_key(derived))
        self._keys = keys
        self._signing_kid = key_id(derive_key(secret_keys[0]))

    def issue(self, *, client_id: str, app_id: int, generation: str, now: datetime) -> IssuedToken:
        issued_at = int(now.timestamp())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": client_id,
            "app": app_id,
            "gen": generation,
            "iat": issued_at,
            "exp": issued_at + LIFETIME_SECONDS,
            "jti": secrets.token_urlsafe(16),
        }
        header = {"alg": ALGORITHM, "kid": self._signing_kid}
        token = jwt.encode(header, claims, self._keys[self._signing_kid], algorithms=[ALGORITHM])
        return IssuedToken(token, LIFETIME_SECONDS)

    def verify(self, token: str, *, now: datetime) -> PartnerClaims | None:
        """The token's claims, or None for anything but a valid, unexpired bff token."""
        if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            return None
        try:
            header = extract_compact(token.encode("ascii")).headers()
            key = self._key_for(header)
            if key is None:
                return None
            claims = jwt.decode(token, key, algorithms=[ALGORITHM]).claims
        except (JoseError, ValueError, TypeError, KeyError):
            return None
        return self._check_claims(claims, int(now.timestamp()))

    def _key_for(self, header: object) -> OctKey | None:
        if not isinstance(header, dict):
            return None
        if not set(header) <= _HEADER_NAMES or header.get("alg") != ALGORITHM:
            return None
        if header.get("typ", "JWT") != "JWT":
            return None
        kid = header.get("kid")
        return self._keys.get(kid) if isinstance(kid, str) else None

    def _check_claims(self, claims: dict[str, Any], now: int) -> PartnerClaims | None:
        app_id, client_id, generation = claims.get("app"), claims.get("sub"), claims.get("gen")
        issued_at, expires_at = claims.get("iat"), claims.get("exp")
        if (
            claims.get("iss") == self.issuer
            and claims.get("aud") == AUDIENCE
            and isinstance(claims.get("jti"), str)
            and isinstance(client_id, str)
            and isinstance(generation, str)
            and _whole(app_id)
            and _whole(issued_at)
            and _whole(expires_at)
            and issued_at <= now + LEEWAY
            and now - LEEWAY < expires_at <= issued_at + LIFETIME_SECONDS
        ):
            return PartnerClaims(app_id, client_id, generation, expires_at)
        return None


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
