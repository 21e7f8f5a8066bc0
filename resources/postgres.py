"""PostgreSQL: pooled connections and an idempotent COPY-based bulk upsert."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import dagster as dg
import psycopg
from psycopg import pq, sql
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
    """Upsert `rows` into `table` in one transaction: binary COPY into a temporary staging table, then
    one UPDATE of the existing rows whose values differ and one INSERT of the new keys. Returns the
    number of rows written (inserted or changed): a re-run of the same batch writes nothing and returns 0.

    Rows repeating a key within the batch collapse to the last one. `update_columns` defaults to every
    non-key column; pass () to keep existing rows untouched (ON CONFLICT DO NOTHING: safe for several
    writers, e.g. alerts). With updates, the INSERT carries no ON CONFLICT clause (it costs a third of
    the statement): a key inserted by a concurrent writer in between fails the transaction loudly, and
    nothing is written; the caller's retry then updates it.
    """
    updates = [c for c in columns if c not in key_columns] if update_columns is None else list(update_columns)
    key_at = [list(columns).index(k) for k in key_columns]
    batch = {tuple(row[i] for i in key_at): row for row in rows}
    stage = sql.Identifier(f"_stage_{table.replace('.', '_')}")
    target = sql.Identifier(*table.split("."))
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    keys = sql.SQL(", ").join(map(sql.Identifier, key_columns))
    same_key = sql.SQL(" AND ").join(sql.SQL("t.{c} = s.{c}").format(c=sql.Identifier(c)) for c in key_columns)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {target} WITH NO DATA").format(
                stage=stage, cols=cols, target=target
            )
        )
        described = cur.execute(sql.SQL("SELECT {cols} FROM {stage}").format(cols=cols, stage=stage), prepare=False)
        types = [d.type_code for d in described.description]  # binary COPY needs the columns' types
        with cur.copy(sql.SQL("COPY {stage} ({cols}) FROM STDIN (FORMAT BINARY)").format(
                stage=stage, cols=cols)) as copy:
            copy.set_types(types)
            for row in batch.values():
                try:
                    copy.write_row(row)
                except TypeError as exc:
                    raise TypeError(f"{_mistyped(conn, table, columns, types, row)} ({exc})") from None
        if not updates:
            cur.execute(sql.SQL("INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT ({keys}) "
                                "DO NOTHING").format(target=target, cols=cols, stage=stage, keys=keys))
            return cur.rowcount
        changed = sql.SQL("({t}) IS DISTINCT FROM ({s})").format(
            t=sql.SQL(", ").join(sql.SQL("t.{c}").format(c=sql.Identifier(c)) for c in updates),
            s=sql.SQL(", ").join(sql.SQL("s.{c}").format(c=sql.Identifier(c)) for c in updates))
        cur.execute(sql.SQL("UPDATE {target} AS t SET {sets} FROM {stage} AS s WHERE {same_key} AND {changed}").format(
            target=target, stage=stage, same_key=same_key, changed=changed,
            sets=sql.SQL(", ").join(sql.SQL("{c} = s.{c}").format(c=sql.Identifier(c)) for c in updates)))
        updated = cur.rowcount
        cur.execute(sql.SQL("INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} AS s "
                            "WHERE NOT EXISTS (SELECT FROM {target} AS t WHERE {same_key})").format(
            target=target, cols=cols, stage=stage, same_key=same_key))
        return updated + cur.rowcount


def _mistyped(conn: psycopg.Connection, table: str, columns: Sequence[str], types: Sequence[int], row: Sequence) -> str:
    """Which value of `row` binary COPY cannot write as its column's type (the first one found)."""
    for column, oid, value in zip(columns, types, row, strict=True):
        if value is None:
            continue
        try:
            conn.adapters.get_dumper_by_oid(oid, pq.Format.BINARY)(type(value)).dump(value)
        except (TypeError, ValueError, OverflowError):
            info = conn.adapters.types.get(oid)
            return f"{table}.{column} is {info.name if info else oid}: got {value!r}, a {type(value).__name__}"
    return f"{table}: a value of {row!r} does not have its column's Python type"


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
