"""Reconciliation of Kafka against bronze, read back from the Delta tables.

For every window, the messages in its Kafka offset range must be exactly the rows of bronze plus the
rows of quarantine: the same number, and the same offsets, each once. `balance_window` is the blocking
check of every landing (it reads what was committed, not the DataFrame that was written, so a lost or
partial write fails it); `reconcile` is the same balance over a time range, for `lakehouse reconcile`.

The tables are read with delta-rs (the `deltalake` package), not Spark: an independent reader, which
also proves the tables are standard Delta.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from analytics_defs.partitions import WINDOW_MS, window_key
from resources.kafka import KafkaResource, PartitionRange

_OFFSET_COLUMNS = ["window_start", "kafka_partition", "kafka_offset"]


def read_landed(table_path: str, since: datetime, until: datetime) -> pa.Table:
    """window_start, kafka_partition, kafka_offset of the rows of windows starting in [since, until);
    an empty table when the Delta table does not exist yet."""
    try:
        table = DeltaTable(table_path)
    except TableNotFoundError:
        return pa.table({c: pa.array([], t) for c, t in
                         zip(_OFFSET_COLUMNS, (pa.timestamp("us", "UTC"), pa.int32(), pa.int64()))})
    return table.to_pyarrow_table(
        columns=_OFFSET_COLUMNS, filters=[("window_start", ">=", since), ("window_start", "<", until)]
    )


@dataclass(frozen=True)
class WindowCheck:
    """The read-back balance of one landed window."""

    passed: bool
    metadata: dict = field(default_factory=dict)


def balance_windows(
    bronze_path: str, quarantine_path: str, start: datetime, end: datetime, ranges: Sequence[PartitionRange]
) -> WindowCheck:
    """Do bronze + quarantine hold, in the windows [start, end), exactly the offsets of `ranges`, each
    once? Reads both tables back.

    Per Kafka partition, the offsets found must number end - start, be distinct, and span [start, end):
    for a contiguous range that is set equality. A table that cannot be read (a data file deleted under
    it) fails the check with the error."""
    since, until = start.astimezone(UTC), end.astimezone(UTC)
    try:
        bronze = read_landed(bronze_path, since, until)
        quarantine = read_landed(quarantine_path, since, until)
    except Exception as exc:  # noqa: BLE001 - any read failure is a failed balance, reported, not a crash
        return WindowCheck(False, {"error": f"{type(exc).__name__}: {exc}"[:2000]})
    both = pa.concat_tables([bronze.select(["kafka_partition", "kafka_offset"]),
                             quarantine.select(["kafka_partition", "kafka_offset"])])
    found = {
        row["kafka_partition"]: row
        for row in both.group_by("kafka_partition").aggregate(
            [("kafka_offset", "count"), ("kafka_offset", "count_distinct"), ("kafka_offset", "min"),
             ("kafka_offset", "max")]
        ).to_pylist()
    }
    problems = []
    for r in ranges:
        got = found.pop(r.partition, None)
        if r.count == 0:
            if got:
                problems.append(f"partition {r.partition}: {got['kafka_offset_count']} rows for an empty range")
            continue
        if got is None:
            problems.append(f"partition {r.partition}: none of offsets [{r.start}, {r.end}) landed")
            continue
        count, distinct = got["kafka_offset_count"], got["kafka_offset_count_distinct"]
        lo, hi = got["kafka_offset_min"], got["kafka_offset_max"]
        if count != r.count or distinct != count or lo != r.start or hi != r.end - 1:
            problems.append(
                f"partition {r.partition}: expected offsets [{r.start}, {r.end}) once each ({r.count}), "
                f"found {count} rows, {distinct} distinct, in [{lo}, {hi}]"
            )
    for partition, got in found.items():
        problems.append(f"partition {partition}: {got['kafka_offset_count']} rows outside the window's ranges")
    metadata = {
        "offsets_in_range": sum(r.count for r in ranges),
        "bronze_rows": bronze.num_rows,
        "quarantine_rows": quarantine.num_rows,
    }
    if problems:
        metadata["problems"] = "\n".join(problems)
    return WindowCheck(not problems, metadata)


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


def _rows_per_window(table: pa.Table) -> Counter:
    counts = pc.value_counts(table.column("window_start")).to_pylist()
    return Counter({window_key(int(c["values"].timestamp() * 1000)): c["counts"] for c in counts})


def reconcile(
    kafka: KafkaResource, topic: str, bronze_path: str, quarantine_path: str, since_ms: int, until_ms: int
) -> list[WindowBalance]:
    """Balance of every window in [since_ms, until_ms) that holds messages or landed rows."""
    since_ms, until_ms = since_ms // WINDOW_MS * WINDOW_MS, until_ms // WINDOW_MS * WINDOW_MS
    since, until = (datetime.fromtimestamp(ms / 1000, UTC) for ms in (since_ms, until_ms))
    bronze = _rows_per_window(read_landed(bronze_path, since, until))
    quarantine = _rows_per_window(read_landed(quarantine_path, since, until))
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
