from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from bff.demo.vendor import VendorConfig, create_vendor_app


@pytest.fixture
async def client(vendor: VendorConfig) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(create_vendor_app(vendor))
    async with httpx2.AsyncClient(transport=transport, base_url="http://vendor.test") as client:
        yield client


def credentials(vendor: VendorConfig, tenant: str = "acme", sub: str = "emea") -> dict[str, str]:
    return {
        "x-api-key": vendor.api_key,
        "x-api-secret": vendor.api_secret,
        "x-tenant-id": tenant,
        "x-sub-tenant-id": sub,
    }
