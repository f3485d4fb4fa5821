"""Validation of every identifier bff stores, in one place.

Tenant and sub-tenant ids travel to the vendor as HTTP header values and into
URLs, so they are restricted to a conservative alphabet.
"""

from __future__ import annotations

import re

from bff.errors import InvalidIdentifierError

MAX_ID_LENGTH = 64
MAX_EMAIL_LENGTH = 254
RESERVED_DOMAIN = ".invalid"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Deliberately simple: one @, a dot in the domain, no spaces or control characters.
_EMAIL = re.compile(r"[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f.]+")


def tenant_id(value: str, what: str = "tenant id") -> str:
    """A trimmed tenant or sub-tenant id, or :class:`InvalidIdentifierError`."""
    value = value.strip()
    if not value:
        raise InvalidIdentifierError(f"{what} is empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidIdentifierError(f"{what} is longer than {MAX_ID_LENGTH} characters")
    if not _ID.fullmatch(value):
        raise InvalidIdentifierError(
            f"{what} {value!r} may contain only letters, digits, '.', '_' and '-', "
            "and must start with a letter or digit"
        )
    return value


def sub_tenant_id(value: str) -> str:
    return tenant_id(value, "sub-tenant id")


def email(value: str) -> str:
    """A trimmed, lower-cased e-mail address, or :class:`InvalidIdentifierError`."""
    value = value.strip().lower()
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(value):
        raise InvalidIdentifierError(f"{value[:80]!r} is not a valid e-mail address")
    if value.endswith(RESERVED_DOMAIN):
        # RFC 2606: no one receives mail there; bff names partner apps' users with it.
        raise InvalidIdentifierError(f"{value[:80]!r} is in a reserved domain")
    return value
