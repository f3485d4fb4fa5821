from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bff.logs import MASK, JsonFormatter, redact, register_secret, request_id

PLANTED = "planted-Secret-8f3a9c71"
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0ZW5hbnRfaWQiOiJhY21lIn0.c2lnbmF0dXJlLXh5eg"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


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
