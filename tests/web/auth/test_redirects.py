from __future__ import annotations

import pytest

from bff.web.auth.redirects import safe_next

LOCAL = [
    "/",
    "/dashboard",
    "/dashboard?tenant=acme&sub=north",
    "/a/b/c",
    "/reports/2026-01?view=table&page=2",
    "/search?q=a%2Bb",
    "/~user/x.y_z-1",
    "/caf%C3%A9",
]

FOREIGN = [
    # protocol-relative and backslash forms
    "//evil.example",
    "//evil.example/path",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "/\\/evil.example",
    # schemes, with and without slashes
    "https://evil.example",
    "http://evil.example/",
    "https:evil.example",
    "https:/evil.example",
    "HTTPS://EVIL.EXAMPLE",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "mailto:someone@evil.example",
    # relative, not absolute paths
    "evil.example",
    "dashboard",
    "./dashboard",
    "?next=/",
    # percent-encoded variants
    "%2F%2Fevil.example",
    "/%2Fevil.example",
    "/%2F%2Fevil.example",
    "%2f%2fevil.example",
    "/%5Cevil.example",
    "/%5cevil.example",
    "%5C%5Cevil.example",
    "/%252F%252Fevil.example",
    "/%25252F%25252Fevil.example",
    "https%3A%2F%2Fevil.example",
    "javascript%3Aalert(1)",
    "/%09/evil.example",
    "/%0A/evil.example",
    "/%0D%0A/evil.example",
    "/%00/evil.example",
    "/%20/evil.example",
    "/%7F",
    # raw whitespace and control characters, which browsers strip or reject
    " //evil.example",
    "\t//evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/ /evil.example",
    "//evil.example ",
    "/\x00/evil.example",
    "\x0b//evil.example",
    "/\u3000/evil.example",
    # userinfo and fragment tricks
    "//user@evil.example",
    "/@evil.example#",
    "/#//evil.example",
    # absurd length
    "/" + "a" * 5000,
]


@pytest.mark.parametrize("value", LOCAL)
def test_local_paths_are_kept(value: str) -> None:
    assert safe_next(value) == value


@pytest.mark.parametrize("value", FOREIGN)
def test_everything_else_falls_back_to_the_root(value: str) -> None:
    assert safe_next(value) == "/"


@pytest.mark.parametrize("value", [None, ""])
def test_missing_is_the_root(value: str | None) -> None:
    assert safe_next(value) == "/"
