from __future__ import annotations

import httpx2
import pytest

from bff.web.vendor_target import UnsafePath, VendorTarget, check_path

TARGET = VendorTarget.from_dashboard_url("http://vendor.test:9000/dashboard/")


def test_target_is_the_dashboard_directory() -> None:
    assert TARGET.origin == "http://vendor.test:9000"
    assert TARGET.base_path == "/dashboard/"
    assert TARGET.browser_entry == "/vendor/"
    page = VendorTarget.from_dashboard_url("https://v.example/insights/app.html?theme=dark")
    assert page.origin == "https://v.example"
    assert page.base_path == "/insights/"
    assert page.browser_entry == "/vendor/app.html?theme=dark"


@pytest.mark.parametrize(
    ("rest", "query", "expected"),
    [
        ("", b"", "http://vendor.test:9000/dashboard/"),
        ("app.js", b"v=1", "http://vendor.test:9000/dashboard/app.js?v=1"),
        ("a/b%20c/", b"", "http://vendor.test:9000/dashboard/a/b%20c/"),
        ("@evil.example/x", b"", "http://vendor.test:9000/dashboard/@evil.example/x"),
        (
            "x",
            b"next=http://evil.example/",
            "http://vendor.test:9000/dashboard/x?next=http://evil.example/",
        ),
    ],
)
def test_upstream_url_stays_on_the_vendor(rest: str, query: bytes, expected: str) -> None:
    url = TARGET.upstream_url(rest, query)
    assert str(url) == expected
    assert url.host == "vendor.test"
    assert url.port == 9000


@pytest.mark.parametrize(
    "rest",
    [
        "..",
        "../api/v1/partner/dashboard/auth/token",
        "a/../../x",
        "./x",
        "%2e%2e/x",
        "%2E%2E/x",
        ".%2e/x",
        "%252e%252e/x",
        "..;/x",
        "a%2fb",
        "a%2F..%2Fb",
        "%5c..%5cx",
        "a\\..\\b",
        "/evil.example/x",
        "//evil.example/x",
        "a//b",
        "http://evil.example/",
        "x%00y",
        "x%0d%0aHost:%20evil",
        "caf\u00e9",
        "a b",
    ],
)
def test_escaping_paths_are_refused(rest: str) -> None:
    with pytest.raises(UnsafePath):
        check_path(rest)
    with pytest.raises(UnsafePath):
        TARGET.upstream_url(rest, b"")


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://vendor.test:9000/dashboard/next?a=1", "/vendor/next?a=1"),
        ("/dashboard/other/", "/vendor/other/"),
        ("page2", "/vendor/sub/page2"),
        ("?x=1", "/vendor/sub/page?x=1"),
        ("http://evil.example/dashboard/", None),
        ("https://vendor.test:9000/dashboard/", None),
        ("http://vendor.test:9001/dashboard/", None),
        ("//evil.example/dashboard/", None),
        ("/api/v1/partner/dashboard/auth/token", None),
        ("/dashboard/../api/", None),
        ("javascript:alert(1)", None),
        ("http://vendor.test:bad/dashboard/", None),
    ],
)
def test_redirects_are_kept_under_the_prefix(location: str, expected: str | None) -> None:
    requested = httpx2.URL("http://vendor.test:9000/dashboard/sub/page")
    assert TARGET.browser_location(location, requested) == expected
