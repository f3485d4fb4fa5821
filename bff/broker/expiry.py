"""When a vendor token stops being usable, and when to renew it."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from bff.broker import jwt_claims
from bff.broker.connectors.base import Issued
from bff.broker.policy import BrokerPolicy
from bff.broker.scope import VendorToken
from bff.errors import UpstreamBadResponse


def vendor_token(
    issued: Issued, default_lifetime: float, obtained_at: datetime, policy: BrokerPolicy
) -> VendorToken:
    """The token with its usable expiry: the earlier of ``exp`` and the stated lifetime, minus skew.

    Raises :class:`UpstreamBadResponse` for a token that is not the JWT the
    contract promises, or one that has already expired.
    """
    lifetime = min(issued.lifetime or default_lifetime, policy.max_lifetime)
    limit = obtained_at + timedelta(seconds=lifetime)
    exp = _exp(issued)
    if exp is not None:
        if exp <= obtained_at:
            raise UpstreamBadResponse("the vendor issued a token that has already expired")
        limit = min(limit, exp)
    life = (limit - obtained_at).total_seconds()
    skew = min(policy.skew, life * policy.max_skew_fraction)
    return VendorToken(
        issued.value,
        limit - timedelta(seconds=skew),
        obtained_at,
        authorization=issued.authorization or "",
        refresh_token=issued.refresh_token,
        refresh_until=(
            obtained_at + timedelta(seconds=issued.refresh_lifetime)
            if issued.refresh_token is not None and issued.refresh_lifetime is not None
            else None
        ),
    )


def _exp(issued: Issued) -> datetime | None:
    if issued.format == "opaque":
        return None
    try:
        return jwt_claims.expiry(issued.value)
    except jwt_claims.NotAJwt:
        if issued.format == "jwt":
            raise UpstreamBadResponse("the vendor issued a token that is not a JWT") from None
        return None


def refresh_time(
    token: VendorToken, policy: BrokerPolicy, rng: random.Random, *, lead: float
) -> datetime:
    """When to start renewing ``token``: most of its life used, and ``lead`` seconds spare."""
    life = token.expires_at - token.obtained_at
    fraction = rng.uniform(*policy.refresh_window)
    planned = token.obtained_at + life * fraction
    latest = token.expires_at - timedelta(seconds=lead)
    return max(token.obtained_at, min(planned, latest))
