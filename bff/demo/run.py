"""``bff demo``: the demo vendor and the BFF as real servers on 127.0.0.1.

Everything is throwaway: signing and encryption keys, the vendor's API
credentials and the demo passwords are generated for each run, and the SQLite
file under ``./var/demo/`` is recreated, so a demo never meets an old one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from bff.app import create_app
from bff.clock import SystemClock
from bff.demo.seed import TENANTS, DemoAccount, demo_accounts, seed
from bff.demo.server import serve_in_thread
from bff.demo.vendor import VendorConfig, create_vendor_app
from bff.settings import DeliveryMode, Settings, UpstreamSettings
from bff.store.database import Database
from bff.store.schema import prepare_schema

DEFAULT_PORT = 8000
DEFAULT_DELIVERY: DeliveryMode = "proxy"
DEMO_DIRECTORY = Path("var/demo")
HOST = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class Demo:
    url: str
    vendor_url: str
    delivery: DeliveryMode
    accounts: tuple[DemoAccount, ...]
    settings: Settings = dataclasses.field(repr=False)
    vendor: VendorConfig = dataclasses.field(repr=False)


@contextmanager
def running_demo(
    *,
    port: int = DEFAULT_PORT,
    delivery: DeliveryMode = DEFAULT_DELIVERY,
    directory: Path = DEMO_DIRECTORY,
) -> Iterator[Demo]:
    """Start the vendor and the BFF (``port`` 0: any free port); stop both when the block ends."""
    port = port or _free_port()
    vendor = VendorConfig(
        api_key=f"demo-key-{secrets.token_urlsafe(12)}",
        api_secret=f"demo-secret-{secrets.token_urlsafe(24)}",
        clock=SystemClock(),
    )
    accounts = demo_accounts()
    with serve_in_thread(create_vendor_app(vendor), host=HOST) as vendor_url:
        settings = dataclasses.replace(
            settings_for(vendor, vendor_url, port, _fresh_database(directory), delivery),
            demo=True,
        )
        # In a thread of its own: callers may already run an event loop here
        # (Playwright's sync API does).
        with ThreadPoolExecutor(1) as worker:
            worker.submit(asyncio.run, prepare(settings, accounts)).result()
        with serve_in_thread(create_app(settings), host=HOST, port=port) as url:
            yield Demo(url, vendor_url, delivery, accounts, settings, vendor)


def run(port: int, delivery: DeliveryMode, out: TextIO) -> int:
    """Run the demo until Ctrl-C."""
    with running_demo(port=port, delivery=delivery) as demo:
        out.write(banner(demo))
        out.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            out.write("\nStopping the demo.\n")
    return 0


def banner(demo: Demo) -> str:
    width = max(len(account.email) for account in demo.accounts)
    lines = [
        "",
        "bff demo is running (throwaway keys and data; not for production).",
        "",
        f"  Open {demo.url}/ and sign in as one of:",
        "",
    ]
    for account in demo.accounts:
        if account.is_admin:
            role = "admin, no tenants"
        else:
            role = ", ".join(f"{tenant}/{sub_tenant}" for tenant, sub_tenant in account.scopes)
        lines.append(f"    {account.email:<{width}}  {account.password}  ({role})")
    tenants = "; ".join(f"{tenant}: {', '.join(subs)}" for tenant, subs in TENANTS.items())
    lines += [
        "",
        f"  Token delivery: {demo.delivery}  (--delivery proxy|post|fragment|query)",
        f"  Demo vendor:    {demo.vendor_url}  (tenants {tenants})",
        "",
        "  Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


async def prepare(settings: Settings, accounts: tuple[DemoAccount, ...]) -> None:
    """Migrate the (empty) database and seed ``accounts`` and the demo tenants."""
    database = Database(settings.database_url)
    try:
        await prepare_schema(database)
        await seed(database, accounts)
    finally:
        await database.dispose()


def _fresh_database(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "bff.db"
    for leftover in (path, path.with_name("bff.db-wal"), path.with_name("bff.db-shm")):
        leftover.unlink(missing_ok=True)
    return path.resolve()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


def settings_for(
    vendor: VendorConfig, vendor_url: str, port: int, database: Path, delivery: DeliveryMode
) -> Settings:
    """Throwaway settings for a BFF on ``port`` of 127.0.0.1 in front of a demo vendor."""
    return Settings(
        secret_keys=(secrets.token_urlsafe(32),),
        encryption_keys=(secrets.token_urlsafe(32),),
        public_url=f"http://{HOST}:{port}",
        database_url=f"sqlite:///{database}",
        upstream=UpstreamSettings(
            base_url=vendor_url, api_key=vendor.api_key, api_secret=vendor.api_secret
        ),
        dashboard_url=f"{vendor_url}/dashboard/",
        dashboard_delivery=delivery,
    )
