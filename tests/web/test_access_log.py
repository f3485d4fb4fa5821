"""The access record: one redacted JSON line per request, built only at INFO."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from bff.logs import MASK, JsonFormatter


@pytest.fixture
def written() -> Iterator[io.StringIO]:
    """The access lines as bff writes them, formatted in the request's own context."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("bff.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "bff.access"]


def test_one_record_per_request_with_route_status_duration_and_request_id(
    client: TestClient, written: io.StringIO
) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "req-12345678"})
    client.get("/nowhere")
    line, unmatched = lines(written)
    assert response.status_code == 200
    assert line["message"] == "GET /healthz 200"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/healthz", 200)
    assert line["request_id"] == response.headers["x-request-id"] == "req-12345678"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["client"] == "testclient:50000"
    assert (unmatched["route"], unmatched["status"]) == ("unmatched", 404)


def test_the_query_string_is_never_logged_and_a_ticket_in_the_path_is_masked(
    client: TestClient, written: io.StringIO
) -> None:
    client.get("/embed/launch?ticket=tkt-5566778899&token=opaque-1234567")
    client.get("/x/token=opaque-7654321/y")
    first, second = lines(written)
    assert first["message"] == "GET /embed/launch 410"
    assert second["message"] == f"GET /x/token={MASK} 404"  # masked up to the space
    for secret in ("tkt-5566778899", "opaque-1234567", "opaque-7654321"):
        assert secret not in written.getvalue()


def test_a_method_outside_the_fixed_set_is_logged_as_other(
    client: TestClient, written: io.StringIO
) -> None:
    client.request("BREW", "/healthz")
    (line,) = lines(written)
    assert line["method"] == "OTHER"
    assert line["message"] == "OTHER /healthz 405"


def test_below_info_no_record_is_made(
    client: TestClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    monkeypatch.setattr("bff.web.middleware._log_access", lambda *args: made.append("record"))
    with caplog.at_level(logging.WARNING, logger="bff.access"):
        client.get("/healthz")
    assert made == []
    assert access_records(caplog) == []
    with caplog.at_level(logging.INFO, logger="bff.access"):
        client.get("/healthz")
    assert made == ["record"]
