from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bff.broker.jwt_claims import NotAJwt, expiry


def jwt(claims: Any, header: Any = None) -> str:
    def part(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header or {'alg': 'HS256'})}.{part(claims)}.c2ln"


def test_reads_exp_without_verifying() -> None:
    assert expiry(jwt({"exp": 1_800_000_000})) == datetime.fromtimestamp(1_800_000_000, UTC)


@pytest.mark.parametrize("claims", [{}, {"exp": "soon"}, {"exp": True}, {"exp": None}])
def test_missing_or_non_numeric_exp_is_none(claims: dict[str, Any]) -> None:
    assert expiry(jwt(claims)) is None


def test_exp_beyond_datetime_is_far_future() -> None:
    assert expiry(jwt({"exp": 10**20})) == datetime.max.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "token",
    ["", "opaque-token", "a.b", "a.b.c.d", "!!!.???.x", jwt([1, 2]), jwt({"exp": 1}, header=[1])],
)
def test_not_a_jwt(token: str) -> None:
    with pytest.raises(NotAJwt):
        expiry(token)
