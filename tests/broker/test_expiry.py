from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from bff.broker.connectors.base import Issued, TokenFormat
from bff.broker.expiry import refresh_time, vendor_token
from bff.broker.policy import BrokerPolicy
from bff.demo import tokens
from bff.errors import UpstreamBadResponse

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DAY = 24 * 60 * 60
POLICY = BrokerPolicy(skew=30)


def signed(exp_in: float | None) -> str:
    claims: dict[str, object] = {"iat": int(NOW.timestamp())}
    if exp_in is not None:
        claims["exp"] = int(NOW.timestamp() + exp_in)
    return tokens.issue(claims, "k" * 32)


def test_earlier_of_exp_and_lifetime_minus_skew() -> None:
    token = vendor_token(Issued(signed(3600), None, "jwt"), DAY, NOW, POLICY)
    assert token.expires_at == NOW + timedelta(seconds=3600 - 30)
    token = vendor_token(Issued(signed(2 * DAY), None, "jwt"), DAY, NOW, POLICY)
    assert token.expires_at == NOW + timedelta(seconds=DAY - 30)


def test_stated_lifetime_beats_default_and_skew_shrinks_for_short_tokens() -> None:
    token = vendor_token(Issued("opaque", 10, "opaque"), DAY, NOW, POLICY)
    assert token.expires_at == NOW + timedelta(seconds=9)  # skew at most 10 % of life


def test_missing_exp_falls_back_to_connector_lifetime() -> None:
    token = vendor_token(Issued(signed(None), None, "jwt"), 3600, NOW, POLICY)
    assert token.expires_at == NOW + timedelta(seconds=3600 - 30)


def test_absurd_exp_is_capped() -> None:
    token = vendor_token(Issued(signed(10 * 365 * DAY), None, "jwt"), DAY, NOW, POLICY)
    assert token.expires_at == NOW + timedelta(seconds=DAY - 30)
    policy = BrokerPolicy(max_lifetime=3600, skew=0)
    token = vendor_token(Issued(signed(10 * 365 * DAY), 10**9, "jwt"), 10**9, NOW, policy)
    assert token.expires_at == NOW + timedelta(seconds=3600)


@pytest.mark.parametrize("exp_in", [-60, 0])
def test_past_exp_is_a_bad_response(exp_in: float) -> None:
    with pytest.raises(UpstreamBadResponse, match="already expired"):
        vendor_token(Issued(signed(exp_in), None, "jwt"), DAY, NOW, POLICY)


@pytest.mark.parametrize(("fmt", "ok"), [("jwt", False), ("maybe-jwt", True), ("opaque", True)])
def test_non_jwt_only_fails_where_a_jwt_is_promised(fmt: TokenFormat, ok: bool) -> None:
    issued = Issued("not-a-jwt", None, fmt)
    if ok:
        assert vendor_token(issued, 60, NOW, POLICY).value == "not-a-jwt"
    else:
        with pytest.raises(UpstreamBadResponse, match="not a JWT") as caught:
            vendor_token(issued, 60, NOW, POLICY)
        assert "not-a-jwt" not in str(caught.value)


def test_refresh_time_is_jittered_around_80_percent_and_leaves_lead() -> None:
    token = vendor_token(Issued("t", 1000, "opaque"), DAY, NOW, BrokerPolicy(skew=0))
    rng = random.Random(3)
    times = {refresh_time(token, POLICY, rng, lead=1) for _ in range(50)}
    assert len(times) > 10
    assert all(NOW + timedelta(seconds=750) <= t <= NOW + timedelta(seconds=850) for t in times)
    late = refresh_time(token, POLICY, rng, lead=400)
    assert late == NOW + timedelta(seconds=600)
    assert refresh_time(token, POLICY, rng, lead=5000) == NOW
