"""Where a ``next`` parameter may send the browser: only to a path on this site.

Browsers are lenient about what they treat as "another host": ``//evil``,
``/\\evil``, ``/\\t/evil`` (tabs and newlines are stripped), ``https:evil`` and
their percent-encoded forms all leave the site. Rather than enumerate the
tricks, a value is accepted only when it is a plain, printable, absolute path
whose decoded form is still one; anything else becomes ``/``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

DEFAULT = "/"
MAX_LENGTH = 2000
# RFC 3986 path, query and percent-encoding characters; no '\', no whitespace, no '#'.
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")
_DECODE_ROUNDS = 4


def safe_next(value: str | None) -> str:
    """``value`` when it is a local path (like ``/dashboard?x=1``), else ``/``."""
    if not value or len(value) > MAX_LENGTH or not _URL_CHARS.fullmatch(value):
        return DEFAULT
    decoded = value
    for _ in range(_DECODE_ROUNDS):
        if not _is_local_path(decoded):
            return DEFAULT
        once = unquote(decoded)
        if once == decoded:
            return value
        decoded = once
    # Still changing after several rounds of decoding: nobody needs that.
    return DEFAULT


def _is_local_path(value: str) -> bool:
    if not value.startswith("/") or value.startswith(("//", "/\\")):
        return False
    if any(ord(char) < 0x21 or ord(char) == 0x7F or char == "\\" for char in value):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc
