from __future__ import annotations

import base64
import io
from collections.abc import Mapping

import httpx2
import pytest

from bff.broker.check import run_check
from bff.clock import ManualClock
from bff.demo.faults import Fault
from bff.demo.vendor import PAIR_TOKEN_PATH, VendorConfig, create_vendor_app
from bff.errors import ConfigurationError, InvalidIdentifierError
from bff.settings import ConnectorKind, Settings, UpstreamSettings
from tests.broker.conftest import VENDOR


def settings(vendor: VendorConfig, **upstream: object) -> Settings:
    values: dict[str, object] = {
        "base_url": VENDOR,
        "api_key": vendor.api_key,
        "api_secret": vendor.api_secret,
    }
    values.update(upstream)
    return Settings(
        secret_keys=("k" * 32,),
        encryption_keys=("e" * 32,),
        upstream=UpstreamSettings(**values),  # type: ignore[arg-type]
    )


async def check(vendor: VendorConfig, config: Settings, clock: ManualClock) -> tuple[int, str]:
    out = io.StringIO()
    transport = httpx2.ASGITransport(create_vendor_app(vendor))
    status = await run_check(config, "acme", "emea", out, transport=transport, clock=clock)
    return status, out.getvalue()


BASIC = {"auth_scheme": "basic", "api_username": "demo-partner"}


def spy_on_tokens(vendor: VendorConfig) -> list[str]:
    """Every token (dashboard token or credential) the vendor issues, in order."""
    issued: list[str] = []
    original = vendor._issue

    def spy(fault: Fault | None, extra: Mapping[str, str], *, credential: bool) -> str | None:
        token = original(fault, extra, credential=credential)
        issued.extend([token] if token else [])
        return token

    vendor._issue = spy  # type: ignore[method-assign]
    return issued


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kind", "options", "pair_step"),
    [
        ("header-exchange", {}, False),
        *[
            (kind, {}, pair_step)
            for kind in ("apikey-jwt", "oauth2-client-credentials", "static-bearer")
            for pair_step in (False, True)
        ],
        ("static-bearer", BASIC, False),
        ("static-bearer", BASIC, True),
    ],
)
async def test_ok_prints_expiry_never_a_token_or_credential(
    vendor: VendorConfig,
    clock: ManualClock,
    kind: ConnectorKind,
    options: dict[str, str],
    pair_step: bool,
) -> None:
    issued = spy_on_tokens(vendor)
    if pair_step:
        options = {**options, "pair_token_url": PAIR_TOKEN_PATH}
    status, output = await check(vendor, settings(vendor, kind=kind, **options), clock)
    assert status == 0, output
    assert "vendor: ok" in output
    assert "token expires: 2026-01-0" in output
    basic = base64.b64encode(f"{vendor.api_username}:{vendor.api_key}".encode()).decode()
    for secret in [*issued, vendor.api_key, vendor.api_secret, basic]:
        assert secret not in output
    if kind == "header-exchange":
        assert sum(vendor.calls.values()) == 1
        assert "(one token" not in output
    elif pair_step:
        # The connection's credential, then the pair's own token.
        assert sum(vendor.calls.values()) == 2 and vendor.calls["pair_token"] == 1
        assert "for this pair only" in output and "per-pair token step" in output
    else:
        assert sum(vendor.calls.values()) == 1
        assert "only proxy delivery may use it" in output


@pytest.mark.anyio
async def test_a_pair_step_refusal_names_the_endpoint_settings(
    vendor: VendorConfig, clock: ManualClock
) -> None:
    config = settings(vendor, kind="apikey-jwt", pair_token_url="/no/such/endpoint")
    status, output = await check(vendor, config, clock)
    assert status == 1
    assert "404" in output and "BFF_UPSTREAM_PAIR_TOKEN_URL" in output
    assert vendor.api_key not in output


@pytest.mark.anyio
async def test_vendor_refusal_exits_1_with_a_hint(vendor: VendorConfig, clock: ManualClock) -> None:
    status, output = await check(vendor, settings(vendor, api_secret="wrong-secret"), clock)
    assert status == 1
    assert "FAILED" in output and "403" in output and "Forbidden" in output
    assert "BFF_UPSTREAM_API_KEY" in output
    assert "wrong-secret" not in output


@pytest.mark.anyio
async def test_outage_exits_1_after_exactly_one_call(
    vendor: VendorConfig, clock: ManualClock
) -> None:
    vendor.fault = Fault("server_error")
    status, output = await check(vendor, settings(vendor), clock)
    assert status == 1
    assert "500" in output
    assert vendor.calls["token"] == 1


@pytest.mark.anyio
async def test_bad_settings_and_ids_raise_for_the_cli(
    vendor: VendorConfig, clock: ManualClock
) -> None:
    with pytest.raises(ConfigurationError, match="BFF_UPSTREAM_BASE_URL"):
        await check(vendor, settings(vendor, base_url=None), clock)
    with pytest.raises(InvalidIdentifierError):
        await run_check(settings(vendor), "bad tenant!", "emea", io.StringIO())
