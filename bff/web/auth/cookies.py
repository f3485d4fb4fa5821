"""The browser cookies bff sets, their names and attributes, and their signatures.

- session: ``__Host-bff_session`` (``bff_session`` on local http); Secure,
  HttpOnly, SameSite=Lax, Path=/.
- embedded session: ``__Host-bff_embed_session`` (``bff_embed_session`` on local
  http); Secure, HttpOnly, SameSite=None, Partitioned, Path=/.
- pre-session, binding the sign-in form's CSRF token: ``__Host-bff_presession``
  (``bff_presession``); as the session, until the browser closes.
- OpenID Connect flow state: ``__Host-bff_oidc`` (``bff_oidc``); as the session,
  10 minutes.

``Secure`` (and with it the ``__Host-`` prefix, which browsers accept only on
Secure cookies) is dropped only when ``BFF_PUBLIC_URL`` is plain http on
localhost or 127.0.0.1 (``Settings.is_local_http``). The embedded cookie keeps
``Secure`` even then: browsers refuse ``SameSite=None`` without it, and treat
localhost as a secure context anyway.

Values are signed with itsdangerous using ``BFF_SECRET_KEYS`` (newest first):
the newest key signs, every listed key verifies, so dropping a key from the list
retires every cookie it signed.

Starlette's ``set_cookie`` cannot write ``Partitioned`` before Python 3.14, so
the header is built here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Literal

from itsdangerous import BadSignature, Signer, TimestampSigner
from starlette.datastructures import MutableHeaders
from starlette.responses import Response

from bff.settings import Settings

SameSite = Literal["Lax", "Strict", "None"]

# Signed values are short; anything longer is garbage and not worth verifying.
MAX_COOKIE_LENGTH = 512
VERIFIED_CACHE_SIZE = 10_000


class CookieJar:
    """Names, attributes and signing of bff's cookies for one set of settings."""

    def __init__(self, settings: Settings) -> None:
        self.secure = not settings.is_local_http
        prefix = "__Host-" if self.secure else ""
        self.session_name = f"{prefix}bff_session"
        self.embed_session_name = f"{prefix}bff_embed_session"
        self.presession_name = f"{prefix}bff_presession"
        self.oidc_name = f"{prefix}bff_oidc"
        # itsdangerous signs with the *last* key in its list; the setting lists newest first.
        keys = list(reversed(settings.secret_keys))
        self._session = Signer(keys, salt="bff.session")
        # Cookie values whose signature checked out, so each request does not derive
        # keys and HMAC again. Only verified values go in: garbage cannot evict them
        # faster than real sessions arrive, and a value is only ever looked up whole.
        self._verified: OrderedDict[str, str] = OrderedDict()
        self._presession = TimestampSigner(keys, salt="bff.presession")

    def sign_session(self, session_id: str) -> str:
        return self._session.sign(session_id).decode("ascii")

    def unsign_session(self, value: str | None) -> str | None:
        """The session id in a cookie value, or None when it is not one we signed."""
        if value is not None and (known := self._verified.get(value)) is not None:
            return known
        session_id = _unsign(self._session, value)
        if value is not None and session_id is not None:
            self._verified[value] = session_id
            if len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return session_id

    def sign_presession(self, nonce: str) -> str:
        return self._presession.sign(nonce).decode("ascii")

    def unsign_presession(self, value: str | None, max_age: int) -> str | None:
        if value is None or len(value) > MAX_COOKIE_LENGTH:
            return None
        try:
            return self._presession.unsign(value, max_age=max_age).decode("ascii")
        except (BadSignature, UnicodeDecodeError):
            return None

    def set(
        self,
        response: Response,
        name: str,
        value: str,
        *,
        max_age: int | None,
        same_site: SameSite = "Lax",
        partitioned: bool = False,
    ) -> None:
        secure = self.secure or same_site == "None"
        append_set_cookie(
            response.headers,
            set_cookie_header(
                name,
                value,
                max_age=max_age,
                secure=secure,
                same_site=same_site,
                partitioned=partitioned,
            ),
        )

    def delete(self, response: Response, name: str) -> None:
        embedded = name == self.embed_session_name
        self.set(
            response,
            name,
            "",
            max_age=0,
            same_site="None" if embedded else "Lax",
            partitioned=embedded,
        )

    def set_session(
        self, response: Response, session_id: str, *, embedded: bool, max_age: int
    ) -> None:
        if embedded:
            self.set(
                response,
                self.embed_session_name,
                self.sign_session(session_id),
                max_age=max_age,
                same_site="None",
                partitioned=True,
            )
        else:
            self.set(response, self.session_name, self.sign_session(session_id), max_age=max_age)


def set_cookie_header(
    name: str,
    value: str,
    *,
    max_age: int | None,
    secure: bool,
    same_site: SameSite,
    partitioned: bool = False,
) -> str:
    """One ``Set-Cookie`` value; always ``Path=/`` and ``HttpOnly``, never ``Domain``."""
    parts = [f"{name}={value}", "Path=/"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
        if max_age == 0:
            parts.append("Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    if secure:
        parts.append("Secure")
    parts += ["HttpOnly", f"SameSite={same_site}"]
    if partitioned:
        parts.append("Partitioned")
    return "; ".join(parts)


def append_set_cookie(headers: MutableHeaders, value: str) -> None:
    headers.append("set-cookie", value)


def parse_cookie_header(raw: str) -> Mapping[str, str]:
    """Cookies from a ``Cookie`` header; malformed pairs are skipped, never raised on."""
    found: dict[str, str] = {}
    for chunk in raw.split(";"):
        name, sep, value = chunk.strip().partition("=")
        if sep and name and name not in found:
            found[name] = value.strip().strip('"')
    return found


def _unsign(signer: Signer, value: str | None) -> str | None:
    if value is None or len(value) > MAX_COOKIE_LENGTH:
        return None
    try:
        return signer.unsign(value).decode("ascii")
    except (BadSignature, UnicodeDecodeError):
        return None
