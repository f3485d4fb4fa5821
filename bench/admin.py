"""The admin issue's benchmarks: a large CSV import under dashboard load, and the
users page with many users.

    .venv/bin/python -m bench.admin                          # both parts
    .venv/bin/python -m bench.admin --part import --rows 100000 --users 10000
    .venv/bin/python -m bench.admin --part import --rate 500  # paced load instead of closed loop
    .venv/bin/python -m bench.admin --part users --users 10000 --baseline-users 50

Everything runs as in :mod:`bench.web`: bff and the demo vendor as real uvicorn
servers on 127.0.0.1 (httptools and uvloop, what ``bff serve`` runs), bff logging
JSON lines at ``INFO`` to a null device, a SQLite file in a temporary directory,
and the load generator in a separate process. Users, tenants and sub-tenants are
bulk-inserted after the migrations (no password hashes); the two accounts that sign
in are seeded as in the demo.

*Import.* A signed-in user's ``GET /`` (warm vendor token) is loaded by
``--connections`` keep-alive connections, closed loop unless ``--rate`` paces them
(latency then counts from each request's scheduled start, so a stall is not hidden
by the requests it held back). Each round measures the load alone (the baseline),
then during a dry run and during an apply of the same file, sent by an admin's
personal API key to ``POST /api/v1/mappings/import``; the apply's rows are deleted
again before the next round. Only requests begun while the import was in flight
count for "during". The import's answer is checked (every row added, no error), so
a failed import cannot pass for a fast one.

To say where the time goes, the bench also watches bff's process: its event loop
(a task that sleeps 5 ms and records how late it wakes), the full (generation 2)
garbage collections (``gc.callbacks``), and the import's phases
(``_read_snapshot``, ``_make_plan`` and ``_apply`` of
``bff.operations.mapping_csv``, wrapped with timers); the dashboard requests begun
in each phase get their own p99. All three only observe.

*Users.* ``GET /admin/users`` (first page, a deep page, a search) signed in as an
admin, against the same URLs on a second bff with ``--baseline-users`` users, in
alternating rounds. When the console page is missing (404), the admin API's
``GET /api/v1/users`` with the same query is measured instead, and the table says so.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import gc
import math
import multiprocessing
import os
import re
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TextIO, TypeVar

import httpx2
import sqlalchemy
from sqlalchemy import delete, insert
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.web import signed_in_cookies
from bff.app import create_app
from bff.demo.run import prepare, settings_for
from bff.demo.seed import DemoAccount
from bff.demo.server import serve_in_thread
from bff.demo.vendor import VendorConfig, create_vendor_app
from bff.logs import configure_logging
from bff.operations import api_keys, mapping_csv
from bff.settings import Settings
from bff.store.database import Database
from bff.store.models import SubTenant, Tenant, User, UserScope

HOST = "127.0.0.1"
SERVER: dict[str, Any] = {"http": "httptools", "loop": "uvloop"}
TENANT_PREFIX = "bench-t"
SUB_TENANTS_PER_TENANT = 5
LAG_TICK = 0.005
# The import's phases, as bff.operations.mapping_csv runs them.
READ = "read users, pairs, mappings (loop)"
PLAN = "parse and plan (worker process)"
APPLY = "apply (statements)"
WRITE_INTERVAL = 0.5
MAX_LOAD_SECONDS = 600.0
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_BENCH_EMAIL = re.compile(r"user-\d+@bench\.test")

P = ParamSpec("P")
T = TypeVar("T")

# One request as the load generator saw it: when it began (time.monotonic, which
# every process on the machine shares) and how long it took, both in seconds.
Sample = tuple[float, float]


# The load generator, in its own process.


def load(
    url: str,
    headers: dict[str, str],
    connections: int,
    seconds: float,
    rate: float = 0.0,
    stop_file: str | None = None,
) -> tuple[list[Sample], int]:
    """Load ``url`` for ``seconds`` or until ``stop_file`` exists; the samples and the
    number of failed (non-200) answers. ``rate`` > 0 paces the connections to that many
    requests a second in all."""
    return asyncio.run(_load(url, headers, connections, seconds, rate, stop_file))


async def _load(
    url: str,
    headers: dict[str, str],
    connections: int,
    seconds: float,
    rate: float,
    stop_file: str | None,
) -> tuple[list[Sample], int]:
    # The same minimal keep-alive client as bench.web: a client library would cost
    # more CPU per request than the pages under test.
    parts = httpx2.URL(url)
    request = (
        f"GET {parts.raw_path.decode()} HTTP/1.1\r\nHost: {parts.netloc.decode()}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        + "\r\n"
    ).encode()
    samples: list[Sample] = []
    failures = 0
    started = time.monotonic()
    deadline = started + seconds
    stopped = False
    interval = connections / rate if rate > 0 else 0.0

    async def watch() -> None:
        nonlocal stopped
        while not stopped and stop_file is not None:
            if os.path.exists(stop_file):  # noqa: ASYNC240 - a stat every 10 ms
                stopped = True
            await asyncio.sleep(0.01)

    async def worker(index: int) -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection(parts.host, parts.port)
        scheduled = started + index * interval / connections
        try:
            while not stopped and time.monotonic() < deadline:
                if interval:
                    delay = scheduled - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    begun = scheduled
                    scheduled += interval
                else:
                    begun = time.monotonic()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                assert length, "the bench expects Content-Length responses"
                await reader.readexactly(int(length[1]))
                if head.startswith(b"HTTP/1.1 200 "):
                    samples.append((begun, time.monotonic() - begun))
                else:
                    failures += 1
        finally:
            writer.close()

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(worker(index) for index in range(connections)))
    stopped = True
    await watcher
    return samples, failures


# Figures.


@dataclasses.dataclass
class Window:
    """Samples gathered over ``seconds`` of wall time, and what bff's loop did then."""

    name: str
    samples: list[Sample] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    failures: int = 0
    lags: list[float] = dataclasses.field(default_factory=list)
    late: float = 0.0
    collections: list[float] = dataclasses.field(default_factory=list)
    writes: list[tuple[float, int]] = dataclasses.field(default_factory=list)

    def add(self, samples: Sequence[Sample], seconds: float, failures: int) -> None:
        self.samples += samples
        self.seconds += seconds
        self.failures += failures

    def watched(self, watch: Watch, begin: float, end: float) -> None:
        self.lags += watch.lags(begin, end)
        self.late += watch.late(begin, end)
        self.collections += watch.collections(begin, end)
        self.writes += watch.writes.between(begin, end)

    @property
    def rate(self) -> float:
        return len(self.samples) / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float:
        """In milliseconds."""
        ordered = sorted(latency for _begun, latency in self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    @property
    def worst(self) -> float:
        return max((latency for _begun, latency in self.samples), default=0.0) * 1000

    @property
    def stalled(self) -> float:
        """The share of the window bff's loop spent late by more than a tick."""
        return self.late / self.seconds if self.seconds else 0.0


def within(samples: Sequence[Sample], begin: float, end: float) -> list[Sample]:
    return [sample for sample in samples if begin <= sample[0] < end]


class LoopLag:
    """Runs a task in the app's event loop that sleeps :data:`LAG_TICK` and records how
    late it wakes: (when it went to sleep, seconds late). Started and stopped with the
    lifespan."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.samples: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        self._task = asyncio.get_running_loop().create_task(self._watch())
        try:
            await self.app(scope, receive, send)
        finally:
            self._task.cancel()

    async def _watch(self) -> None:
        while True:
            begun = time.monotonic()
            await asyncio.sleep(LAG_TICK)
            self.samples.append((begun, time.monotonic() - begun - LAG_TICK))


class FullCollections:
    """Records every full (generation 2) garbage collection in this process: (began,
    seconds). A collection holds the GIL, so every thread, bff's loop included, waits."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float]] = []
        self._begun = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._begun = time.monotonic()
        else:
            self.pauses.append((self._begun, time.monotonic() - self._begun))

    @contextmanager
    def installed(self) -> Iterator[None]:
        gc.callbacks.append(self._callback)
        try:
            yield
        finally:
            gc.callbacks.remove(self._callback)


@dataclasses.dataclass(frozen=True)
class Watch:
    """What bff's process did, for a window of time."""

    loop: LoopLag
    gc: FullCollections
    writes: WriteProbe

    def lags(self, begin: float, end: float) -> list[float]:
        """How late each wake-up overlapping the window was."""
        return [
            lag
            for at, lag in list(self.loop.samples)
            if _overlaps(at, at + LAG_TICK + lag, begin, end)
        ]

    def late(self, begin: float, end: float) -> float:
        """Seconds of the window during which the loop was late by more than a tick."""
        return sum(
            _overlap(at + LAG_TICK, at + LAG_TICK + lag, begin, end)
            for at, lag in list(self.loop.samples)
            if lag > LAG_TICK
        )

    def collections(self, begin: float, end: float) -> list[float]:
        """Full collections overlapping the window, whole."""
        return [
            pause for at, pause in list(self.gc.pauses) if _overlaps(at, at + pause, begin, end)
        ]


def _overlap(start: float, stop: float, begin: float, end: float) -> float:
    return max(0.0, min(stop, end) - max(start, begin))


def _overlaps(start: float, stop: float, begin: float, end: float) -> bool:
    return start < end and stop > begin


@dataclasses.dataclass
class Phases:
    """When each phase of the last import began and ended (time.monotonic)."""

    marks: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)

    def timed_async(
        self, name: str, function: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(function)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            begun = time.monotonic()
            try:
                return await function(*args, **kwargs)
            finally:
                self.marks[name] = (begun, time.monotonic())

        return wrapper

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Wrap the import's phases; module globals, looked up on every call."""
        originals = (mapping_csv._read_snapshot, mapping_csv._make_plan, mapping_csv._apply)
        mapping_csv._read_snapshot = self.timed_async(READ, mapping_csv._read_snapshot)
        mapping_csv._make_plan = self.timed_async(PLAN, mapping_csv._make_plan)
        mapping_csv._apply = self.timed_async(APPLY, mapping_csv._apply)
        try:
            yield
        finally:
            mapping_csv._read_snapshot, mapping_csv._make_plan, mapping_csv._apply = originals


# Data.


def bench_email(index: int) -> str:
    return f"user-{index:04d}@bench.test"


def bench_pairs(count: int) -> list[tuple[str, str]]:
    return [
        (f"{TENANT_PREFIX}{index // SUB_TENANTS_PER_TENANT}", f"s{index % SUB_TENANTS_PER_TENANT}")
        for index in range(count)
    ]


def seed_bulk(database_url: str, users: int, pairs: Sequence[tuple[str, str]]) -> float:
    """Insert ``users`` users (no password) and the ``pairs`` with their tenants, in one
    transaction with SQLAlchemy core; the seconds it took."""
    begun = time.perf_counter()
    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.begin() as connection:
            if users:
                connection.execute(
                    insert(User),
                    [
                        {"email": bench_email(index), "password_hash": None}
                        for index in range(users)
                    ],
                )
            tenants = sorted({tenant for tenant, _sub in pairs})
            if tenants:
                connection.execute(insert(Tenant), [{"id": tenant} for tenant in tenants])
                connection.execute(insert(SubTenant), [{"tenant_id": t, "id": s} for t, s in pairs])
    finally:
        engine.dispose()
    return time.perf_counter() - begun


def mappings_csv(rows: int, users: int, pairs: Sequence[tuple[str, str]]) -> bytes:
    """``rows`` mappings, user by user, every user mapped to the same pairs."""
    lines = ["email,tenant_id,sub_tenant_id"]
    for index in range(rows):
        tenant, sub_tenant = pairs[index % len(pairs)]
        lines.append(f"{bench_email(index // len(pairs) % users)},{tenant},{sub_tenant}")
    return ("\n".join(lines) + "\n").encode()


def forget_imported(database_url: str) -> None:
    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                delete(UserScope).where(UserScope.tenant_id.like(f"{TENANT_PREFIX}%"))
            )
    finally:
        engine.dispose()


# Servers.


@dataclasses.dataclass(frozen=True)
class Bff:
    url: str
    settings: Settings
    lag: LoopLag
    api_key: str
    seconds_to_seed: float


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


def _password() -> str:
    return f"bench-{secrets.token_urlsafe(12)}"


async def _prepare(
    settings: Settings, accounts: tuple[DemoAccount, ...], admin: DemoAccount
) -> str:
    await prepare(settings, accounts)
    database = Database(settings.database_url)
    try:
        created = await api_keys.create_key(database, "bench", admin.email, "bench")
    finally:
        await database.dispose()
    return created.token


def start_bff(
    stack: ExitStack,
    vendor: VendorConfig,
    vendor_url: str,
    database: Path,
    accounts: tuple[DemoAccount, ...],
    admin: DemoAccount,
    users: int,
    pairs: Sequence[tuple[str, str]],
) -> Bff:
    port = _free_port()
    settings = settings_for(vendor, vendor_url, port, database, "post")
    token = asyncio.run(_prepare(settings, accounts, admin))
    seconds = seed_bulk(settings.database_url, users, pairs)
    lag = LoopLag(create_app(settings))
    url = stack.enter_context(serve_in_thread(lag, host=HOST, port=port, **SERVER))
    return Bff(url, settings, lag, token, seconds)


def admin_cookies(url: str, account: DemoAccount) -> dict[str, str]:
    """Sign in through the /login form; the session cookies."""
    with httpx2.Client(base_url=url, timeout=30) as browser:
        token = _CSRF.search(browser.get("/login").text)
        assert token, "no sign-in form"
        data = {"email": account.email, "password": account.password, "csrf_token": token[1]}
        signed_in = browser.post("/login", data=data)
        assert signed_in.status_code == 303, signed_in.status_code
        return dict(browser.cookies.items())


def cookie_header(cookies: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}


# Part 1: the import.


@dataclasses.dataclass
class ImportRun:
    mode: str
    seconds: list[float] = dataclasses.field(default_factory=list)
    # Per phase, per round: (began after the request s, lasted s, loop's worst lag s,
    # share of the phase the loop was late, longest full collection s).
    phases: dict[str, list[tuple[float, float, float, float, float]]] = dataclasses.field(
        default_factory=dict
    )
    # Per phase, every round's dashboard requests begun during it.
    dashboard: dict[str, Window] = dataclasses.field(default_factory=dict)
    # The probe's writes begun during the import: (seconds, HTTP status).
    writes: list[tuple[float, int]] = dataclasses.field(default_factory=list)

    def record(
        self, marks: dict[str, tuple[float, float]], watch: Watch, samples: Sequence[Sample]
    ) -> None:
        begun, ended = marks["whole request"]
        spans = dict(marks)
        read, plan, apply = marks.get(READ), marks.get(PLAN), marks.get(APPLY)
        if read:
            spans["upload, sign-in"] = (begun, read[0])
        if apply:
            spans["audit, commit, answer"] = (apply[1], ended)
        elif plan:
            spans["answer"] = (plan[1], ended)
        self.seconds.append(ended - begun)
        self.writes += watch.writes.between(begun, ended)
        for name, (start, end) in spans.items():
            lags = watch.lags(start, end)
            late = watch.late(start, end)
            self.phases.setdefault(name, []).append(
                (
                    start - begun,
                    end - start,
                    max(lags, default=0.0),
                    late / (end - start) if end > start else 0.0,
                    max(watch.collections(start, end), default=0.0),
                )
            )
            self.dashboard.setdefault(name, Window(name)).add(
                within(samples, start, end), end - start, 0
            )


def post_import(bff: Bff, body: bytes, *, dry_run: bool, expected: int) -> tuple[float, float]:
    """Send the file; (began, ended) in time.monotonic. Fails unless every row is added."""
    with httpx2.Client(base_url=bff.url, timeout=MAX_LOAD_SECONDS) as client:
        begun = time.monotonic()
        response = client.post(
            f"/api/v1/mappings/import?mode=merge&dry_run={'true' if dry_run else 'false'}",
            content=body,
            headers={"Authorization": f"Bearer {bff.api_key}", "Content-Type": "text/csv"},
        )
        ended = time.monotonic()
    assert response.status_code == 200, (response.status_code, response.text[:500])
    report = response.json()
    assert report["errors"] == [], report["errors"][:5]
    assert report["added"] == expected, report
    assert report["applied"] is (not dry_run), report
    return begun, ended


class WriteProbe:
    """An admin creating a tenant through the API every :data:`WRITE_INTERVAL` s, from a
    thread of the bench: how long any write waits while an import holds the database
    (SQLite has one writer at a time). Samples: (began, seconds, HTTP status or 0)."""

    def __init__(self, bff: Bff) -> None:
        self.bff = bff
        self.samples: list[tuple[float, float, int]] = []

    @contextmanager
    def running(self) -> Iterator[None]:
        stop = threading.Event()
        thread = threading.Thread(target=self._run, args=(stop,), name="write-probe", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _run(self, stop: threading.Event) -> None:
        auth = {"Authorization": f"Bearer {self.bff.api_key}"}
        with httpx2.Client(base_url=self.bff.url, headers=auth, timeout=60) as client:
            count = 0
            while not stop.is_set():
                begun = time.monotonic()
                try:
                    response = client.post("/api/v1/tenants", json={"id": f"probe-{count}"})
                    status = response.status_code
                except httpx2.HTTPError:
                    status = 0
                self.samples.append((begun, time.monotonic() - begun, status))
                count += 1
                stop.wait(WRITE_INTERVAL)

    def between(self, begin: float, end: float) -> list[tuple[float, int]]:
        """The writes begun in the window (any write an import holds up begins after the
        import's first insert, inside its window)."""
        return [
            (seconds, status) for at, seconds, status in list(self.samples) if begin <= at < end
        ]


def run_import(args: argparse.Namespace, out: TextIO) -> int:
    pairs = bench_pairs(math.ceil(args.rows / args.users))
    viewer = DemoAccount("viewer@bench.test", _password(), False, (("acme", "north"),))
    admin = DemoAccount("admin@bench.test", _password(), True, ())
    body = mappings_csv(args.rows, args.users, pairs)
    windows = {
        name: Window(name) for name in ("no import (baseline)", "during dry run", "during apply")
    }
    runs = {
        name: ImportRun(name)
        for name in (
            "dry run, no load",
            "apply, no load",
            "dry run, under load",
            "apply, under load",
        )
    }
    phases = Phases()
    collections = FullCollections()
    with ExitStack() as stack:
        null = stack.enter_context(open(os.devnull, "w"))
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        vendor = VendorConfig()
        vendor_url = stack.enter_context(serve_in_thread(create_vendor_app(vendor), host=HOST))
        configure_logging("INFO", null)
        bff = start_bff(
            stack,
            vendor,
            vendor_url,
            directory / "import.db",
            (viewer, admin),
            admin,
            args.users,
            pairs,
        )
        watch = Watch(bff.lag, collections, WriteProbe(bff))
        stack.enter_context(phases.installed())
        stack.enter_context(collections.installed())
        cookies, _page = signed_in_cookies(bff.url, viewer)
        headers = cookie_header(cookies)
        page = f"{bff.url}/"
        spawn = multiprocessing.get_context("spawn")
        pool = stack.enter_context(ProcessPoolExecutor(1, mp_context=spawn))
        pool.submit(load, page, headers, args.connections, 0.5, args.rate).result()
        begun, ended = post_import(bff, body, dry_run=True, expected=args.rows)
        out.write(
            f"seeded {args.users:,} users and {len(pairs)} pairs in {bff.seconds_to_seed:.2f} s; "
            f"the file: {args.rows:,} rows, {len(body) / 1e6:.1f} MB; the first dry run "
            f"(its worker process starts) took {ended - begun:.2f} s\n"
        )
        stack.enter_context(watch.writes.running())

        def send(dry_run: bool) -> dict[str, tuple[float, float]]:
            phases.marks.clear()
            begun, ended = post_import(bff, body, dry_run=dry_run, expected=args.rows)
            return {**phases.marks, "whole request": (begun, ended)}

        for round_ in range(args.rounds):
            samples, failures = pool.submit(
                load, page, headers, args.connections, args.seconds, args.rate
            ).result()
            baseline = windows["no import (baseline)"]
            baseline.add(samples, args.seconds, failures)
            if samples:
                baseline.watched(watch, samples[0][0], samples[-1][0])
            runs["dry run, no load"].record(send(True), watch, [])
            runs["apply, no load"].record(send(False), watch, [])
            forget_imported(bff.settings.database_url)
            for dry_run, window, run in (
                (True, windows["during dry run"], runs["dry run, under load"]),
                (False, windows["during apply"], runs["apply, under load"]),
            ):
                stop = directory / f"stop-{round_}-{dry_run}"
                loading: Future[tuple[list[Sample], int]] = pool.submit(
                    load, page, headers, args.connections, MAX_LOAD_SECONDS, args.rate, str(stop)
                )
                time.sleep(0.5)
                marks = send(dry_run)
                stop.touch()
                samples, failures = loading.result()
                run.record(marks, watch, samples)
                begun, ended = marks["whole request"]
                window.add(within(samples, begun, ended), ended - begun, failures)
                window.watched(watch, begun, ended)
            forget_imported(bff.settings.database_url)
        report_import(windows, runs, args, out)
    failed = sum(status != 201 for _at, _seconds, status in watch.writes.samples)
    if failed:
        out.write(
            f"\n{failed} of the admin's writes failed (SQLite waits busy_timeout for the "
            "import's transaction, then gives up)\n"
        )
    return 1 if failed else 0


def report_import(
    windows: dict[str, Window], runs: dict[str, ImportRun], args: argparse.Namespace, out: TextIO
) -> None:
    load_kind = f"paced at {args.rate:g} req/s" if args.rate else "closed loop"
    out.write(
        f"\nimport: {args.rows:,} rows ({args.users:,} users), mode=merge, {args.rounds} round(s); "
        f"dashboard GET / on {args.connections} connections, {load_kind}\n\n"
    )
    out.write("| import | wall time s: median (min-max) |\n|---|---:|\n")
    for run in runs.values():
        out.write(
            f"| {run.mode} | {statistics.median(run.seconds):.2f} "
            f"({min(run.seconds):.2f}-{max(run.seconds):.2f}) |\n"
        )
    out.write(
        "\n| dashboard GET / | requests | req/s | p50 ms | p99 ms | max ms "
        "| loop late > 5 ms | loop's worst lag ms | full GCs: count, longest ms | failures |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    for window in windows.values():
        out.write(
            f"| {window.name} | {len(window.samples)} | {window.rate:.0f} | "
            f"{window.quantile(0.5):.2f} | {window.quantile(0.99):.2f} | {window.worst:.1f} | "
            f"{window.stalled:.0%} | {max(window.lags, default=0.0) * 1000:.1f} | "
            f"{len(window.collections)}, {max(window.collections, default=0.0) * 1000:.0f} | "
            f"{window.failures} |\n"
        )
    baseline = windows["no import (baseline)"]
    for name in ("during dry run", "during apply"):
        during = windows[name]
        ratio = during.quantile(0.99) / baseline.quantile(0.99) if baseline.samples else 0.0
        out.write(f"\np99 {name} / p99 baseline: **{ratio:.2f} x**")
    out.write(
        f"\n\n| an admin's write (create a tenant, every {WRITE_INTERVAL:g} s) | writes "
        "| p50 ms | max ms | failed |\n|---|---:|---:|---:|---:|\n"
    )
    for name, writes in (
        ("no import (baseline)", baseline.writes),
        *((f"during {run.mode}", run.writes) for run in runs.values()),
    ):
        waits = [seconds for seconds, _status in writes]
        median = statistics.median(waits) * 1000 if waits else 0.0
        out.write(
            f"| {name} | {len(waits)} | {median:.1f} | "
            f"{max(waits, default=0.0) * 1000:.0f} | "
            f"{sum(status != 201 for _seconds, status in writes)} |\n"
        )
    out.write(
        "\n| phase (median of rounds) | starts at s | lasts s | loop's worst lag ms "
        "| loop late > 5 ms | longest full GC ms | dashboard requests begun | their p99 ms |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    for run in runs.values():
        ordered = sorted(
            run.phases.items(),
            key=lambda item: statistics.median(figures[0] for figures in item[1]),
        )
        for name, figures in ordered:
            start, lasted, worst, late, collection = (
                statistics.median(column) for column in zip(*figures, strict=True)
            )
            dashboard = run.dashboard[name]
            p99 = f"{dashboard.quantile(0.99):.1f}" if dashboard.samples else "-"
            out.write(
                f"| {run.mode}: {name} | {start:.2f} | {lasted:.2f} | {worst * 1000:.1f} "
                f"| {late:.0%} | {collection * 1000:.0f} | {len(dashboard.samples)} | {p99} |\n"
            )


# Part 2: the users page.


def run_users(args: argparse.Namespace, out: TextIO) -> int:
    admin = DemoAccount("admin@bench.test", _password(), True, ())
    with ExitStack() as stack:
        null = stack.enter_context(open(os.devnull, "w"))
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        vendor = VendorConfig()
        vendor_url = stack.enter_context(serve_in_thread(create_vendor_app(vendor), host=HOST))
        configure_logging("INFO", null)
        servers = {
            count: start_bff(
                stack,
                vendor,
                vendor_url,
                directory / f"users-{count}.db",
                (admin,),
                admin,
                count,
                [],
            )
            for count in (args.users, args.baseline_users)
        }
        sessions = {count: admin_cookies(bff.url, admin) for count, bff in servers.items()}
        console = httpx2.get(
            f"{servers[args.users].url}/admin/users",
            headers=cookie_header(sessions[args.users]),
            timeout=30,
        )
        if console.status_code == 200:
            path = "/admin/users"
            credentials = {count: cookie_header(jar) for count, jar in sessions.items()}
        else:
            out.write(
                f"GET /admin/users answered {console.status_code}: measuring the admin API's "
                "GET /api/v1/users instead\n"
            )
            path = "/api/v1/users"
            credentials = {
                count: {"Authorization": f"Bearer {bff.api_key}"} for count, bff in servers.items()
            }
        queries = {"first page": "", "deep page": "?page=100", "search": "?q=user-07"}
        shown: dict[tuple[str, int], int] = {}
        for label, query in queries.items():
            for count, bff in servers.items():
                answer = httpx2.get(
                    f"{bff.url}{path}{query}", headers=credentials[count], timeout=30
                )
                assert answer.status_code == 200, (count, label, answer.status_code)
                shown[label, count] = len(set(_BENCH_EMAIL.findall(answer.text)))
        spawn = multiprocessing.get_context("spawn")
        pool = stack.enter_context(ProcessPoolExecutor(1, mp_context=spawn))
        results = {key: Window(key[0]) for key in shown}
        for query in queries.values():
            for count, bff in servers.items():
                pool.submit(
                    load, f"{bff.url}{path}{query}", credentials[count], args.page_connections, 0.3
                ).result()
        for _ in range(args.rounds):
            for label, query in queries.items():
                for count, bff in servers.items():
                    samples, failures = pool.submit(
                        load,
                        f"{bff.url}{path}{query}",
                        credentials[count],
                        args.page_connections,
                        args.page_seconds,
                    ).result()
                    results[label, count].add(samples, args.page_seconds, failures)
        report_users(path, queries, results, shown, args, out)
    return 0


def report_users(
    path: str,
    queries: dict[str, str],
    results: dict[tuple[str, int], Window],
    shown: dict[tuple[str, int], int],
    args: argparse.Namespace,
    out: TextIO,
) -> None:
    big, small = args.users, args.baseline_users
    out.write(
        f"\nusers: {path}, {args.rounds} round(s) x {args.page_seconds:g} s per page, "
        f"{args.page_connections} connections, closed loop\n\n"
        f"| page | users | rows shown | req/s | p50 ms | p99 ms | failures "
        f"| req/s {big:,} / {small:,} | p99 {big:,} / {small:,} |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    for label, query in queries.items():
        many, few = results[label, big], results[label, small]
        for count, window in ((big, many), (small, few)):
            ratios = (
                f"**{many.rate / few.rate:.2f}** | {many.quantile(0.99) / few.quantile(0.99):.2f}"
                if count == big and few.rate and few.samples
                else " | "
            )
            out.write(
                f"| {label} `{path}{query}` | {count:,} | {shown[label, count]} | "
                f"{window.rate:.0f} | {window.quantile(0.5):.2f} | {window.quantile(0.99):.2f} | "
                f"{window.failures} | {ratios} |\n"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--part", choices=("import", "users", "all"), default="all")
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the imported file")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="import: the baseline's length per round"
    )
    parser.add_argument("--connections", type=int, default=8, help="import: dashboard load")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="import: pace the load (req/s; 0: closed loop)"
    )
    parser.add_argument("--baseline-users", type=int, default=10, help="users: the baseline's")
    parser.add_argument("--page-seconds", type=float, default=3.0, help="users: per page per round")
    parser.add_argument("--page-connections", type=int, default=4)
    args = parser.parse_args(argv)
    status = 0
    if args.part in ("import", "all"):
        status |= run_import(args, sys.stdout)
    if args.part in ("users", "all"):
        status |= run_users(args, sys.stdout)
    return status


if __name__ == "__main__":
    sys.exit(main())
