"""New alerts, pushed to every open stream as PostgreSQL stores them.

Migration 0003 makes every insert into `security_alerts` NOTIFY `security_alerts_stored` with the alert's
id at commit; one LISTEN connection per dashboard process wakes on it, reads the rows once and hands them
to each subscriber's queue. A catch-up read by `stored_at` (with an overlap for transactions that commit
out of order) runs when the channel is quiet and after every reconnect, so an alert is never missed, and
the ids already sent are remembered so none is sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta

import psycopg
from fastapi.encoders import jsonable_encoder

from dashboard.sources import Unavailable, first_line
from dashboard.sources import alerts as alert_rows
from dashboard.sources.database import Database

log = logging.getLogger("dashboard")

CHANNEL = "security_alerts_stored"
QUIET_S = 1.0  # catch up after this long without a notification
OVERLAP = timedelta(seconds=30)  # rows may commit this much later than their stored_at
BATCH_S = 0.01  # after a first notification, gather those that follow within this long
_REMEMBERED = 20_000


class AlertFeed:
    def __init__(self, db: Database, listen_url: str):
        self.db, self.listen_url = db, listen_url
        self._subscribers: set[asyncio.Queue] = set()
        self._sent: OrderedDict[str, None] = OrderedDict()
        self._cursor: datetime | None = None
        self.on_new: list[Callable[[], None]] = []  # e.g. cache invalidation
        self.listening = False

    def subscribe(self, size: int = 1000) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=size)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def run(self) -> None:
        """Listen until cancelled; reconnect every two seconds while PostgreSQL is away."""
        while True:
            try:
                await self._listen()
            except (psycopg.Error, Unavailable, OSError) as exc:
                if self.listening:
                    log.warning("alert feed lost PostgreSQL (%s); reconnecting", first_line(exc))
                self.listening = False
                await asyncio.sleep(2)

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.listen_url, autocommit=True, connect_timeout=3,
                                                         application_name="lakehouse-dashboard-feed") as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self.listening = True
            await self._catch_up(initial=self._cursor is None)
            while True:
                ids = [n.payload async for n in conn.notifies(timeout=QUIET_S, stop_after=1)]
                if not ids:
                    await self._catch_up()
                    continue
                ids += [n.payload async for n in conn.notifies(timeout=BATCH_S, stop_after=1000)]
                await self._publish(await alert_rows.by_ids(self.db, [i for i in ids if i not in self._sent]))

    async def _catch_up(self, initial: bool = False) -> None:
        if self._cursor is None:
            self._cursor = await alert_rows.latest_stored_at(self.db)
            if self._cursor is None:
                return
        rows = await alert_rows.stored_since(self.db, self._cursor - OVERLAP)
        if initial:  # what was stored before this process started is history, not news
            for row in rows:
                self._remember(row)
            return
        await self._publish(rows)

    async def _publish(self, rows: list[dict]) -> None:
        fresh = [row for row in rows if row["alert_id"] not in self._sent]
        for row in fresh:
            self._remember(row)
            message = jsonable_encoder(row)
            for queue in list(self._subscribers):
                if queue.full():  # a stream that stopped reading: drop its oldest
                    queue.get_nowait()
                queue.put_nowait(message)
        if fresh:
            for callback in self.on_new:
                callback()

    def _remember(self, row: dict) -> None:
        self._sent[row["alert_id"]] = None
        while len(self._sent) > _REMEMBERED:
            self._sent.popitem(last=False)
        if self._cursor is None or row["stored_at"] > self._cursor:
            self._cursor = row["stored_at"]
