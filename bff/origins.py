"""Exact web origins, as partner apps list them and browsers send them.

https only, except plain http on localhost and 127.0.0.1; no wildcard, path,
query, fragment or user name; host names in IDNA form, IPv6 compressed, all lower
case, default ports dropped, so two spellings of one origin compare equal.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import idna

from bff.errors import InvalidInputError

MAX_ORIGIN_LENGTH = 300
_DEFAULT_PORTS = {"https": 443, "http": 80}
_LOCAL_HOSTS = {"localhost", "127.0.0.1"}
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _bad_origin(value: str, why: str, field: str) -> InvalidInputError:
    return InvalidInputError(
        f"{field}: {value[:80]!r} {why}; write an origin like https://partner.example",
        field=field,
    )


def _host(raw: str, value: str, field: str) -> str:
    if raw.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(raw[1:-1]).compressed}]"
        except ValueError:
            raise _bad_origin(value, "has an invalid IPv6 address", field) from None
    try:
        # UTS 46, as browsers map host names (Python's "idna" codec is IDNA 2003, which
        # would turn faß.example into fass.example, another domain).
        host = idna.encode(raw, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError):
        raise _bad_origin(value, "has an invalid host name", field) from None
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise _bad_origin(value, "has an invalid host name", field)
    return host


def clean_origin(value: str, field: str = "allowed_origins") -> str:
    """An exact web origin, normalised (``scheme://host[:port]``, lower case, no default
    port), or :class:`InvalidInputError` naming ``field``."""
    value = value.strip()
    if not value or len(value) > MAX_ORIGIN_LENGTH:
        raise _bad_origin(value, f"must be 1 to {MAX_ORIGIN_LENGTH} characters", field)
    if "*" in value:
        raise _bad_origin(value, "has a wildcard; list each origin exactly", field)
    if any(char.isspace() or ord(char) < 32 for char in value):
        raise _bad_origin(value, "contains spaces or control characters", field)
    if any(char in value for char in "?#@\\;,'\""):
        raise _bad_origin(value, "may hold no query, fragment, user name or separator", field)
    try:
        parts = urlsplit(value)
    except ValueError:
        raise _bad_origin(value, "is not a URL", field) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not value.lower().startswith(f"{scheme}://"):
        raise _bad_origin(value, "must start with https://", field)
    if parts.path not in ("", "/"):
        raise _bad_origin(value, "has a path", field)
    netloc = parts.netloc
    raw_host, _, raw_port = (
        netloc.rpartition(":") if not netloc.endswith("]") and ":" in netloc else (netloc, "", "")
    )
    if not raw_host:
        raise _bad_origin(value, "has no host", field)
    host = _host(raw_host, value, field)
    if scheme == "http" and host not in _LOCAL_HOSTS:
        raise _bad_origin(value, "must use https (http only for localhost and 127.0.0.1)", field)
    port = None
    if raw_port or netloc.endswith(":"):
        if not raw_port.isdigit() or not 1 <= int(raw_port) <= 65535:
            raise _bad_origin(value, "has an invalid port", field)
        port = int(raw_port)
    suffix = "" if port in (None, _DEFAULT_PORTS[scheme]) else f":{port}"
    return f"{scheme}://{host}{suffix}"
