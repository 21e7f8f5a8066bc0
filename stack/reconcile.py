"""Reconciliation of Kafka against bronze: for every closed window, the messages in its offset range
must equal bronze rows + quarantine rows. Reads the Delta tables with delta-rs (the `deltalake`
package), not Spark, so it also proves the tables are standard Delta readable by another engine."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from analytics_defs.partitions import WINDOW_MS, window_key
from resources.kafka import KafkaResource


@dataclass(frozen=True)
class WindowBalance:
    window: str
    kafka_messages: int
    bronze_rows: int
    quarantine_rows: int

    @property
    def status(self) -> str:
        landed = self.bronze_rows + self.quarantine_rows
        if landed == self.kafka_messages:
            return "ok"
        return "not landed" if landed == 0 else "MISMATCH"


def rows_per_window(table_path: str, since_ms: int, until_ms: int) -> Counter:
    """window key -> row count, for windows starting in [since_ms, until_ms)."""
    try:
        table = DeltaTable(table_path)
    except TableNotFoundError:
        return Counter()
    since = datetime.fromtimestamp(since_ms / 1000, UTC)
    until = datetime.fromtimestamp(until_ms / 1000, UTC)
    column = table.to_pyarrow_table(
        columns=["window_start"],
        filters=[("window_start", ">=", since), ("window_start", "<", until)],
    ).column("window_start")
    counts = pc.value_counts(column).to_pylist()
    return Counter({window_key(int(c["values"].timestamp() * 1000)): c["counts"] for c in counts})


def reconcile(
    kafka: KafkaResource, topic: str, bronze_path: str, quarantine_path: str, since_ms: int, until_ms: int
) -> list[WindowBalance]:
    """Balance of every window in [since_ms, until_ms) that holds messages or landed rows."""
    since_ms, until_ms = since_ms // WINDOW_MS * WINDOW_MS, until_ms // WINDOW_MS * WINDOW_MS
    bronze = rows_per_window(bronze_path, since_ms, until_ms)
    quarantine = rows_per_window(quarantine_path, since_ms, until_ms)
    balances = []
    with kafka.offset_reader(topic) as reader:
        high = {p: marks[1] for p, marks in reader.watermarks().items()}
        start = reader.boundary(since_ms, high)
        for window_ms in range(since_ms, until_ms, WINDOW_MS):
            end = reader.boundary(window_ms + WINDOW_MS, high)
            key = window_key(window_ms)
            balance = WindowBalance(key, sum(end[p] - start[p] for p in start), bronze[key], quarantine[key])
            if balance.kafka_messages or balance.bronze_rows or balance.quarantine_rows:
                balances.append(balance)
            start = end
    return balances


def format_report(balances: list[WindowBalance]) -> str:
    lines = [f"{'window (UTC)':<18} {'kafka':>9} {'bronze':>9} {'quarantine':>10}  status"]
    for b in balances:
        lines.append(f"{b.window:<18} {b.kafka_messages:>9} {b.bronze_rows:>9} {b.quarantine_rows:>10}  {b.status}")
    landed = [b for b in balances if b.status != "not landed"]
    totals = [sum(getattr(b, f) for b in landed) for f in ("kafka_messages", "bronze_rows", "quarantine_rows")]
    lines.append(
        f"{'landed windows':<18} {totals[0]:>9} {totals[1]:>9} {totals[2]:>10}  "
        + ("ok: kafka == bronze + quarantine" if totals[0] == totals[1] + totals[2] else "MISMATCH")
    )
    pending = sum(b.kafka_messages for b in balances if b.status == "not landed")
    lines.append(f"not landed yet: {pending} messages in {len(balances) - len(landed)} windows")
    return "\n".join(lines)
