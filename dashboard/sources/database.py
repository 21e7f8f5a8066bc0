"""The analytics database, read with the dashboard's read-only role through a small async pool."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from dashboard.sources import Unavailable, first_line
from settings import Settings, redact

log = logging.getLogger("dashboard")


class Database:
    """Rows as dicts; `Unavailable` when PostgreSQL does not answer within a few seconds."""

    def __init__(self, url: str, max_size: int = 8, timeout_s: float = 3.0):
        self.url, self.timeout_s = url, timeout_s
        self.pool = AsyncConnectionPool(
            url, min_size=1, max_size=max_size, open=False, timeout=timeout_s,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout_s)), "row_factory": dict_row,
                    "application_name": "lakehouse-dashboard"},
        )

    @classmethod
    def for_settings(cls, settings: Settings) -> Database:
        url = settings.dashboard_db_url
        if settings.dashboard_db_read_only:
            log.info("reading PostgreSQL as %s", redact(url))
        else:
            log.warning("DASHBOARD_POSTGRES_URL is not set: reading PostgreSQL with POSTGRES_URL's login (%s), "
                        "which may write; set DASHBOARD_POSTGRES_URL to a read-only role", redact(url))
        return cls(url)

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def rows(self, query: Any, params: Any = None) -> list[dict[str, Any]]:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(query, params)
                return await cur.fetchall()
        except PoolTimeout:
            raise Unavailable("PostgreSQL does not answer") from None
        except psycopg.errors.UndefinedTable as exc:
            raise Unavailable(f"PostgreSQL: {first_line(exc)} (migrations not applied?)") from None
        except psycopg.OperationalError as exc:
            raise Unavailable(f"PostgreSQL: {first_line(exc)}") from None
