"""``bff serve``: the production HTTP server around :func:`bff.app.create_app`.

uvicorn with httptools and uvloop (both in the locked set; where they cannot be
installed uvicorn falls back by itself to its pure-Python parser and asyncio).
``--server granian`` runs Granian instead: ``bench/server.py`` measured both against
the same app (``bench/README.md``, "Server"); Granian serves a bare page faster but
bff's page not reliably faster, and it always sends ``Server: granian``, which bff
does not disclose. So uvicorn is the default.

Both run the app in worker processes made by :func:`app_from_env`, which reads the
settings again in each worker, so one worker or N are the same code path. The
parent brings the schema up to date (or checks it) once before any worker starts.
On SIGTERM both servers stop accepting connections, let requests in flight finish
(for at most :data:`GRACEFUL_SHUTDOWN_SECONDS`), then run the app's shutdown, which
closes the broker (abandoning its background renewals), the Redis link and the
database; the process then exits 0.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
from typing import Literal

from starlette.types import ASGIApp

from bff.errors import ConfigurationError
from bff.settings import Settings

ServerName = Literal["granian", "uvicorn"]
SERVERS: tuple[ServerName, ...] = ("granian", "uvicorn")

# Under most orchestrators' 30 s between SIGTERM and SIGKILL.
GRACEFUL_SHUTDOWN_SECONDS = 25
# How the parent tells Granian's workers which proxies to believe (uvicorn takes it
# as an argument); not a setting.
_TRUSTED_PROXIES = "_BFF_FORWARDED_ALLOW_IPS"
_FACTORY = "bff.serve:app_from_env"


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # Addresses whose X-Forwarded-For / -Proto are believed; None believes nobody.
    forwarded_allow_ips: str | None = None
    server: ServerName = "uvicorn"
    # The app factory, as "module:function" (benches serve other apps the same way).
    factory: str = _FACTORY


def check_workers(settings: Settings, workers: int) -> None:
    """Several processes share tokens, revocations and limits only through Redis."""
    if workers < 1:
        raise ConfigurationError("--workers", "must be a whole number of at least 1")
    if workers > 1 and settings.redis_url is None:
        raise ConfigurationError(
            "BFF_REDIS_URL",
            f"is needed for --workers {workers}: processes share tokens, revocations "
            "and limits only through Redis",
        )


def run(options: ServeOptions) -> None:
    """Serve until SIGTERM / SIGINT. The settings are checked before this is called."""
    if options.server == "granian":
        _run_granian(options)
    else:
        _run_uvicorn(options)


def app_from_env() -> ASGIApp:
    """The app of one worker process, from the environment / ``.env`` settings."""
    from bff.app import create_app
    from bff.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    # bff writes its own access record (bff.web.access_log); configure_logging has just
    # re-attached uvicorn's, which uvicorn had switched off before loading the app.
    logging.getLogger("uvicorn.access").disabled = True
    app: ASGIApp = create_app(settings)
    trusted = os.environ.get(_TRUSTED_PROXIES)
    if trusted:
        from granian.utils.proxies import wrap_asgi_with_proxy_headers

        app = wrap_asgi_with_proxy_headers(app, trusted)
    return app


def _run_granian(options: ServeOptions) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops

    if options.forwarded_allow_ips is not None:
        os.environ[_TRUSTED_PROXIES] = options.forwarded_allow_ips
    else:
        os.environ.pop(_TRUSTED_PROXIES, None)
    # Granian configures its loggers at start; route its own lines through bff's JSON
    # handler on the root logger (configured by the caller) instead of plain stdout.
    quiet = {"handlers": [], "propagate": True}
    Granian(
        options.factory,
        factory=True,
        address=options.host,
        port=options.port,
        interface=Interfaces.ASGI,
        workers=options.workers,
        loop=Loops.uvloop if _has_uvloop() else Loops.asyncio,
        http=HTTPModes.http1,
        websockets=False,
        backlog=2048,
        log_dictconfig={
            "version": 1,
            "disable_existing_loggers": False,
            "loggers": {"_granian": quiet, "granian.access": quiet},
        },
        log_access=False,
        workers_kill_timeout=GRACEFUL_SHUTDOWN_SECONDS,
    ).serve()


def _run_uvicorn(options: ServeOptions) -> None:
    import uvicorn

    # uvicorn raises the SIGTERM it caught again once it has shut down gracefully, so
    # the process would end "killed by SIGTERM"; it has stopped cleanly: exit 0.
    signal.signal(signal.SIGTERM, _stopped_already)
    uvicorn.run(
        options.factory,
        factory=True,
        host=options.host,
        port=options.port,
        workers=options.workers,
        log_config=None,
        # Without trusted proxies, a forged X-Forwarded-For must not pick the client
        # address that sign-in attempts are rate-limited by.
        proxy_headers=options.forwarded_allow_ips is not None,
        forwarded_allow_ips=options.forwarded_allow_ips,
        server_header=False,
        # bff writes its own access record (bff.web.access_log), cheaper and redacted.
        access_log=False,
        ws="none",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


def _stopped_already(_signal: int, _frame: object) -> None:
    return None


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True
