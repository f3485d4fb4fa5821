from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bff.logs import MASK, JsonFormatter, redact, register_secret, request_id

PLANTED = "planted-Secret-8f3a9c71"
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0ZW5hbnRfaWQiOiJhY21lIn0.c2lnbmF0dXJlLXh5eg"


class RaisingHandler(logging.StreamHandler[io.StringIO]):
    """Writes like the real handler, but a record it cannot write fails the test
    instead of printing "--- Logging error ---" and writing nothing."""

    def handleError(self, record: logging.LogRecord) -> None:
        raise  # the error emit() is handling


def json_logger() -> tuple[logging.Logger, io.StringIO]:
    """A logger outside the hierarchy (pytest's own capture, which formats records
    its own way, never reaches it) that writes JSON lines to a string."""
    stream = io.StringIO()
    handler = RaisingHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.Logger("tests.redaction", logging.DEBUG)
    logger.addHandler(handler)
    return logger, stream


@pytest.fixture
def captured() -> tuple[logging.Logger, io.StringIO]:
    return json_logger()


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR])
def test_registered_secret_is_masked_at_every_level(
    captured: tuple[logging.Logger, io.StringIO], level: int
) -> None:
    logger, stream = captured
    register_secret(PLANTED)
    logger.log(level, "calling vendor with %s", PLANTED, extra={"header": f"x {PLANTED}"})
    line = stream.getvalue()
    assert PLANTED not in line
    assert MASK in line
    assert json.loads(line)["level"] == logging.getLevelName(level)


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR])
def test_token_shaped_values_are_masked_whatever_the_call_site(
    captured: tuple[logging.Logger, io.StringIO], level: int
) -> None:
    logger, stream = captured
    logger.log(level, "got %s", {"token": "abc123secretvalue"})
    logger.log(level, JWT)
    logger.log(level, "GET /embed?ticket=tkt-5566778899&x=1")
    logger.log(level, "headers", extra={"headers": {"cookie": "bff_session=sess-99887766"}})
    logger.log(level, "Authorization: Bearer opaque-bearer-123456")
    out = stream.getvalue()
    for leaked in ("abc123secretvalue", JWT, "tkt-5566778899", "sess-99887766", "opaque-bearer"):
        assert leaked not in out


def test_bffs_own_secrets_are_masked_by_their_prefix(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    api_key = "bffk_" + "k" * 43
    client_secret = "bffs_" + "s" * 43
    logger.info("a script sent %s and %s", api_key, client_secret)
    logger.info("client bffp_AbCdEfGhIjKlMnOpQrStUv authenticated")
    out = stream.getvalue()
    assert api_key not in out and client_secret not in out
    assert out.count(MASK) == 2
    assert "bffp_AbCdEfGhIjKlMnOpQrStUv" in out  # a client id is public


def test_secret_in_a_traceback_is_masked(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    register_secret(PLANTED)
    try:
        raise RuntimeError(f"failed with api_secret {PLANTED}")
    except RuntimeError:
        logger.exception("vendor call failed")
    assert PLANTED not in stream.getvalue()
    assert "RuntimeError" in stream.getvalue()


def test_ordinary_values_survive() -> None:
    line = "tenant_id=acme sub_tenant_id=eu status=200 path=/dashboard"
    assert redact(line) == line


def test_lines_carry_the_request_id(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    reset = request_id.set("req-0123456789")
    try:
        logger.info("hello")
    finally:
        request_id.reset(reset)
    assert json.loads(stream.getvalue())["request_id"] == "req-0123456789"


# --- redaction happens on structured fields, before the line is encoded -----------------

# A registered secret with both quotes and a backslash: JSON and repr both rewrite it.
AWKWARD = "k3y\"with\\both'quotes"


@pytest.fixture(autouse=True, scope="module")
def registered_secrets() -> None:
    register_secret(PLANTED)
    register_secret(AWKWARD)


def escaped_forms(secret: str) -> set[str]:
    """How a secret can look in a line: as is, JSON-escaped (once or twice), repr-escaped."""
    json_once = json.dumps(secret)[1:-1]
    return {
        secret,
        json_once,
        json.dumps(json_once)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        json.dumps(repr(secret)[1:-1])[1:-1],
    }


def one_line(stream: io.StringIO) -> dict[str, Any]:
    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert isinstance(entry, dict)
    return entry


def test_a_quoted_value_is_masked_whole_and_the_line_stays_json(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("vendor said token=\"abc def ghi\" and password='p q r'")
    assert one_line(stream)["message"] == (
        "vendor said token=\"[REDACTED]\" and password='[REDACTED]'"
    )


def test_an_opaque_token_in_json_text_is_masked(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.warning("vendor body: %s", '{"data": {"token": "opaque-tok-5566"}, "code": 7}')
    assert one_line(stream)["message"] == (
        'vendor body: {"data": {"token": "[REDACTED]"}, "code": 7}'
    )


def test_a_registered_secret_with_quotes_and_backslashes_is_masked_in_every_escaping(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("raw %s, repr %r, json %s", AWKWARD, [AWKWARD], json.dumps({"k": AWKWARD}))
    logger.info("bytes", extra={"body": AWKWARD.encode(), "nested": {"x": [AWKWARD]}})
    try:
        raise KeyError(AWKWARD)
    except KeyError:
        logger.exception("lookup failed")
    out = stream.getvalue()
    for form in escaped_forms(AWKWARD):
        assert form not in out
    assert [json.loads(line)["message"] for line in out.splitlines()] == [
        'raw [REDACTED], repr [\'[REDACTED]\'], json {"k": "[REDACTED]"}',
        "bytes",
        "lookup failed",
    ]


def test_values_under_sensitive_keys_are_masked_at_any_depth(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info(
        "request",
        extra={
            "request": {
                "headers": [(b"cookie", b"theme=dark; sid=opaque-1"), ("accept", "text/html")],
                "form": {"csrf_token": "opaque-2", "scope": "acme/eu"},
                "Authorization": "Basic opaque-3",
                "x-api-key": 12345678,
                "refresh_token": None,
            },
            "api_secret": ["opaque-4"],
        },
    )
    entry = one_line(stream)
    assert entry["request"] == {
        "headers": [["cookie", MASK], ["accept", "text/html"]],
        "form": {"csrf_token": MASK, "scope": "acme/eu"},
        "Authorization": MASK,
        "x-api-key": MASK,
        "refresh_token": None,
    }
    assert entry["api_secret"] == MASK


def test_arguments_that_do_not_fit_the_format_still_give_one_json_line(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("%d pairs for %s", "many", {"token": "opaque-5"})
    entry = one_line(stream)
    assert (entry["message"], entry["args"]) == ("%d pairs for %s", ["many", {"token": MASK}])


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_objects_that_cannot_be_printed_still_give_one_json_line(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info(Unprintable())
    logger.info("got %s", Unprintable())
    logger.info("extra", extra={"thing": Unprintable(), "items": {Unprintable(): 1}})
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "<unprintable Unprintable>"
    assert (second["message"], second["args"]) == ("got %s", ["<unprintable Unprintable>"])
    assert third["thing"] == "<unprintable Unprintable>"
    assert third["items"] == {"<unprintable Unprintable>": 1}


def test_odd_values_become_json_data(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    cycle: list[Any] = ["start"]
    cycle.append(cycle)
    extra: dict[Any, object] = {
        7: "a non-string key",
        "raw": b"\xff token=opaque-6",
        "numbers": [float("nan"), float("inf"), 2**80, 1.5],
        "tuple_keys": {(1, 2): "pair"},
        "cycle": cycle,
    }
    logger.info("odd", extra=extra)
    entry = one_line(stream)
    assert entry["7"] == "a non-string key"
    assert entry["raw"] == f"\ufffd token={MASK}"
    assert entry["numbers"] == ["nan", "inf", str(2**80), 1.5]
    assert entry["tuple_keys"] == {"(1, 2)": "pair"}
    assert entry["cycle"] == ["start", "[...]"]


def test_a_lone_surrogate_still_gives_a_utf8_line(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("path %s", b"/caf\xe9".decode("utf-8", "surrogateescape"))
    line = stream.getvalue()
    line.encode("utf-8")  # raises on a lone surrogate
    assert one_line(stream)["message"] == "path /caf\ufffd"


def test_an_extra_cannot_overwrite_the_lines_own_fields(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.warning("hello", extra={"level": "DEBUG", "time": "never"})
    entry = one_line(stream)
    assert (entry["level"], entry["extra_level"], entry["extra_time"]) == (
        "WARNING",
        "DEBUG",
        "never",
    )


def test_an_access_log_line_masks_a_ticket_in_the_query(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:50000",
        "GET",
        "/embed/launch?ticket=tkt-5566778899&x=1",
        "1.1",
        303,
    )
    assert one_line(stream)["message"] == (
        f'127.0.0.1:50000 - "GET /embed/launch?ticket={MASK}&x=1 HTTP/1.1" 303'
    )


def test_redact_masks_one_string_for_other_callers() -> None:
    assert redact(f'{{"message": "bad key {AWKWARD}", "token": "opaque-7"}}') == (
        f'{{"message": "bad key {MASK}", "token": "{MASK}"}}'
    )


# --- properties: whatever a call site passes, one valid JSON line, no secret ----------------

PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,  # no wall-clock assertions in unit tests
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow],
)
RESERVED_EXTRAS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class StrRaises:
    def __str__(self) -> str:
        raise ValueError("no str")

    def __repr__(self) -> str:
        return f"<StrRaises {AWKWARD}>"


class StrNotAString:
    def __str__(self) -> str:
        return 42  # type: ignore[return-value]


class Chatty:
    """An object that says whatever it was given, secret included."""

    def __init__(self, said: str) -> None:
        self.said = said

    def __str__(self) -> str:
        return self.said

    def __repr__(self) -> str:
        return f"Chatty({self.said!r})"


class BadException(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for this exception")


def any_text() -> st.SearchStrategy[str]:
    surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=())
    return st.one_of(
        st.text(),
        st.text(st.one_of(st.characters(), surrogates)),
        st.sampled_from(
            [AWKWARD, f"token={AWKWARD}", f'{{"api_secret": "{AWKWARD}"}}', JWT, PLANTED]
        ),
        st.tuples(st.text(max_size=5), st.text(max_size=5)).map(
            lambda ends: ends[0] + AWKWARD + ends[1]
        ),
    )


def any_object() -> st.SearchStrategy[object]:
    return st.one_of(
        st.builds(Unprintable),
        st.builds(StrRaises),
        st.builds(StrNotAString),
        st.builds(Chatty, any_text()),
        st.just(5000).map(lambda digits: 10**digits),  # too many digits for str()
    )


def any_scalar() -> st.SearchStrategy[object]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        any_text(),
        st.binary(),
        any_text().map(lambda text: text.encode("utf-8", "surrogatepass")),
        any_object(),
    )


def any_key() -> st.SearchStrategy[Any]:
    return st.one_of(
        any_text(),
        st.sampled_from(["token", "Cookie", "x-api-key", "password", "headers"]),
        st.integers(),
        st.none(),
        st.tuples(st.integers(), any_text()),
        st.builds(Unprintable),
    )


def any_value() -> st.SearchStrategy[object]:
    return st.recursive(
        any_scalar(),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.lists(children, max_size=4).map(tuple),
            st.tuples(st.sampled_from(["cookie", b"authorization", "tenant"]), children),
            st.dictionaries(any_key(), children, max_size=4),
        ),
        max_leaves=12,
    )


def any_format() -> st.SearchStrategy[str]:
    pieces = st.one_of(
        any_text(),
        st.sampled_from(["%s", "%r", "%d", "%x", "%.2f", "%(token)s", "%(n)d", "%", "%%"]),
    )
    return st.lists(pieces, max_size=5).map("".join)


def any_exc_info() -> st.SearchStrategy[Any]:
    def raised(exception: BaseException) -> BaseException:
        try:
            try:
                raise RuntimeError(f"cause with {AWKWARD}")
            except RuntimeError as cause:
                raise exception from cause
        except BaseException as caught:
            return caught

    exceptions = st.one_of(
        st.builds(RuntimeError, any_text()),
        st.builds(KeyError, any_text()),
        st.builds(ValueError, any_value(), any_value()),
        st.builds(BadException),
    )
    return st.one_of(st.none(), st.builds(raised, exceptions))


@given(
    level=st.sampled_from([logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR]),
    msg=st.one_of(any_format(), any_value()),
    args=st.one_of(
        st.lists(any_value(), max_size=4).map(tuple),
        st.dictionaries(any_key(), any_value(), min_size=1, max_size=3).map(lambda d: (d,)),
    ),
    extra=st.dictionaries(
        st.one_of(any_text().filter(lambda key: key not in RESERVED_EXTRAS), st.integers()),
        any_value(),
        max_size=4,
    ),
    exc_info=any_exc_info(),
    stack_info=st.booleans(),
)
@PROPERTY_SETTINGS
def test_every_record_is_one_json_line_without_a_registered_secret(
    level: int,
    msg: object,
    args: tuple[object, ...],
    extra: dict[Any, object],
    exc_info: BaseException | None,
    stack_info: bool,
) -> None:
    logger, stream = json_logger()
    logger.log(level, msg, *args, extra=extra, exc_info=exc_info, stack_info=stack_info)
    line = stream.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    line.encode("utf-8")  # no lone surrogate: a real UTF-8 line
    entry = json.loads(line)
    assert isinstance(entry["message"], str)
    assert (entry["level"], entry["logger"]) == (logging.getLevelName(level), "tests.redaction")
    assert (exc_info is not None) == ("exception" in entry)
    for secret in (AWKWARD, PLANTED):
        for form in escaped_forms(secret):
            assert form not in line
    assert JWT not in line


def test_a_value_is_written_as_the_formatter_writes_it() -> None:
    from bff.logs import json_value

    assert json_value('a "b" ü\n') == '"a \\"b\\" ü\\n"'
    assert json_value(None) == "null"
    assert json_value(1.5) == "1.5"
    assert json_value(1 << 70) == str(1 << 70)
    # A lone surrogate, which orjson refuses: U+FFFD, as in a formatted line.
    assert json_value("x\udce9y") == '"x\ufffdy"'


def test_the_redaction_epoch_changes_only_when_a_secret_is_registered() -> None:
    from bff.logs import redaction_epoch

    before = redaction_epoch()
    register_secret("short")  # too short to register
    assert redaction_epoch() is before
    register_secret("epoch-secret-7a1b2c3d")
    assert redaction_epoch() is not before


def test_lines_written_at_once_go_in_one_write_and_an_error_is_reported() -> None:
    from bff.logs import write_lines

    class Stream(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            self.writes += 1
            return super().write(text)

    stream = Stream()
    write_lines(logging.StreamHandler(stream), "one\ntwo\n")
    assert (stream.getvalue(), stream.writes) == ("one\ntwo\n", 1)

    reported: list[logging.LogRecord] = []

    class Closed(logging.StreamHandler[io.StringIO]):
        def handleError(self, record: logging.LogRecord) -> None:
            reported.append(record)

    closed = io.StringIO()
    closed.close()
    write_lines(Closed(closed), "lost\n")
    assert [record.getMessage() for record in reported] == ["access records not written"]
