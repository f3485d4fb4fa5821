"""Where the vendor dashboard lives, and the only place the proxy may send a request.

The target is fixed once from ``BFF_DASHBOARD_URL``: its scheme, host, port and
directory. A browser path is mapped into that directory only after every form of
escape has been refused on the raw, still-encoded path (dot segments, plain or
percent-encoded, encoded slashes and backslashes, empty segments, control
characters), and the upstream URL is built from components, so no part of a
request can name another host or scheme.
"""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import unquote, urljoin, urlsplit

import httpx2

PREFIX = "/vendor"

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ENCODED_SEPARATOR = re.compile(r"%(?:2f|5c|00)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A vendor that decodes twice would turn %252e%252e into "..": look through a few layers.
_DECODE_LAYERS = 3


class UnsafePath(ValueError):
    """A browser path that could leave the vendor's dashboard directory."""


@dataclasses.dataclass(frozen=True)
class VendorTarget:
    scheme: str
    host: str
    port: int
    base_path: str  # the dashboard's directory, always ending in "/"
    entry: str  # the dashboard page, relative to base_path, with its query

    @classmethod
    def from_dashboard_url(cls, url: str) -> VendorTarget:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url[:80]!r}")
        path = parts.path or "/"
        base_path, _, page = path.rpartition("/")
        entry = page + (f"?{parts.query}" if parts.query else "")
        return cls(
            scheme=parts.scheme,
            host=parts.hostname,
            port=parts.port or _DEFAULT_PORTS[parts.scheme],
            base_path=base_path + "/",
            entry=entry,
        )

    @property
    def origin(self) -> str:
        """The vendor origin as CSP and browsers spell it (default port omitted)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == _DEFAULT_PORTS[self.scheme]:
            return f"{self.scheme}://{host}"
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def browser_entry(self) -> str:
        """The dashboard page as the browser reaches it through the proxy."""
        return f"{PREFIX}/{self.entry}"

    def upstream_url(self, raw_rest: str, query: bytes) -> httpx2.URL:
        """The vendor URL for ``raw_rest`` (the encoded path after the prefix), or UnsafePath."""
        check_path(raw_rest)
        raw_path = (self.base_path + raw_rest).encode("ascii")
        if query:
            raw_path += b"?" + query
        url = httpx2.URL(scheme=self.scheme, host=self.host, port=self.port, raw_path=raw_path)
        # Belt and braces: whatever the path held, the URL must still point here.
        if (url.scheme, url.host, url.port or _DEFAULT_PORTS[url.scheme]) != (
            self.scheme,
            self.host,
            self.port,
        ):
            raise UnsafePath("the upstream URL left the vendor origin")
        return url

    def browser_location(self, location: str, requested: httpx2.URL) -> str | None:
        """A vendor redirect target rewritten under the prefix, or None when it leads elsewhere."""
        resolved = urlsplit(urljoin(str(requested), location))
        if resolved.scheme != self.scheme or resolved.hostname != self.host:
            return None
        try:
            port = resolved.port or _DEFAULT_PORTS[self.scheme]
        except ValueError:
            return None
        if port != self.port or not resolved.path.startswith(self.base_path):
            return None
        rest = resolved.path[len(self.base_path) :]
        try:
            check_path(rest)
        except UnsafePath:
            return None
        return f"{PREFIX}/{rest}" + (f"?{resolved.query}" if resolved.query else "")


def check_path(raw_rest: str) -> None:
    """Refuse a still-encoded relative path that could escape its directory once decoded."""
    if not raw_rest.isascii() or any(c in raw_rest for c in "\\ ") or _CONTROL.search(raw_rest):
        raise UnsafePath("backslash, space, control or non-ASCII character in path")
    segments = raw_rest.split("/")
    for index, segment in enumerate(segments):
        if segment == "" and index != len(segments) - 1:
            raise UnsafePath("empty path segment")
        layer = segment
        for _ in range(_DECODE_LAYERS):
            if _ENCODED_SEPARATOR.search(layer):
                raise UnsafePath("encoded separator in path")
            decoded = unquote(layer)
            if "\\" in decoded or "/" in decoded or _CONTROL.search(decoded):
                raise UnsafePath("separator or control character hidden in path")
            # ";" starts path parameters some servers drop: "..;" is ".." to them.
            if decoded.split(";", 1)[0] in (".", ".."):
                raise UnsafePath("dot segment in path")
            if decoded == layer:
                break
            layer = decoded
