"""Sentinel: every token the vendor issued is looked for in everything the BFF said.

Each mode may show a token in exactly one place on the dashboard page (post: the
form field; fragment: the iframe URL's fragment; query: the iframe URL's query)
and proxy mode nowhere at all. Everything else — other pages, every header
(``Set-Cookie`` and ``Location`` included), cookies, error pages, and every log
record before and after redaction — must not hold a token or any signed part of one.
"""

from __future__ import annotations

import logging

import httpx2
import pytest
from starlette.testclient import TestClient

from bff.demo.faults import Fault
from bff.logs import JsonFormatter
from bff.settings import DeliveryMode
from tests.web.dashboard_fixtures import (
    DASHBOARD_URL,
    RecordingVendor,
    sign_in_analyst,
)
from tests.web.helpers import form_token


def allowed_spot(delivery: DeliveryMode, token: str) -> str | None:
    """The one place a dashboard page may carry ``token`` in this mode."""
    return {
        "proxy": None,
        "post": f'name="token" value="{token}"',
        "fragment": f'src="{DASHBOARD_URL}#token={token}"',
        "query": f'src="{DASHBOARD_URL}?token={token}"',
    }[delivery]


def browse(
    client: TestClient, vendor: RecordingVendor, delivery: DeliveryMode
) -> list[httpx2.Response]:
    """A user's whole visit, including the failure pages."""
    seen = []
    sign_in_analyst(client)
    seen.append(page := client.get("/"))
    if delivery == "proxy":
        for path in ("/vendor/", "/vendor/app.js", "/vendor/app.css", "/vendor/insights.json"):
            seen.append(client.get(path))
        seen.append(client.get("/vendor/../x"))
        seen.append(
            client.get(httpx2.URL("https://testserver").copy_with(raw_path=b"/vendor/%2e%2e/"))
        )
    seen.append(
        client.post("/scope", data={"scope": "acme/south", "csrf_token": form_token(page.text)})
    )
    seen.append(page := client.get("/"))
    seen.append(
        client.post("/scope", data={"scope": "initech/west", "csrf_token": form_token(page.text)})
    )
    # No token yet for this pair and the vendor is down: the 503 page.
    seen.append(
        client.post("/scope", data={"scope": "globex/emea", "csrf_token": form_token(page.text)})
    )
    vendor.config.fault = Fault.rate_limit("5")
    seen.append(client.get("/"))
    if delivery == "proxy":
        seen.append(client.get("/vendor/"))
    vendor.config.fault = None
    seen.append(client.get("/nowhere"))
    seen.append(client.get("/metrics"))
    seen.append(client.post("/logout", data={"csrf_token": form_token(page.text)}))
    seen.append(client.get("/"))
    seen.append(client.get("/vendor/"))
    return seen


def record_text(record: logging.LogRecord) -> str:
    """A record as the code logged it (before redaction) and as it was written (after)."""
    raw = f"{record.getMessage()} {record.args!r} {vars(record)!r}"
    return raw + JsonFormatter().format(record)


def test_tokens_appear_only_where_the_mode_allows(
    client: TestClient,
    vendor: RecordingVendor,
    delivery: DeliveryMode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        responses = browse(client, vendor, delivery)
    assert len(vendor.tokens) == 2, "the visit should have fetched two pairs' tokens"

    for token in vendor.tokens:
        _header, payload, signature = token.split(".")
        spot = allowed_spot(delivery, token)
        shown_on_pages = 0
        for response in responses:
            body = response.text
            if spot is not None and spot in body:
                assert response.headers["cache-control"] == "no-store"
                assert response.headers["referrer-policy"] == "no-referrer"
                assert body.count(spot) == 1
                body = body.replace(spot, "")
                shown_on_pages += 1
            headers = "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())
            for where, text in (("body", body), ("headers", headers), ("url", str(response.url))):
                for part in (token, payload, signature):
                    assert part not in text, f"{delivery}: token part in {where} of {response.url}"
        assert shown_on_pages == (0 if delivery == "proxy" else 1)
        for cookie in client.cookies.jar:
            assert payload not in (cookie.value or "") and signature not in (cookie.value or "")
        for record in caplog.records:
            text = record_text(record)
            assert payload not in text and signature not in text, record.getMessage()
