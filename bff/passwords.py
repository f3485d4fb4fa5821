"""Local account passwords: Argon2id hashes and a minimum strength."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bff.errors import BffError

MIN_PASSWORD_LENGTH = 12
_COMMON = frozenset(
    {
        "password",
        "password123",
        "password1234",
        "123456789012",
        "qwertyuiopas",
        "letmein12345",
        "welcome12345",
        "changeme1234",
        "administrator",
        "iloveyou1234",
    }
)

_hasher = PasswordHasher()  # argon2-cffi's defaults are Argon2id with RFC 9106 parameters


class WeakPasswordError(BffError, ValueError):
    """A new password was refused; the message says why."""


def check_strength(password: str, email: str = "") -> None:
    if not password.strip():
        raise WeakPasswordError("the password is empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    lowered = password.lower()
    if lowered in _COMMON or len(set(password)) < 5:
        raise WeakPasswordError("the password is too easy to guess")
    local_part = email.split("@")[0].lower()
    if len(local_part) >= 4 and local_part in lowered:
        raise WeakPasswordError("the password must not contain the e-mail address")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-effort check; a missing hash still costs one verification."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


# Verifying against this when the account does not exist keeps timing uniform.
_DUMMY_HASH = _hasher.hash("no account has this password")
