"""Values computed at most once per time-to-live, shared by every concurrent request and stream.

Fifty clients polling /api/metrics cost one computation per second, not fifty; a computation that fails
is not kept, so the next caller tries again."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Cached(Generic[T]):
    """One value, recomputed by `compute` when older than `ttl_s`; concurrent callers await the same run."""

    def __init__(self, compute: Callable[[], Awaitable[T]], ttl_s: float, encode: Callable[[T], bytes] | None = None):
        self._compute, self.ttl_s, self._encode = compute, ttl_s, encode
        self._value: T | None = None
        self._at = float("-inf")
        self._running: asyncio.Future[T] | None = None
        self._encoded: tuple[T, bytes] | None = None

    async def get(self) -> T:
        if self._value is not None and time.monotonic() - self._at < self.ttl_s:
            return self._value
        if self._running is None:
            self._running = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._running)

    async def get_encoded(self) -> tuple[T, bytes]:
        """The value and its response body, encoded once per value (`encode` given at construction)."""
        value = await self.get()
        if self._encoded is None or self._encoded[0] is not value:
            self._encoded = (value, self._encode(value))
        return self._encoded

    def invalidate(self) -> None:
        self._at = float("-inf")

    async def _refresh(self) -> T:
        try:
            value = await self._compute()
            self._value, self._at = value, time.monotonic()
            return value
        finally:
            self._running = None


class KeyedCache(Generic[T]):
    """`Cached` per key (e.g. a query's filters), the least recently used dropped past `size` keys."""

    def __init__(self, ttl_s: float, size: int = 256):
        self.ttl_s, self.size = ttl_s, size
        self._entries: OrderedDict[Hashable, Cached[T]] = OrderedDict()

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = Cached(compute, self.ttl_s)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        return await entry.get()

    def invalidate(self) -> None:
        self._entries.clear()
