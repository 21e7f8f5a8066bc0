"""Dashboard API under load: 50 concurrent clients for 30 s on /api/metrics and on /api/alerts, each client
sending its next request as soon as the previous one is answered (closed loop). Prints p50/p95/p99 latency
and requests/s per endpoint, and appends them to bench/RESULTS.md. Target: p95 under 50 ms.

Starts its own PostgreSQL and Kafka (free ports, temporary directory), puts 10,000 alerts, landed windows,
segments and events in place, and runs the dashboard as `lakehouse up` does (`python -m dashboard`, its own
process), so the load generator (this process, aiohttp) and the server share the machine's cores.

    .venv/bin/python -m bench.dashboard_api [--clients 50] [--duration-s 30] [--alerts 10000]

Three loads: /api/metrics; /api/alerts (the newest page, as every open page asks for it); and /api/alerts
with a different user filter on every request, which no cache serves (the database answers each).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import aiohttp

from bench.common import Services, append_result
from resources.warehouse import WarehouseResource
from stack.services import Dashboard
from tests import dashboard_data as data


@contextmanager
def dashboard_stack(alerts: int) -> Iterator[tuple[Services, str]]:
    """PostgreSQL, Kafka and the dashboard, with `alerts` alerts and the other tables in place."""
    with Services(kafka=True, postgres=True) as services:
        cfg = services.cfg
        data.seed_alerts(cfg.postgres_url, alerts)
        data.seed_tables(cfg.postgres_url)
        data.produce_events(cfg.kafka_bootstrap, 2000)
        data.write_quarantine(WarehouseResource(root=cfg.warehouse).table_path("bronze/quarantine"))
        dashboard = Dashboard(cfg)
        services.started.append(dashboard)
        services.supervisor.start(dashboard.spec())
        yield services, dashboard.endpoint()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def load(base: str, path_for: Callable[[int], str], clients: int, duration_s: float) -> dict:
    latencies: list[float] = []
    errors: dict[int | str, int] = {}
    counter = iter(range(10**9))
    deadline = time.monotonic() + duration_s
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(base, connector=connector) as session:
        async def client() -> None:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                try:
                    async with session.get(path_for(next(counter))) as response:
                        await response.read()
                        status = response.status
                except aiohttp.ClientError as exc:
                    status = type(exc).__name__
                elapsed = time.perf_counter() - start
                if status == 200:
                    latencies.append(elapsed)
                else:
                    errors[status] = errors.get(status, 0) + 1

        began = time.monotonic()
        await asyncio.gather(*[client() for _ in range(clients)])
        took = time.monotonic() - began
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / took,
            **{f"p{q}": 1000 * percentile(latencies, q) for q in (50, 95, 99)}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard_api", description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--duration-s", type=float, default=30.0)
    p.add_argument("--alerts", type=int, default=10_000)
    args = p.parse_args(argv)
    loads = {
        "/api/metrics": lambda i: "/api/metrics",
        "/api/alerts (newest 50)": lambda i: "/api/alerts?limit=50",
        # a distinct `until` per request: every request is a new query for the database
        "/api/alerts (user filter, uncached)": lambda i: (f"/api/alerts?user_id=u-{i % (args.alerts // 10):06d}"
                                                          f"&until=2100-01-01T00:00:00.{i % 1_000_000:06d}Z"),
    }
    lines = [f"{args.clients} concurrent clients, {args.duration_s:.0f} s per load, {args.alerts:,} alerts stored"]
    with dashboard_stack(args.alerts) as (_, base):
        for name, path_for in loads.items():
            asyncio.run(load(base, path_for, args.clients, 3.0))  # warm-up: connection pools, page cache
            r = asyncio.run(load(base, path_for, args.clients, args.duration_s))
            line = (f"{name:<38} p50 {r['p50']:6.1f} ms  p95 {r['p95']:6.1f} ms  p99 {r['p99']:6.1f} ms  "
                    f"{r['rps']:7.0f} req/s  ({r['requests']:,} ok, errors {r['errors'] or 0})")
            print(line, flush=True)
            lines.append(line)
    command = "-m bench.dashboard_api " + " ".join(argv if argv is not None else sys.argv[1:])
    append_result("Dashboard API under load (bench/dashboard_api.py)", command.strip(), lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
