"""The ``bff`` command: serve | demo | migrate | users | api-keys | check | reencrypt.

Every failure is one clear line on stderr and a non-zero exit: 2 for bad
settings or usage, 1 for anything else that went wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from bff.errors import BffError, ConfigurationError
from bff.settings import DELIVERY_MODES, Settings

if TYPE_CHECKING:
    from bff.store.database import Database

T = TypeVar("T")

EXIT_FAILURE = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except ConfigurationError as exc:
        print(f"bff: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BffError as exc:
        print(f"bff: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bff", description="Backend-for-frontend for embedded analytics dashboards."
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server from environment / .env settings")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="comma-separated addresses of the reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto to believe (default: none; every client is its TCP peer)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes (default 1); above 1 needs BFF_REDIS_URL",
    )
    serve.add_argument(
        "--server",
        choices=("uvicorn", "granian"),
        default="uvicorn",
        help="HTTP server: uvicorn (default; httptools and uvloop) or granian "
        "(measured in bench/README.md; sends Server: granian)",
    )
    serve.set_defaults(command=_serve)

    demo = commands.add_parser(
        "demo",
        help="run bff with a built-in demo vendor and demo users on 127.0.0.1, and a demo "
        "partner page on localhost that embeds it",
    )
    demo.add_argument("--port", type=int, default=8000, help="port for bff (default 8000)")
    demo.add_argument(
        "--delivery",
        choices=DELIVERY_MODES,
        default="proxy",
        help="how the vendor token reaches the dashboard (default proxy)",
    )
    demo.set_defaults(command=_demo)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(command=_migrate)

    users = commands.add_parser("users", help="manage local users")
    user_commands = users.add_subparsers(title="user commands", required=True, metavar="ACTION")
    add = user_commands.add_parser("add", help="create a local user; password read from stdin")
    add.add_argument("email")
    add.add_argument("--admin", action="store_true", help="make the user an administrator")
    add.set_defaults(command=_users_add)
    map_ = user_commands.add_parser("map", help="map a user to a (tenant, sub-tenant) pair")
    map_.add_argument("email")
    map_.add_argument("--tenant", required=True)
    map_.add_argument("--sub-tenant", required=True)
    map_.set_defaults(command=_users_map)

    keys = commands.add_parser("api-keys", help="manage personal API keys")
    key_commands = keys.add_subparsers(title="API key commands", required=True, metavar="ACTION")
    create_key = key_commands.add_parser(
        "create", help="create a personal API key for a user; prints its token alone on stdout"
    )
    create_key.add_argument("email")
    create_key.add_argument("--handle", required=True, help="the key's name, unique per user")
    create_key.add_argument("--alias", help="an optional description")
    create_key.set_defaults(command=_api_keys_create)

    check = commands.add_parser("check", help="validate settings and call the vendor once")
    check.add_argument("--tenant", required=True, help="tenant id to request a token for")
    check.add_argument("--sub-tenant", required=True, help="sub-tenant id to request a token for")
    check.set_defaults(command=_check)

    reencrypt = commands.add_parser(
        "reencrypt", help="re-encrypt every stored secret with the newest BFF_ENCRYPTION_KEYS key"
    )
    reencrypt.set_defaults(command=_reencrypt)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from bff.app import create_app
    from bff.logs import configure_logging
    from bff.serve import ServeOptions, check_workers, run
    from bff.web.dashboard.delivery import check_proxy_origin

    settings = Settings.from_env()
    check_workers(settings, args.workers)
    check_proxy_origin(settings)
    configure_logging(settings.log_level)
    # Each worker builds its own app; this one only fails fast, in one line, on what
    # only the app checks.
    create_app(settings)
    # Once, before any worker: SQLite is migrated here, PostgreSQL must be at head
    # already (`bff migrate`), so workers and instances never race to migrate it.
    _with_database(settings, _schema_ready)
    run(
        ServeOptions(
            host=args.host,
            port=args.port,
            workers=args.workers,
            forwarded_allow_ips=args.forwarded_allow_ips,
            server=args.server,
        )
    )
    return 0


async def _schema_ready(database: Database) -> None:
    """Nothing more to do: ``_with_database`` has prepared the schema."""


def _demo(args: argparse.Namespace) -> int:
    from bff.demo.run import run
    from bff.logs import configure_logging

    configure_logging("WARNING")
    return run(args.port, args.delivery, sys.stdout)


def _migrate(args: argparse.Namespace) -> int:
    from bff.store.database import Database
    from bff.store.migrate import current_revision, upgrade

    settings = Settings.from_env()

    async def run() -> str | None:
        database = Database.for_settings(settings)
        try:
            await upgrade(database.engine)
            return await current_revision(database.engine)
        finally:
            await database.dispose()

    print(f"database is at revision {_run(run())}")
    return 0


# What the audit log names as the actor of a command-line change.
CLI_ACTOR = "cli"


def _users_add(args: argparse.Namespace) -> int:
    from bff import identifiers
    from bff.clock import SystemClock
    from bff.operations import users
    from bff.passwords import check_strength

    settings = Settings.from_env()
    email = identifiers.email(args.email)
    password = _read_password(sys.stdin)
    check_strength(password, email)  # before anything touches the database

    async def run(database: Database) -> None:
        await users.create_user(
            database,
            CLI_ACTOR,
            email,
            is_admin=args.admin,
            password=password,
            now=SystemClock().now(),
        )

    _with_database(settings, run)
    print(f"created {'admin' if args.admin else 'user'} {email}")
    return 0


def _users_map(args: argparse.Namespace) -> int:
    from bff.operations import mappings

    settings = Settings.from_env()

    async def run(database: Database) -> bool:
        return await mappings.map_pair(
            database, CLI_ACTOR, args.email, args.tenant, args.sub_tenant
        )

    created = _with_database(settings, run)
    state = "mapped" if created else "already mapped"
    pair = f"({args.tenant.strip()}, {args.sub_tenant.strip()})"
    print(f"{state}: {args.email.strip().lower()} -> {pair}")
    return 0


def _api_keys_create(args: argparse.Namespace) -> int:
    from bff.operations import api_keys

    settings = Settings.from_env()

    async def run(database: Database) -> api_keys.CreatedKey:
        return await api_keys.create_key(database, CLI_ACTOR, args.email, args.handle, args.alias)

    created = _with_database(settings, run)
    print(
        f"created API key {created.key.handle} for {args.email.strip().lower()}; "
        "the token below is shown only this once",
        file=sys.stderr,
    )
    print(created.token)
    return 0


def _check(args: argparse.Namespace) -> int:
    from bff.broker.check import run_check

    settings = Settings.from_env()
    return _run(run_check(settings, args.tenant, args.sub_tenant, sys.stdout))


def _reencrypt(args: argparse.Namespace) -> int:
    from bff.crypto import SecretBox
    from bff.store.connections import reencrypt_connections

    settings = Settings.from_env()
    box = SecretBox(settings.encryption_keys)

    async def run(database: Database) -> int:
        async with database.session() as session:
            return await reencrypt_connections(session, box)

    print(f"re-encrypted {_with_database(settings, run)} secrets with the newest key")
    return 0


def _read_password(stream: TextIO) -> str:
    if stream.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != first:
            raise BffError("the passwords do not match")
        return first
    return stream.readline().rstrip("\r\n")


def _with_database(settings: Settings, work: Callable[[Database], Coroutine[Any, Any, T]]) -> T:
    from bff.store.database import Database
    from bff.store.schema import prepare_schema

    async def run() -> T:
        database = Database.for_settings(settings)
        try:
            await prepare_schema(database)
            return await work(database)
        finally:
            await database.dispose()

    return _run(run())


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)
