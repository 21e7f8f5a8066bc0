"""Refining bronze into silver for one event day: typed, deduplicated, replaced as a whole partition.

Plain Spark, no Dagster. Silver is partitioned by the event's own UTC date (`event_date`), not by the
broker time bronze is partitioned by: every bronze row whose `occurred_at` falls on the day belongs to
it, whichever window it arrived in (late, replayed and cross-window duplicate copies included). Bronze
keeps data-skipping statistics on `occurred_at_ts`, so selecting a day reads only the files that can
hold it.

Deduplication is by `event_id` across all windows: the first copy by broker timestamp, then Kafka
partition and offset, wins. The day is replaced in one Delta commit, so a rerun gives the same rows and
never appends. For the reconciliation, the bronze rows and distinct ids of the day are counted by an
aggregate of their own over the same bronze snapshot the write reads (two columns, no cache of the day:
caching every column of 5 million rows cost more than reading two of them again; bench/RESULTS.md); the
silver side is read back from the table after the commit:

    bronze rows of the day == silver rows + duplicates removed,  silver rows == distinct event ids
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from assets.delta import current_version, day_predicate, read_table, replace_where

SILVER_COLUMNS: tuple[str, ...] = (
    "event_id",
    "event_type",
    "user_id",
    "session_id",
    "event_time",
    "event_date",
    "ip",
    "country",
    "lat",
    "lon",
    "device_id",
    "user_agent",
    "properties",
    "amount",
    "currency",
    "schema_version",
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp",
    "window_start",
)
SILVER_STATS_COLUMNS = ("event_time", "event_type", "user_id")
# Amounts travel as strings in `properties`; in silver they are decimals (a malformed amount is null).
AMOUNT_TYPE = "DECIMAL(18,2)"


@dataclass(frozen=True)
class RefineResult:
    day: date
    bronze_rows: int
    distinct_events: int
    silver_rows: int  # read back from the table after the commit
    seconds: float

    @property
    def duplicates_removed(self) -> int:
        return self.bronze_rows - self.distinct_events

    @property
    def reconciles(self) -> bool:
        return self.silver_rows == self.distinct_events and self.bronze_rows == self.silver_rows + self.duplicates_removed


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, clock(0), UTC)
    return start, start + timedelta(days=1)


def bronze_of_day(spark: SparkSession, bronze_path: str, day: date, version: int | None = None) -> DataFrame:
    """Every bronze row whose event time falls on `day` (UTC), of bronze as of `version` if given."""
    start, end = _day_bounds(day)
    return read_table(spark, bronze_path, version=version).where(
        (F.col("occurred_at_ts") >= F.lit(start)) & (F.col("occurred_at_ts") < F.lit(end))
    )


def ranked(bronze: DataFrame) -> DataFrame:
    """Bronze rows with `_copy` = 1 for the first copy of each event_id (broker time, partition, offset)."""
    first = Window.partitionBy("event_id").orderBy("kafka_timestamp", "kafka_partition", "kafka_offset")
    return bronze.withColumn("_copy", F.row_number().over(first))


def typed(rows: DataFrame) -> DataFrame:
    """The silver columns: event time as a timestamp, its date, the amount as a decimal."""
    amount = F.coalesce(F.col("properties")["amount"], F.col("properties")["price"])
    return rows.select(
        "event_id",
        "event_type",
        "user_id",
        "session_id",
        F.col("occurred_at_ts").alias("event_time"),
        F.to_date("occurred_at_ts").alias("event_date"),
        "ip",
        "country",
        "lat",
        "lon",
        "device_id",
        "user_agent",
        "properties",
        amount.try_cast(AMOUNT_TYPE).alias("amount"),
        F.col("properties")["currency"].alias("currency"),
        "schema_version",
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        "window_start",
    )


def refine_day(spark: SparkSession, bronze_path: str, silver_path: str, day: date) -> RefineResult:
    """Replace silver's `day` with the deduplicated, typed bronze rows of that day."""
    started = time.perf_counter()
    # One bronze snapshot for the counts and the write: landing commits to bronze meanwhile, and an
    # unpinned read would let the write see rows the counts did not (the check then fails).
    bronze = bronze_of_day(spark, bronze_path, day, current_version(bronze_path))
    counts = bronze.agg(F.count("*").alias("rows"), F.count_distinct("event_id").alias("distinct")).first()
    replace_where(
        typed(ranked(bronze).where(F.col("_copy") == 1)), silver_path, day_predicate(day, "event_date"), "event_date",
        SILVER_STATS_COLUMNS,
    )
    silver_rows = read_table(spark, silver_path, day_predicate(day, "event_date")).count()
    return RefineResult(day, counts["rows"], counts["distinct"], silver_rows, time.perf_counter() - started)
