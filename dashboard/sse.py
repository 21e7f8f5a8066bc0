"""GET /api/stream: server-sent events for the live page.

    event: health   the component health (on connect, then with every tick)
    event: metrics  the /api/metrics body (on connect, then every TICK_S seconds)
    event: alert    one newly stored alert, as /api/alerts returns it (id: the alert id)

Alerts are pushed as PostgreSQL announces them (dashboard/feed.py); the ticks read the shared caches, so
many open pages cost no more than one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi.encoders import jsonable_encoder
from fastapi.sse import ServerSentEvent

from dashboard.snapshots import Dashboard

TICK_S = 3.0
RETRY_MS = 2000


async def events(dashboard: Dashboard) -> AsyncIterator[ServerSentEvent]:
    queue = dashboard.feed.subscribe()
    try:
        yield ServerSentEvent(comment="lakehouse dashboard stream", retry=RETRY_MS)
        next_tick = time.monotonic()
        while True:
            wait = next_tick - time.monotonic()
            if wait <= 0:
                health = asyncio.ensure_future(dashboard.health.get())  # its probes may take a second or two
                yield ServerSentEvent(event="metrics", data=jsonable_encoder(await dashboard.metrics.get()))
                yield ServerSentEvent(event="health", data=jsonable_encoder(await health))
                next_tick = time.monotonic() + TICK_S
                continue
            try:
                alert = await asyncio.wait_for(queue.get(), timeout=wait)
            except TimeoutError:
                continue
            yield ServerSentEvent(event="alert", data=alert, id=alert["alert_id"])
    finally:
        dashboard.feed.unsubscribe(queue)
