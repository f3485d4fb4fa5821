from __future__ import annotations

import io

import httpx2
import pytest

from bff.broker.check import run_check
from bff.clock import ManualClock
from bff.demo.faults import Fault
from bff.demo.vendor import VendorConfig, create_vendor_app
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


@pytest.mark.anyio
@pytest.mark.parametrize(
    "kind", ["header-exchange", "apikey-jwt", "oauth2-client-credentials", "static-bearer"]
)
async def test_ok_prints_expiry_never_the_token(
    vendor: VendorConfig, clock: ManualClock, kind: ConnectorKind
) -> None:
    issued: list[str] = []
    original = vendor.token

    def spy(fault: Fault | None, **extra: str) -> str | None:
        token = original(fault, **extra)
        issued.extend([token] if token else [])
        return token

    vendor.token = spy  # type: ignore[method-assign]
    status, output = await check(vendor, settings(vendor, kind=kind), clock)
    assert status == 0, output
    assert "vendor: ok" in output
    assert "token expires: 2026-01-0" in output
    for secret in [*issued, vendor.api_key, vendor.api_secret]:
        assert secret not in output
    assert sum(vendor.calls.values()) == 1


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
