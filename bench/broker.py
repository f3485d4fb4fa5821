"""Token broker benchmark against the demo vendor running as a real server.

    .venv/bin/python -m bench.broker            # full length (about 4 minutes)
    .venv/bin/python -m bench.broker --quick    # the 60 s scenarios shortened to 12 s
    .venv/bin/python -m bench.broker --only 1 2

Scenarios (issue 3):
1. 1,000 concurrent cold requests for one pair cause exactly one upstream call.
2. 2,000 distinct cold pairs never exceed the upstream concurrency bound, and a
   vendor that answers 429 above that bound never does.
3. 10 s tokens from a vendor taking 2 s per call: after warm-up no request waits
   on the vendor (maximum `get` latency against the vendor latency).
4. A vendor outage while tokens are valid (refreshes failing during it) causes
   zero failed requests.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections.abc import Awaitable, Sequence

import anyio
import httpx2
from prometheus_client import CollectorRegistry

from bff.broker.broker import TokenBroker
from bff.broker.connectors import HeaderExchangeConnector
from bff.broker.metrics import BrokerMetrics
from bff.broker.policy import BrokerPolicy
from bff.broker.scope import TokenScope, VendorToken
from bff.clock import SystemClock
from bff.demo.faults import Fault
from bff.demo.server import serve_in_thread
from bff.demo.vendor import VendorConfig, create_vendor_app
from bff.errors import UpstreamError


@dataclasses.dataclass
class Load:
    """What a set of looping clients saw."""

    latencies: list[float] = dataclasses.field(default_factory=list)
    failures: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies) + self.failures

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class Bench:
    def __init__(self, vendor: VendorConfig, base_url: str, client: httpx2.AsyncClient) -> None:
        self.vendor = vendor
        self.base_url = base_url
        self.client = client

    def broker(
        self,
        *,
        max_concurrency: int = 8,
        policy: BrokerPolicy | None = None,
        background: bool = True,
    ) -> tuple[TokenBroker, CollectorRegistry]:
        registry = CollectorRegistry()
        connector = HeaderExchangeConnector(
            self.base_url, self.vendor.api_key, self.vendor.api_secret
        )
        broker = TokenBroker(
            {"default": connector},
            self.client,
            BrokerMetrics(registry),
            SystemClock(),
            policy=policy,
            timeout=30.0,
            max_concurrency=max_concurrency,
            background=background,
        )
        return broker, registry

    def reset_vendor(self, **settings: object) -> None:
        defaults = VendorConfig()
        for name in ("token_lifetime", "latency", "fault", "max_in_flight"):
            setattr(self.vendor, name, settings.get(name, getattr(defaults, name)))
        self.vendor.faults.clear()
        self.vendor.reset_counters()


def scope(tenant: int, sub: int = 0) -> TokenScope:
    return TokenScope("default", f"tenant-{tenant}", f"sub-{sub}")


async def scenario_1(bench: Bench) -> bool:
    latency = 0.2
    bench.reset_vendor(latency=latency)
    broker, _ = bench.broker()
    started = time.perf_counter()
    tokens = await _gather([broker.get(scope(1)) for _ in range(1000)])
    elapsed = time.perf_counter() - started
    await broker.aclose()
    calls = bench.vendor.calls["token"]
    values = {t.value for t in tokens}
    print("## 1. 1,000 concurrent cold requests, one pair")
    print(f"upstream calls: {calls} (expected 1); distinct tokens handed out: {len(values)}")
    print(
        f"all 1,000 answered in {elapsed:.3f} s = {elapsed / latency:.2f} x the vendor "
        f"latency ({latency:.1f} s)"
    )
    return calls == 1 and len(values) == 1


async def scenario_2(bench: Bench) -> bool:
    bound, pairs, latency = 8, 2000, 0.02
    bench.reset_vendor(latency=latency, max_in_flight=bound)
    baseline = await _direct_calls(bench, pairs, bound)
    bench.reset_vendor(latency=latency, max_in_flight=bound)
    broker, registry = bench.broker(max_concurrency=bound)
    started = time.perf_counter()
    results = await _settle([broker.get(scope(i, i % 7)) for i in range(pairs)])
    elapsed = time.perf_counter() - started
    await broker.aclose()
    failed = sum(isinstance(r, BaseException) for r in results)
    ideal = pairs / bound * latency
    print(f"## 2. {pairs:,} distinct cold pairs, upstream concurrency bound {bound}")
    print(
        f"vendor peak in flight: {bench.vendor.peak_in_flight} (bound {bound}); "
        f"vendor 429s: {bench.vendor.statuses[429]}; failed gets: {failed}; "
        f"upstream calls: {bench.vendor.calls['token']}"
    )
    print(
        f"took {elapsed:.2f} s = {elapsed / baseline:.2f} x the baseline {baseline:.2f} s "
        f"(the same number of calls made directly, {bound} at a time; "
        f"the ideal is {ideal:.2f} s = {pairs:,} x {latency * 1000:.0f} ms / {bound})"
    )
    ok_calls = registry.get_sample_value(
        "bff_upstream_calls_total", {"connection": "default", "outcome": "ok"}
    )
    return (
        bench.vendor.peak_in_flight <= bound
        and bench.vendor.statuses[429] == 0
        and failed == 0
        and ok_calls == pairs
    )


async def scenario_3(bench: Bench, duration: float) -> bool:
    lifetime, latency, pairs, clients = 10, 2.0, 20, 50
    bench.reset_vendor(latency=latency, token_lifetime=lifetime)
    broker, registry = bench.broker()
    warm = time.perf_counter()
    await _gather([broker.get(scope(i)) for i in range(pairs)])
    warm_up = time.perf_counter() - warm
    load = await _run_load(broker, pairs, clients, duration)
    refreshes = (
        registry.get_sample_value(
            "bff_token_refreshes_total", {"connection": "default", "outcome": "ok"}
        )
        or 0
    )
    await broker.aclose()
    worst = max(load.latencies)
    print(
        f"## 3. {lifetime} s tokens, vendor latency {latency:.0f} s, {duration:.0f} s of "
        f"requests ({clients} clients, {pairs} pairs)"
    )
    print(f"warm-up (cold, waits on the vendor): {warm_up:.2f} s")
    print(
        f"after warm-up: {load.requests:,} requests, {load.failures} failed, "
        f"{refreshes:.0f} background refreshes"
    )
    print(
        f"get latency: p50 {load.quantile(0.5) * 1000:.3f} ms, "
        f"p99 {load.quantile(0.99) * 1000:.3f} ms, max {worst * 1000:.3f} ms "
        f"= {worst / latency:.5f} x the vendor latency"
    )
    return load.failures == 0 and worst < latency / 10 and refreshes >= pairs


async def scenario_4(bench: Bench, outage: float) -> bool:
    # Tokens outlive the outage, and their refresh falls inside it: every refresh
    # during the outage fails and is re-armed; the old tokens carry the load.
    lifetime = 2.5 * outage
    start = outage * 5 / 6
    pairs, clients = 100, 50
    bench.reset_vendor(token_lifetime=lifetime, latency=0.01)
    policy = BrokerPolicy(circuit_open_for=outage / 4)
    broker, registry = bench.broker(policy=policy)
    await _gather([broker.get(scope(i)) for i in range(pairs)])
    calls_before = bench.vendor.calls["token"]

    async def outage_window() -> None:
        await anyio.sleep(start)
        bench.vendor.fault = Fault("server_error")
        await anyio.sleep(outage)
        bench.vendor.fault = None

    async with anyio.create_task_group() as group:
        group.start_soon(outage_window)
        load = await _run_load(broker, pairs, clients, lifetime)
    failed_refreshes = (
        registry.get_sample_value(
            "bff_token_refreshes_total", {"connection": "default", "outcome": "failed"}
        )
        or 0
    )
    ok_refreshes = (
        registry.get_sample_value(
            "bff_token_refreshes_total", {"connection": "default", "outcome": "ok"}
        )
        or 0
    )
    await broker.aclose()
    print(f"## 4. {outage:.0f} s vendor outage (500 to every call) while tokens are valid")
    print(
        f"tokens of {lifetime:.0f} s for {pairs} pairs; outage from {start:.0f} s to "
        f"{start + outage:.0f} s; requests for {lifetime:.0f} s ({clients} clients)"
    )
    print(
        f"requests: {load.requests:,}, failed: {load.failures}; max get latency "
        f"{max(load.latencies) * 1000:.3f} ms"
    )
    print(
        f"refreshes: {failed_refreshes:.0f} failed (re-armed), {ok_refreshes:.0f} succeeded; "
        f"vendor answered 500 {bench.vendor.statuses[500]} times "
        f"({bench.vendor.calls['token'] - calls_before} calls after warm-up)"
    )
    return load.failures == 0 and ok_refreshes >= pairs


async def _run_load(broker: TokenBroker, pairs: int, clients: int, duration: float) -> Load:
    load = Load()
    deadline = time.perf_counter() + duration

    async def client(index: int) -> None:
        n = index
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await broker.get(scope(n % pairs))
            except UpstreamError:
                load.failures += 1
            else:
                load.latencies.append(time.perf_counter() - started)
            n += 1
            await anyio.sleep(0.005)

    async with anyio.create_task_group() as group:
        for index in range(clients):
            group.start_soon(client, index)
    return load


async def _gather(coroutines: Sequence[Awaitable[VendorToken]]) -> list[VendorToken]:
    # One task per request, all started at once: truly concurrent callers.
    return list(await asyncio.gather(*coroutines))


async def _settle(
    coroutines: Sequence[Awaitable[VendorToken]],
) -> list[VendorToken | BaseException]:
    return list(await asyncio.gather(*coroutines, return_exceptions=True))


async def _direct_calls(bench: Bench, count: int, bound: int) -> float:
    """The baseline: the same calls straight through the shared client, no broker."""
    semaphore = asyncio.Semaphore(bound)
    headers = {"x-api-key": bench.vendor.api_key, "x-api-secret": bench.vendor.api_secret}
    url = f"{bench.base_url}/api/v1/partner/dashboard/auth/token"

    async def call(i: int) -> None:
        async with semaphore:
            response = await bench.client.get(
                url, headers={**headers, "x-tenant-id": f"base-{i}", "x-sub-tenant-id": "s"}
            )
            response.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(call(i) for i in range(count)))
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> int:
    duration = 12.0 if args.quick else 60.0
    vendor = VendorConfig()
    results: dict[int, bool] = {}
    with serve_in_thread(create_vendor_app(vendor)) as base_url:
        limits = httpx2.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx2.AsyncClient(limits=limits) as client:
            bench = Bench(vendor, base_url, client)
            scenarios = {
                1: lambda: scenario_1(bench),
                2: lambda: scenario_2(bench),
                3: lambda: scenario_3(bench, duration),
                4: lambda: scenario_4(bench, duration),
            }
            for number in args.only or sorted(scenarios):
                results[number] = await scenarios[number]()
                print(f"=> {'PASS' if results[number] else 'FAIL'}\n", flush=True)
    print("summary: " + ", ".join(f"{n}: {'pass' if ok else 'FAIL'}" for n, ok in results.items()))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorten the 60 s scenarios to 12 s")
    parser.add_argument("--only", type=int, nargs="+", choices=[1, 2, 3, 4])
    sys.exit(asyncio.run(main(parser.parse_args())))
