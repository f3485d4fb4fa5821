"""The bff error tree.

Foreign exceptions (httpx2, SQLAlchemy, cryptography, itsdangerous) are
translated into this tree at exactly one boundary each; everything above that
boundary catches these classes only.

    BffError
     ├── ConfigurationError          a setting is missing or wrong (start-up, exit 2)
     ├── InvalidInputError           a value an operation was given is refused; names the field
     │    └── InvalidIdentifierError a tenant, sub-tenant or e-mail failed validation
     ├── SecretDecryptionError       wrong key, tampered ciphertext, or a row copied elsewhere
     ├── NotFoundError               a named user, tenant or connection does not exist
     │    └── SessionEnded           the request's session ended while the request ran
     ├── AlreadyExistsError          creating something that is already there
     ├── InUseError                  deleting something others still use (without cascade)
     ├── RevokedError                acting on something revoked (a partner app's new secret)
     ├── ForbiddenError              a caller asks for what it may not have (a partner app, a pair)
     ├── DatabaseBusyError           SQLite's write lock stayed taken past the busy timeout
     └── UpstreamError               anything that went wrong while talking to the vendor
          ├── UpstreamRejected       400/401/403: the vendor says our configuration is wrong;
          │                          never retried in a loop, negatively cached
          └── UpstreamUnavailable    the vendor cannot answer now; carries retry_after
               ├── UpstreamRateLimited   429, with the vendor's requested cool-down
               ├── UpstreamTimeout       connect/read timeout
               ├── UpstreamUnreachable   connection refused, DNS or TLS failure
               ├── UpstreamBadResponse   5xx, HTML instead of JSON, no token in the body
               └── CircuitOpen           too many recent failures; not calling the vendor
"""

from __future__ import annotations


class BffError(Exception):
    """Base class of every error bff raises on purpose."""


class ConfigurationError(BffError):
    """A setting is missing or invalid; ``setting`` names it."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


class InvalidInputError(BffError, ValueError):
    """A value given to an operation was refused; ``field`` names it when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidIdentifierError(InvalidInputError):
    """An identifier failed validation; the message says which rule."""


class SecretDecryptionError(BffError):
    """A stored secret could not be decrypted with any configured key."""


class NotFoundError(BffError):
    """A named object does not exist."""


class SessionEnded(NotFoundError):
    """The session this request started with has ended (signed out in another tab,
    revoked, expired) before the request finished; routes answer it like no session."""


class AlreadyExistsError(BffError):
    """Creating an object that already exists."""


class InUseError(BffError):
    """Deleting an object that others still refer to; retry with a cascade to delete them too."""


class RevokedError(BffError):
    """The object was revoked and can no longer be changed that way (answered 409)."""


class ForbiddenError(BffError):
    """The caller may not do this, whatever it sends (answered 403)."""


class DatabaseBusyError(BffError):
    """The database could not take a write in time (SQLite: "database is locked"); the
    request may be retried in a moment (answered 503 with ``Retry-After``)."""


class UpstreamError(BffError):
    """The vendor did not give us a token.

    ``status`` is the vendor's HTTP status when there was a response, and
    ``vendor_message`` its message field, already free of secrets.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        vendor_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.vendor_message = vendor_message


class UpstreamRejected(UpstreamError):
    """The vendor refused the request as malformed or forbidden (a configuration error)."""


class UpstreamUnavailable(UpstreamError):
    """The vendor cannot answer now; try again after ``retry_after`` seconds."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        vendor_message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, vendor_message=vendor_message)
        self.retry_after = retry_after


class UpstreamRateLimited(UpstreamUnavailable):
    """The vendor answered 429; ``connection_wide`` when the limit covers every key."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        vendor_message: str | None = None,
        retry_after: float | None = None,
        connection_wide: bool = False,
    ) -> None:
        super().__init__(
            message, status=status, vendor_message=vendor_message, retry_after=retry_after
        )
        self.connection_wide = connection_wide


class UpstreamTimeout(UpstreamUnavailable):
    """The vendor did not answer in time (connect or read)."""


class UpstreamUnreachable(UpstreamUnavailable):
    """No connection to the vendor (refused, DNS, TLS)."""


class UpstreamBadResponse(UpstreamUnavailable):
    """The vendor answered, but not with a usable token (5xx, wrong body, not a JWT)."""


class CircuitOpen(UpstreamUnavailable):
    """Recent calls to this connection failed too often; calls are paused."""
