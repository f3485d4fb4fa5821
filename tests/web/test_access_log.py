"""The access record: one redacted JSON line per request, built only at INFO."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bff.logs import MASK, JsonFormatter, direct_handler, register_secret, request_id
from bff.web import access_log
from bff.web.access_log import log_access
from tests.web.helpers import call


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
    monkeypatch.setattr("bff.web.middleware.log_access", lambda *args: made.append("record"))
    with caplog.at_level(logging.WARNING, logger="bff.access"):
        client.get("/healthz")
    assert made == []
    assert access_records(caplog) == []
    with caplog.at_level(logging.INFO, logger="bff.access"):
        client.get("/healthz")
    assert made == ["record"]


# --- the direct path: the line written straight to the configured handler ---------------


@pytest.fixture
def direct(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[logging.StreamHandler[io.StringIO], io.StringIO]:
    """bff.access set up as configure_logging leaves it: one plain JSON stream handler,
    no filter, so records skip ``logging``. A logger outside the hierarchy, so pytest's
    own handlers (on the root and on every non-propagating logger) never join it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.Logger("bff.access", logging.INFO)
    logger.addHandler(handler)
    monkeypatch.setattr(access_log, "logger", logger)
    return handler, stream


_SCOPE: dict[str, object] = {
    "path": '/x/"quoted"/ünï/token=opaque-7654321',
    "client": ("10.0.0.7", 4711),
}


def _logged_in_context(scope: dict[str, object]) -> None:
    def log() -> None:
        request_id.set("req-abcdef12")
        log_access(scope, "POST", "/x/{rest:path}", 201, 0.0123456)

    contextvars.copy_context().run(log)


def test_the_direct_line_is_the_formatters_line(
    direct: tuple[logging.StreamHandler[io.StringIO], io.StringIO],
) -> None:
    handler, stream = direct
    assert direct_handler(access_log.logger, logging.INFO) is handler
    _logged_in_context(_SCOPE)
    # A second handler: the record now goes through logging and the formatter.
    formatted = io.StringIO()
    other = logging.StreamHandler(formatted)
    other.setFormatter(JsonFormatter())
    access_log.logger.addHandler(other)
    try:
        _logged_in_context(_SCOPE)
    finally:
        access_log.logger.removeHandler(other)
    direct_line, through_logging = lines(stream)
    assert through_logging == json.loads(formatted.getvalue())
    for line in (direct_line, through_logging):
        line.pop("time")
    assert direct_line == through_logging
    assert list(direct_line) == list(through_logging)  # the same order of fields
    assert direct_line == {
        "level": "INFO",
        "logger": "bff.access",
        "message": f'POST /x/"quoted"/ünï/token={MASK} 201',
        "request_id": "req-abcdef12",
        "method": "POST",
        "route": "/x/{rest:path}",
        "status": 201,
        "duration_ms": 12.346,
        "client": "10.0.0.7:4711",
    }


def test_a_direct_line_without_a_request_id_has_none(
    direct: tuple[logging.StreamHandler[io.StringIO], io.StringIO],
) -> None:
    _handler, stream = direct
    contextvars.Context().run(log_access, {"path": "/", "client": None}, "GET", "/", 200, 0.001)
    (line,) = lines(stream)
    assert "request_id" not in line and line["client"] is None


def test_a_secret_registered_later_is_masked_in_a_path_logged_before(
    direct: tuple[logging.StreamHandler[io.StringIO], io.StringIO],
) -> None:
    _handler, stream = direct
    secret = "registered-later-5f2e9d"
    scope: dict[str, object] = {"path": f"/a/{secret}", "client": None}
    _logged_in_context(scope)
    register_secret(secret)
    _logged_in_context(scope)
    before, after = lines(stream)
    assert before["message"] == f"POST /a/{secret} 201"
    assert after["message"] == f"POST /a/{MASK} 201"


def test_the_handlers_level_and_filters_are_honoured(
    direct: tuple[logging.StreamHandler[io.StringIO], io.StringIO],
) -> None:
    handler, stream = direct
    logger = access_log.logger
    handler.setLevel(logging.WARNING)
    assert direct_handler(logger, logging.INFO) is None
    _logged_in_context(_SCOPE)
    assert stream.getvalue() == ""
    handler.setLevel(logging.NOTSET)

    def drop_everything(record: logging.LogRecord) -> bool:
        return False

    for holder in (handler, logger):
        holder.addFilter(drop_everything)
        assert direct_handler(logger, logging.INFO) is None
        _logged_in_context(_SCOPE)
        holder.removeFilter(drop_everything)
    assert stream.getvalue() == ""


def test_a_handler_of_another_kind_gets_a_record(
    direct: tuple[logging.StreamHandler[io.StringIO], io.StringIO],
) -> None:
    handler, _stream = direct
    records: list[logging.LogRecord] = []

    class Recording(logging.StreamHandler[io.StringIO]):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    recording = Recording(io.StringIO())
    recording.setFormatter(JsonFormatter())
    logger = access_log.logger
    logger.removeHandler(handler)
    logger.addHandler(recording)
    try:
        _logged_in_context(_SCOPE)
    finally:
        logger.removeHandler(recording)
        logger.addHandler(handler)
    (record,) = records
    assert record.getMessage() == f"POST {_SCOPE['path']} 201"


def test_the_app_writes_direct_lines_with_the_request_id(
    client: TestClient,
    direct: tuple[logging.StreamHandler[io.StringIO], io.StringIO],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _handler, stream = direct

    def no_record(*args: object, **kwargs: object) -> logging.LogRecord:
        raise AssertionError("a LogRecord was made")

    monkeypatch.setattr(access_log.logger, "makeRecord", no_record)
    responses = [client.get("/healthz?ticket=tkt-5566778899") for _ in range(3)]
    # The lines of one turn of the event loop are written at the start of the next.
    call(client, lambda: asyncio.sleep(0))
    written = lines(stream)
    assert [line["request_id"] for line in written] == [
        response.headers["x-request-id"] for response in responses
    ]
    line = written[0]
    assert (line["message"], line["route"], line["status"]) == ("GET /healthz 200", "/healthz", 200)
    assert "tkt-5566778899" not in stream.getvalue()


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_in_an_event_loop_one_turns_lines_are_written_together_at_the_next(
    direct: tuple[logging.StreamHandler[io.StringIO], io.StringIO],
) -> None:
    handler, _stream = direct
    counting = CountingStream()
    handler.setStream(counting)

    async def three_requests() -> str:
        for number in range(3):
            request_id.set(f"req-0000000{number}")
            log_access({"path": f"/{number}", "client": None}, "GET", "/", 200, 0.001)
        during = counting.getvalue()
        await asyncio.sleep(0)
        return during

    assert asyncio.run(three_requests()) == ""
    assert counting.writes == 1
    written = lines(counting)
    assert [line["message"] for line in written] == ["GET /0 200", "GET /1 200", "GET /2 200"]
    assert [line["request_id"] for line in written] == [f"req-0000000{n}" for n in range(3)]


def _formatters_line(noted: access_log._Noted) -> dict[str, object]:
    """The line JsonFormatter writes for the record logging would have made."""
    _handler, created, rid, method, path, status, route, seconds, client = noted
    record = logging.LogRecord("bff.access", logging.INFO, "", 0, "%s %s %d", None, None)
    record.args = (method, path, status)
    record.created = created
    record.bff_trusted = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "client": f"{client[0]}:{client[1]}" if client else None,
    }

    def formatted() -> str:
        request_id.set(rid)
        return JsonFormatter().format(record)

    return json.loads(contextvars.Context().run(formatted))  # type: ignore[no-any-return]


def _written(noted: Sequence[access_log._Noted]) -> list[str]:
    stream: io.StringIO = noted[0][0].stream
    access_log._write(noted)
    # Split on the terminator alone: a line may hold U+2028 and the like, unescaped.
    *written, last = stream.getvalue().split("\n")
    assert last == ""
    return written


def _handler() -> logging.StreamHandler[io.StringIO]:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(JsonFormatter())
    return handler


_texts = st.text(st.characters(codec="utf-8"), max_size=30)


@settings(max_examples=300, deadline=None)
@given(
    created=st.floats(0, 4e9),
    rid=st.none() | st.from_regex(r"[A-Za-z0-9._-]{8,64}", fullmatch=True) | _texts,
    method=st.sampled_from(["GET", "POST", "OTHER"]),
    path=_texts.map(lambda text: "/" + text),
    status=st.sampled_from([200, 303, 404, 500]),
    route=st.sampled_from(["/", "/x/{rest:path}", "unmatched"]),
    seconds=st.floats(0, 1e6) | st.sampled_from([0.0, 0.0005, 0.0015, 0.0012345, 1e13]),
    client=st.none() | st.tuples(_texts, st.integers(0, 65535)),
)
def test_each_direct_line_is_the_formatters_line_field_for_field(
    created: float,
    rid: str | None,
    method: str,
    path: str,
    status: int,
    route: str,
    seconds: float,
    client: tuple[str, int] | None,
) -> None:
    noted = (_handler(), created, rid, method, path, status, route, seconds, client)
    # Twice: built, then from the kept fragments.
    first, second = _written([noted, noted])
    assert first == second
    line, expected = json.loads(first), _formatters_line(noted)
    assert line == expected
    assert list(line) == list(expected)


def test_lines_sharing_a_route_and_path_keep_their_own_time_id_duration_and_client() -> None:
    handler = _handler()
    noted = [
        (handler, 1_764_842_400.0015, "req-00000001", "GET", "/", 200, "/", 0.0012345, None),
        (handler, 1_764_842_400.0016, "req-00000002", "GET", "/", 200, "/", 0.5, ("10.0.0.1", 1)),
        (handler, 1_764_842_401.25, None, "GET", "/", 200, "/", 0.0, ("10.0.0.2", 2)),
    ]
    written = [json.loads(line) for line in _written(noted)]
    assert [
        (line["time"], line.get("request_id"), line["duration_ms"], line["client"])
        for line in written
    ] == [
        ("2025-12-04T10:00:00.001+00:00", "req-00000001", 1.234, None),
        ("2025-12-04T10:00:00.001+00:00", "req-00000002", 500.0, "10.0.0.1:1"),
        ("2025-12-04T10:00:01.250+00:00", None, 0.0, "10.0.0.2:2"),
    ]
    assert "request_id" not in written[2]


def test_one_turns_lines_for_two_handlers_go_each_to_its_own() -> None:
    one, two = _handler(), _handler()
    noted = [
        (one, 0.0, None, "GET", "/a", 200, "/a", 0.0, None),
        (two, 0.0, None, "GET", "/b", 200, "/b", 0.0, None),
        (one, 0.0, None, "GET", "/c", 200, "/c", 0.0, None),
    ]
    access_log._write(noted)
    assert [json.loads(line)["message"] for line in one.stream.getvalue().splitlines()] == [
        "GET /a 200",
        "GET /c 200",
    ]
    assert [json.loads(line)["message"] for line in two.stream.getvalue().splitlines()] == [
        "GET /b 200"
    ]


def test_the_kept_fragments_and_clients_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access_log, "_MEMO_SIZE", 4)
    handler = _handler()
    noted = [
        (handler, 0.0, None, "GET", f"/{n}/token=t-{n}", 404, "unmatched", 0.0, ("h", n))
        for n in range(10)
    ]
    written = [json.loads(line) for line in _written(noted)]
    assert [(line["message"], line["client"]) for line in written] == [
        (f"GET /{n}/token={MASK} 404", f"h:{n}") for n in range(10)
    ]
    assert len(access_log._fragments) <= 4 and len(access_log._clients) <= 4


def test_a_secret_registered_later_is_masked_in_kept_fragments() -> None:
    secret = "kept-fragment-secret-3c9d1e"
    handler = _handler()
    noted = (handler, 0.0, None, "GET", f"/p/{secret}", 200, "/p/{id}", 0.0, None)
    access_log._write([noted])
    register_secret(secret)
    access_log._write([noted])
    before, after = (json.loads(line) for line in handler.stream.getvalue().splitlines())
    assert before["message"] == f"GET /p/{secret} 200"
    assert after["message"] == f"GET /p/{MASK} 200"
