from __future__ import annotations

import httpx2
import pytest
from starlette.testclient import TestClient

from bff.demo.server import serve_in_thread
from bff.settings import Settings
from bff.web.dashboard.vendor_target import UnsafePath, VendorTarget, check_path
from tests.conftest import random_key
from tests.web.dashboard.test_proxy import FakeVendor, _app, raw_get

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


def target_from_setting(dashboard_url: str) -> VendorTarget:
    """The target as ``bff serve`` builds it: from the environment, through the settings."""
    environ = {
        "BFF_SECRET_KEYS": random_key(),
        "BFF_ENCRYPTION_KEYS": random_key(),
        "BFF_DASHBOARD_URL": dashboard_url,
        "BFF_DASHBOARD_DELIVERY": "proxy",
    }
    settings = Settings.from_env(environ, env_file=None)
    assert settings.dashboard_url is not None
    return VendorTarget.from_dashboard_url(settings.dashboard_url)


@pytest.mark.parametrize(
    ("dashboard_url", "directory", "entry"),
    [
        ("https://vendor.example/embed/", "/embed/", "/vendor/"),
        ("https://vendor.example/embed/index.html", "/embed/", "/vendor/index.html"),
        ("https://vendor.example/embed/?theme=dark", "/embed/", "/vendor/?theme=dark"),
        # No trailing slash: "embed" is the page, and its directory is the origin's root.
        ("https://vendor.example/embed", "/", "/vendor/embed"),
    ],
)
def test_the_proxied_directory_is_the_dashboard_urls_own(
    dashboard_url: str, directory: str, entry: str
) -> None:
    target = target_from_setting(dashboard_url)
    assert target.base_path == directory
    assert target.browser_entry == entry


@pytest.mark.parametrize("dashboard_page", ["", "index.html"])
def test_the_proxy_forwards_only_below_the_dashboards_directory(dashboard_page: str) -> None:
    """A trailing slash once dropped widened the proxy to the whole vendor origin."""
    vendor = FakeVendor()
    with serve_in_thread(vendor.app()) as vendor_url:
        target = target_from_setting(f"{vendor_url}/embed/{dashboard_page}")
        with TestClient(_app(target)) as client:
            inside = client.get("/vendor/app.js?v=1")
            escapes = [
                raw_get(client, raw)
                # (A plain "../" never arrives: clients and the test client resolve it.)
                for raw in (
                    b"/vendor/%2e%2e/api/v1/partner/dashboard/auth/token",
                    b"/vendor/..%2fapi",
                )
            ]
            redirected_up = client.get("/vendor/redirect-up", follow_redirects=False)
    assert inside.status_code == 200
    assert [response.status_code for response in escapes] == [400, 400]
    assert redirected_up.status_code == 502
    assert "location" not in redirected_up.headers
    assert [request.raw_path for request in vendor.seen] == [
        b"/embed/app.js?v=1",
        b"/embed/redirect-up",
    ]
