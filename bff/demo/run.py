"""``bff demo``: the demo vendor and the BFF as real servers on 127.0.0.1, and the
demo partner page on ``http://localhost:PORT`` (another site) that embeds bff.

In ``proxy`` delivery the vendor proxy has its own origin, ``http://localhost:PORT``
(bff's port, the other host name: ``BFF_PROXY_ORIGIN``), so the vendor's code never
runs as bff.

Everything is throwaway: signing and encryption keys, the vendor's API
credentials, the demo passwords and the partner app's client secret are generated
for each run (the secret is held in memory and handed to the partner page's
server; the database keeps only its hash), and the SQLite file under
``./var/demo/`` is recreated, so a demo never meets an old one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bff.app import create_app
from bff.clock import SystemClock
from bff.demo.partner import DEMO_USER, PartnerConfig, create_partner_app
from bff.demo.seed import (
    PARTNER_APP_NAME,
    PARTNER_PAIRS,
    TENANTS,
    DemoAccount,
    demo_accounts,
    seed,
    seed_partner_app,
)
from bff.demo.server import serve_in_thread
from bff.demo.vendor import PAIR_TOKEN_PATH, VendorConfig, create_vendor_app
from bff.operations.partner_apps import AppView, NewSecret
from bff.settings import (
    AuthScheme,
    ConnectorKind,
    DeliveryMode,
    PairTokenStyle,
    Settings,
    UpstreamSettings,
    check_connection_wide_delivery,
)
from bff.store.database import Database
from bff.store.schema import prepare_schema

DEFAULT_PORT = 8000
DEFAULT_DELIVERY: DeliveryMode = "proxy"
DEMO_DIRECTORY = Path("var/demo")
HOST = "127.0.0.1"
# The partner page's host: another site than HOST, though the same machine.
PARTNER_HOST = "localhost"
# The vendor proxy's host (BFF_PROXY_ORIGIN, on bff's port): another origin than bff's.
PROXY_HOST = "localhost"


@dataclasses.dataclass(frozen=True)
class DemoConnection:
    """How the BFF talks to the demo vendor: any connector kind, with or without the
    per-pair step (``pair_token_style`` set), the static key as Bearer or Basic."""

    kind: ConnectorKind = "header-exchange"
    auth_scheme: AuthScheme = "bearer"
    pair_token_style: PairTokenStyle | None = None

    def describe(self) -> str:
        scheme = " as HTTP Basic" if self.auth_scheme == "basic" else ""
        step = f", per-pair step ({self.pair_token_style})" if self.pair_token_style else ""
        return f"{self.kind}{scheme}{step}"


@dataclasses.dataclass(frozen=True)
class Demo:
    url: str
    vendor_url: str
    delivery: DeliveryMode
    accounts: tuple[DemoAccount, ...]
    connection: DemoConnection
    settings: Settings = dataclasses.field(repr=False)
    vendor: VendorConfig = dataclasses.field(repr=False)
    # The demo partner page, when asked for (``partner_page=True``).
    partner_url: str | None = None
    partner_app: AppView | None = dataclasses.field(default=None, repr=False)
    partner: PartnerConfig | None = dataclasses.field(default=None, repr=False)
    # BFF_PROXY_ORIGIN: where the vendor proxy runs (proxy delivery only).
    proxy_url: str | None = None


@contextmanager
def running_demo(
    *,
    port: int = DEFAULT_PORT,
    delivery: DeliveryMode = DEFAULT_DELIVERY,
    directory: Path = DEMO_DIRECTORY,
    connection: DemoConnection | None = None,
    partner_page: bool = False,
    partner_port: int = 0,
    separate_proxy_origin: bool = True,
) -> Iterator[Demo]:
    """Start the vendor and the BFF (``port`` 0: any free port); stop both when the block ends.

    With ``partner_page``, also a partner app "Demo partner" and its page on
    ``http://localhost:<partner_port>`` (0: any free port), which embeds bff.

    In ``proxy`` delivery the proxy runs on ``http://localhost:<port>``; with
    ``separate_proxy_origin=False`` on bff's own origin instead (development's
    same-origin proxy, for tests that show what the separate origin prevents).

    A ``connection`` the delivery mode does not allow (a connection-wide token outside
    the proxy) raises :class:`~bff.errors.ConfigurationError` before anything starts.
    """
    connection = connection or DemoConnection()
    port = port or _free_port()
    if partner_page and not partner_port:
        partner_port = _free_port(avoid=port)
    partner_origin = f"http://{PARTNER_HOST}:{partner_port}" if partner_page else None
    vendor = VendorConfig(
        api_key=f"demo-key-{secrets.token_urlsafe(12)}",
        api_secret=f"demo-secret-{secrets.token_urlsafe(24)}",
        api_username=f"demo-partner-{secrets.token_hex(4)}",
        pair_token_style=connection.pair_token_style,
        clock=SystemClock(),
    )
    check_connection_wide_delivery(_upstream(vendor, "http://vendor", connection), delivery)
    accounts = demo_accounts()
    with serve_in_thread(create_vendor_app(vendor), host=HOST) as vendor_url:
        database = _fresh_database(directory)
        proxy_url = (
            f"http://{PROXY_HOST}:{port}" if delivery == "proxy" and separate_proxy_origin else None
        )
        settings = dataclasses.replace(
            settings_for(vendor, vendor_url, port, database, delivery, connection),
            demo=True,
            proxy_origin=proxy_url,
        )
        # In a thread of its own: callers may already run an event loop here
        # (Playwright's sync API does).
        with ThreadPoolExecutor(1) as worker:
            created = worker.submit(
                asyncio.run, prepare(settings, accounts, partner_origin=partner_origin)
            ).result()
        with ExitStack() as servers:
            url = servers.enter_context(serve_in_thread(create_app(settings), host=HOST, port=port))
            demo = Demo(
                url,
                vendor_url,
                delivery,
                accounts,
                connection,
                settings,
                vendor,
                proxy_url=proxy_url,
            )
            if created is not None and partner_origin is not None:
                partner = PartnerConfig(
                    bff_url=url,
                    origin=partner_origin,
                    client_id=created.app.client_id,
                    client_secret=created.client_secret,
                    pairs=PARTNER_PAIRS,
                )
                # Bound to 127.0.0.1 but reached by its name: the browser's site is "localhost".
                servers.enter_context(
                    serve_in_thread(create_partner_app(partner), host=HOST, port=partner_port)
                )
                demo = dataclasses.replace(
                    demo, partner_url=partner_origin, partner_app=created.app, partner=partner
                )
            yield demo


def run(port: int, delivery: DeliveryMode, out: TextIO) -> int:
    """Run the demo, with its partner page next to bff's port when that one is free,
    until Ctrl-C."""
    partner_port = port + 1 if port and _is_free(port + 1) else 0
    with running_demo(
        port=port, delivery=delivery, partner_page=True, partner_port=partner_port
    ) as demo:
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
        f"  Connection:     {demo.connection.describe()}",
        f"  Demo vendor:    {demo.vendor_url}  (tenants {tenants})",
    ]
    if demo.proxy_url:
        lines.append(
            f"  Vendor proxy:   {demo.proxy_url}  (its own origin: vendor code never runs as bff)"
        )
    if demo.partner_url:
        pairs = ", ".join(f"{tenant}/{sub_tenant}" for tenant, sub_tenant in PARTNER_PAIRS)
        lines += [
            "",
            f"  Partner page:   {demo.partner_url}/",
            f"    another site, embedding bff with embed.js for partner user {DEMO_USER['id']}",
            f'    (partner app "{PARTNER_APP_NAME}", pairs {pairs})',
        ]
    lines += [
        "",
        "  Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


async def prepare(
    settings: Settings, accounts: tuple[DemoAccount, ...], *, partner_origin: str | None = None
) -> NewSecret | None:
    """Migrate the (empty) database and seed ``accounts`` and the demo tenants; with
    ``partner_origin``, also the demo partner app (its new secret is the answer)."""
    database = Database(settings.database_url)
    try:
        await prepare_schema(database)
        await seed(database, accounts)
        if partner_origin is None:
            return None
        return await seed_partner_app(database, partner_origin, now=datetime.now(UTC))
    finally:
        await database.dispose()


def _fresh_database(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "bff.db"
    for leftover in (path, path.with_name("bff.db-wal"), path.with_name("bff.db-shm")):
        leftover.unlink(missing_ok=True)
    return path.resolve()


def _free_port(avoid: int = 0) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((HOST, 0))
            port: int = probe.getsockname()[1]
        if port != avoid:
            return port


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def settings_for(
    vendor: VendorConfig,
    vendor_url: str,
    port: int,
    database: Path,
    delivery: DeliveryMode,
    connection: DemoConnection | None = None,
) -> Settings:
    """Throwaway settings for a BFF on ``port`` of 127.0.0.1 in front of a demo vendor."""
    return Settings(
        secret_keys=(secrets.token_urlsafe(32),),
        encryption_keys=(secrets.token_urlsafe(32),),
        public_url=f"http://{HOST}:{port}",
        database_url=f"sqlite:///{database}",
        upstream=_upstream(vendor, vendor_url, connection or DemoConnection()),
        dashboard_url=f"{vendor_url}/dashboard/",
        dashboard_delivery=delivery,
    )


def _upstream(
    vendor: VendorConfig, vendor_url: str, connection: DemoConnection
) -> UpstreamSettings:
    return UpstreamSettings(
        kind=connection.kind,
        base_url=vendor_url,
        api_key=vendor.api_key,
        api_secret=vendor.api_secret,
        auth_scheme=connection.auth_scheme,
        api_username=vendor.api_username if connection.auth_scheme == "basic" else None,
        pair_token_url=PAIR_TOKEN_PATH if connection.pair_token_style else None,
        pair_token_style=connection.pair_token_style or "headers",
    )
