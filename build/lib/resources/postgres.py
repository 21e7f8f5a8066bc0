"""PostgreSQL: pooled connections and an idempotent COPY-based bulk upsert."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import dagster as dg
import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool
from pydantic import PrivateAttr


def copy_upsert(
    conn: psycopg.Connection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence],
    key_columns: Sequence[str],
    update_columns: Sequence[str] | None = None,
) -> int:
    """Upsert `rows` into `table` in one transaction: COPY into a temporary staging table, then
    INSERT … ON CONFLICT (key) DO UPDATE. Returns the number of rows inserted or updated.

    Rows repeating a key within the batch collapse to the last one (PostgreSQL refuses to update the
    same row twice in one statement). `update_columns` defaults to every non-key column; pass () to
    keep existing rows untouched (DO NOTHING), e.g. for immutable alerts.
    """
    updates = [c for c in columns if c not in key_columns] if update_columns is None else list(update_columns)
    stage = sql.Identifier(f"_stage_{table.replace('.', '_')}")
    target = sql.Identifier(*table.split("."))
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    keys = sql.SQL(", ").join(map(sql.Identifier, key_columns))
    if updates:
        conflict = sql.SQL("DO UPDATE SET ") + sql.SQL(", ").join(
            sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in updates
        )
    else:
        conflict = sql.SQL("DO NOTHING")
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {target} WITH NO DATA").format(
                stage=stage, cols=cols, target=target
            )
        )
        cur.execute(sql.SQL("ALTER TABLE {stage} ADD COLUMN _seq bigserial").format(stage=stage))
        with cur.copy(sql.SQL("COPY {stage} ({cols}) FROM STDIN").format(stage=stage, cols=cols)) as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(
            sql.SQL(
                "INSERT INTO {target} ({cols}) "
                "SELECT DISTINCT ON ({keys}) {cols} FROM {stage} ORDER BY {keys}, _seq DESC "
                "ON CONFLICT ({keys}) {conflict}"
            ).format(target=target, cols=cols, keys=keys, stage=stage, conflict=conflict)
        )
        return cur.rowcount


class PostgresResource(dg.ConfigurableResource):
    """The analytics database (`POSTGRES_URL`). One small pool per process, opened on first use."""

    url: str
    min_size: int = 1
    max_size: int = 4
    connect_timeout_s: int = 10

    _pool: ConnectionPool | None = PrivateAttr(default=None)

    def _get_pool(self) -> ConnectionPool:
        if self._pool is None:
            self._pool = ConnectionPool(
                self.url,
                min_size=self.min_size,
                max_size=self.max_size,
                kwargs={"connect_timeout": self.connect_timeout_s},
                open=True,
            )
        return self._pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self._get_pool().connection() as conn:
            yield conn

    def bulk_upsert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence],
        key_columns: Sequence[str],
        update_columns: Sequence[str] | None = None,
    ) -> int:
        with self.connection() as conn:
            return copy_upsert(conn, table, columns, rows, key_columns, update_columns)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
