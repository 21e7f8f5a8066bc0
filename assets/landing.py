"""Landing micro-batch windows of Kafka `user-events` into the bronze and quarantine Delta tables.

Plain Spark, no Dagster: the `bronze_user_events` asset and the landing benchmark call `land_windows`
alike. A run lands one 1-minute window (the sensor's runs) or a range of consecutive windows (a
backfill run): the range is an exact offset range per Kafka partition, so a rerun or a backfill reads
the very same messages; each row's window is the minute of its broker (log-append) timestamp, and both
tables are written with `replaceWhere` on the range: reruns replace, never append. Every message ends in
exactly one of the two tables, so for each window

    Kafka messages in the offset range == bronze rows + quarantine rows.

Validation order (the first failing rule names the reason; contract.user_events.QuarantineReason):
empty -> oversized -> invalid UTF-8 -> invalid JSON / not an object -> schema_version (missing, wrong
type, unsupported) -> missing required fields -> wrong types -> invalid event_id -> unknown event_type
-> invalid coordinates -> future timestamp -> duplicate event_id within the window (the first copy, by
partition and offset, is kept). Spark's JSON reader is lenient in two ways we accept and document:
single-quoted strings and trailing text after the object parse as JSON, and scalars are coerced into
STRING fields (`"user_id": 42` lands as "42").
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from assets.delta import replace_where, window_range_predicate
from contract.user_events import (
    DEFAULT_MAX_FUTURE_SKEW_MS,
    DEFAULT_MAX_PAYLOAD_BYTES,
    EVENT_TYPES,
    FIELDS,
    REQUIRED_FIELDS,
    SCHEMA_VERSION,
    SPARK_SCHEMA_DDL,
)
from contract.user_events import (
    QuarantineReason as R,
)
from resources.kafka import PartitionRange

MESSAGES_PER_TASK = 500_000
UUID_GROUPS = ((1, 8), (10, 4), (15, 4), (20, 4), (25, 12))  # (1-based start, length) of the hex digits
# Every field read as raw JSON text: tells "absent or null" apart from "present with another type".
_RAW_DDL = ", ".join(f"{f.name} STRING" for f in FIELDS)

BRONZE_COLUMNS: tuple[str, ...] = (
    *(f.name for f in FIELDS),
    "occurred_at_ts",
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp",
    "window_start",
    "landed_at",
)
# Delta collects min/max statistics only on these (by default it takes the first 32 columns, which
# costs a good part of a window's write and buys nothing for random ids and payload bytes).
BRONZE_STATS_COLUMNS = ("occurred_at_ts", "event_type", "kafka_partition", "kafka_offset")
QUARANTINE_STATS_COLUMNS = ("reason", "kafka_partition", "kafka_offset")
QUARANTINE_COLUMNS: tuple[str, ...] = (
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp",
    "kafka_key",
    "raw_value",
    "payload_bytes",
    "reason",
    "window_start",
    "landed_at",
)


@dataclass(frozen=True)
class ParseLimits:
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS


@dataclass(frozen=True)
class WindowCounts:
    rows_landed: int = 0
    rows_quarantined: int = 0
    event_dates: dict[str, int] = field(default_factory=dict)  # landed rows per event date (YYYY-MM-DD, UTC)


@dataclass(frozen=True)
class LandingResult:
    start: datetime  # first window of the range
    end: datetime  # end of the last window
    ranges: tuple[PartitionRange, ...]
    rows_in: int
    rows_landed: int
    rows_quarantined: int
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    windows: dict[datetime, WindowCounts] = field(default_factory=dict)  # windows that hold messages
    event_dates: dict[str, int] = field(default_factory=dict)  # landed rows per event date (YYYY-MM-DD, UTC)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows_in / self.seconds if self.seconds else 0.0


def read_kafka_range(
    spark: SparkSession,
    bootstrap_servers: str,
    topic: str,
    ranges: Sequence[PartitionRange],
    security: Mapping[str, str] | None = None,
) -> DataFrame:
    """Exactly the messages in `ranges` ([start, end) per partition); fails if any were deleted.

    `security` holds the Kafka client's transport properties (`KafkaResource.java_config()`: SASL_SSL, the
    SCRAM login, the PEM trust store), taken prefixed `kafka.`; Spark redacts option values that mention a
    password (spark.redaction.regex) wherever it shows them.

    A Spark task reads at most about MESSAGES_PER_TASK messages (`minPartitions` splits a long range):
    a task's cached block is built in memory, and a window of millions of messages in one task per
    Kafka partition ran a 6 GB driver out of heap (a simulated-clock run packs days into minutes)."""
    partitions = [r.partition for r in ranges]
    tasks = max(len(ranges), math.ceil(sum(r.count for r in ranges) / MESSAGES_PER_TASK))
    return (
        spark.read.format("kafka")
        .options(**{f"kafka.{k}": v for k, v in (security or {}).items()})
        .option("minPartitions", str(tasks))
        .option("kafka.bootstrap.servers", bootstrap_servers)
        .option("assign", json.dumps({topic: partitions}))
        .option("startingOffsets", json.dumps({topic: {str(r.partition): r.start for r in ranges}}))
        .option("endingOffsets", json.dumps({topic: {str(r.partition): r.end for r in ranges}}))
        .option("failOnDataLoss", "true")
        # bigger fetches than the consumer defaults (1 MiB per partition): fewer round trips per window
        .option("kafka.max.partition.fetch.bytes", str(16 * 1024 * 1024))
        .option("kafka.fetch.max.bytes", str(64 * 1024 * 1024))
        .load()
    )


def _reason(limits: ParseLimits) -> Column:
    """The first rule a message breaks, or null for a valid event (duplicates are marked later).

    `_typed` is the payload parsed against the contract. Spark sets its `_corrupt` column both for text
    that is not a JSON object and for a field of the wrong type; only for those rows is the payload
    parsed a second time with every field as raw text (`_raw`), which tells the two apart: invalid JSON
    is corrupt even then, a wrong type is a field present in `_raw` but null in `_typed`.
    """
    typed, raw = F.col("_typed"), F.col("_raw")
    types = {f.name: f.spark_type for f in FIELDS}

    def missing(name: str) -> Column:
        """Absent, null or blank text; a number is never blank (so no cast of every row's value to text)."""
        value = typed[name]
        parsed = value.isNull() | (F.trim(value) == "") if types[name] == "STRING" else value.isNull()
        return F.when(raw.isNull(), parsed).otherwise(raw[name].isNull() | (F.trim(raw[name]) == ""))

    def wrong_type(name: str) -> Column:
        return raw.isNotNull() & raw[name].isNotNull() & typed[name].isNull()

    lat, lon = typed["lat"], typed["lon"]
    chain = (
        F.when(F.col("payload_bytes") == 0, R.EMPTY_PAYLOAD.value)
        .when(F.col("payload_bytes") > limits.max_payload_bytes, R.OVERSIZED_PAYLOAD.value)
        .when(~F.col("_utf8"), R.INVALID_UTF8.value)
        .when(typed.isNull() | raw["_corrupt"].isNotNull(), R.INVALID_JSON.value)
        .when(missing("schema_version"), f"{R.MISSING_FIELD}:schema_version")
        .when(wrong_type("schema_version"), f"{R.WRONG_TYPE}:schema_version")
        .when(typed["schema_version"] != SCHEMA_VERSION, R.UNSUPPORTED_SCHEMA_VERSION.value)
    )
    for name in REQUIRED_FIELDS:
        chain = chain.when(missing(name), f"{R.MISSING_FIELD}:{name}")
    for f in FIELDS:
        if f.spark_type != "STRING":
            chain = chain.when(wrong_type(f.name), f"{R.WRONG_TYPE}:{f.name}")
    return (
        chain.when(~_is_uuid(typed["event_id"]), R.INVALID_EVENT_ID.value)
        .when(~typed["event_type"].isin(*EVENT_TYPES), R.UNKNOWN_EVENT_TYPE.value)
        .when(
            (lat.isNull() != lon.isNull())
            | F.isnan(lat)
            | F.isnan(lon)
            | ~lat.between(-90.0, 90.0)
            | ~lon.between(-180.0, 180.0),
            R.INVALID_COORDINATES.value,
        )
        .when(
            typed["occurred_at"] > F.unix_millis(F.col("kafka_timestamp")) + limits.max_future_skew_ms,
            R.FUTURE_TIMESTAMP.value,
        )
    )


def _is_uuid(text: Column) -> Column:
    """8-4-4-4-12 hex digits (either case): the layout and one hex decode, cheaper per row than a regex."""
    dashes = [text.substr(position, 1) == "-" for position in (9, 14, 19, 24)]
    digits = F.concat(*(text.substr(start, length) for start, length in UUID_GROUPS))
    return F.coalesce(
        (F.length(text) == 36) & dashes[0] & dashes[1] & dashes[2] & dashes[3]
        & F.try_to_binary(digits, F.lit("hex")).isNotNull(),
        F.lit(False),
    )


def parse_user_events(raw: DataFrame, limits: ParseLimits = ParseLimits()) -> DataFrame:
    """Kafka rows -> one row per message with the typed event fields, its window (the minute of its
    broker timestamp) and a `reason` (null = valid, before duplicate detection, which needs the whole
    window: see `mark_duplicates`)."""
    corrupt = {"columnNameOfCorruptRecord": "_corrupt"}
    parseable = (F.col("payload_bytes") > 0) & (F.col("payload_bytes") <= limits.max_payload_bytes) & F.col("_utf8")
    staged = (
        raw.select(
            F.col("partition").alias("kafka_partition"),
            F.col("offset").alias("kafka_offset"),
            F.col("timestamp").alias("kafka_timestamp"),
            F.col("key").alias("kafka_key"),
            F.col("value").alias("raw_value"),
            F.coalesce(F.octet_length("value"), F.lit(0)).alias("payload_bytes"),
        )
        .withColumn("_utf8", F.coalesce(F.expr("is_valid_utf8(CAST(raw_value AS STRING))"), F.lit(False)))
        .withColumn("_text", F.when(parseable, F.col("raw_value").cast("string")))
        .withColumn("_typed", F.from_json("_text", f"{SPARK_SCHEMA_DDL}, _corrupt STRING", corrupt))
        .withColumn(
            "_raw",
            F.when(F.col("_typed._corrupt").isNotNull(), F.from_json("_text", f"{_RAW_DDL}, _corrupt STRING", corrupt)),
        )
    )
    return staged.select(
        *(F.col(f"_typed.{f.name}").alias(f.name) for f in FIELDS),
        F.timestamp_millis(F.col("_typed.occurred_at")).alias("occurred_at_ts"),
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        "kafka_key",
        "raw_value",
        "payload_bytes",
        _reason(limits).alias("reason"),
        F.date_trunc("minute", F.col("kafka_timestamp")).alias("window_start"),
        F.current_timestamp().alias("landed_at"),
    )


def duplicate_copies(parsed: DataFrame) -> list[tuple[int, int]]:
    """(partition, offset) of every copy of an otherwise valid event after its first in the same window
    (by partition, offset). Repeated ids are few: a cheap aggregate over 64-bit hashes of the ids finds
    the suspects, and only those are compared as strings; the answer is small enough to collect."""
    valid = parsed.where(F.col("reason").isNull()).withColumn("_h", F.xxhash64("event_id"))
    suspects = valid.groupBy("window_start", "_h").count().where(F.col("count") > 1).select("window_start", "_h")
    first = Window.partitionBy("window_start", "event_id").orderBy("kafka_partition", "kafka_offset")
    copies = (
        valid.join(F.broadcast(suspects), ["window_start", "_h"])
        .withColumn("_n", F.row_number().over(first))
        .where(F.col("_n") > 1)
        .select("kafka_partition", "kafka_offset")
    )
    return [(row["kafka_partition"], row["kafka_offset"]) for row in copies.collect()]


def mark_duplicates(parsed: DataFrame, copies: list[tuple[int, int]]) -> DataFrame:
    """Set reason `duplicate_event_id` on the rows at `copies` (see `duplicate_copies`)."""
    if not copies:
        return parsed
    marks = parsed.sparkSession.createDataFrame(copies, "kafka_partition INT, kafka_offset BIGINT").withColumn(
        "_duplicate", F.lit(True)
    )
    return (
        parsed.join(F.broadcast(marks), ["kafka_partition", "kafka_offset"], "left")
        .withColumn("reason", F.when(F.col("_duplicate"), R.DUPLICATE_EVENT_ID.value).otherwise(F.col("reason")))
        .drop("_duplicate")
    )


@contextmanager
def _uncompressed_cache(spark: SparkSession) -> Iterator[None]:
    """Cache without Spark's columnar compression while the block is built: the window's cache lives for
    seconds, and compressing it (dictionaries tried on every random id) cost 1.7 s of a 1M-event window's
    9.5 s parse-and-cache (bench/RESULTS.md). The session's setting is restored after."""
    key = "spark.sql.inMemoryColumnarStorage.compressed"
    before = spark.conf.get(key)
    spark.conf.set(key, "false")
    try:
        yield
    finally:
        spark.conf.set(key, before)


def land_windows(
    spark: SparkSession,
    bootstrap_servers: str,
    topic: str,
    start: datetime,
    end: datetime,
    ranges: Sequence[PartitionRange],
    bronze_path: str,
    quarantine_path: str,
    limits: ParseLimits = ParseLimits(),
    security: Mapping[str, str] | None = None,
) -> LandingResult:
    """Read the offset ranges of the windows in [start, end), validate, and replace those windows in
    both tables. `security`: the Kafka transport's Java properties, as `read_kafka_range` takes them."""
    started = time.perf_counter()
    parsed = parse_user_events(read_kafka_range(spark, bootstrap_servers, topic, ranges, security), limits)
    # read and parse once: the first action (finding duplicates) builds the cache, all else reads it.
    # Never filter `parsed` itself: the filter is pushed under the projection and inlines `from_json` into
    # each reference of `reason`, parsing every row dozens of times (95 s for 1M rows; bench/RESULTS.md).
    cached = parsed  # until persisted: `finally` then has nothing to release
    try:
        with _uncompressed_cache(spark):
            cached = parsed.persist()
            copies = duplicate_copies(cached)
        checked = mark_duplicates(cached, copies)
        counts = (
            checked.groupBy("window_start", "reason", F.to_date("occurred_at_ts").alias("event_date")).count().collect()
        )
        predicate = window_range_predicate(start, end)
        bronze = checked.where(F.col("reason").isNull()).select(*BRONZE_COLUMNS)
        quarantine = checked.where(F.col("reason").isNotNull()).select(*QUARANTINE_COLUMNS)
        replace_where(bronze, bronze_path, predicate, "window_start", BRONZE_STATS_COLUMNS)
        replace_where(quarantine, quarantine_path, predicate, "window_start", QUARANTINE_STATS_COLUMNS)
    finally:
        cached.unpersist()
    reasons: Counter[str] = Counter()
    landed_per_window: Counter[datetime] = Counter()
    quarantined_per_window: Counter[datetime] = Counter()
    event_dates: Counter[str] = Counter()
    dates_per_window: dict[datetime, Counter[str]] = {}
    for row in counts:
        window = row["window_start"].replace(tzinfo=UTC)
        if row["reason"] is None:
            landed_per_window[window] += row["count"]
            event_dates[row["event_date"].isoformat()] += row["count"]
            dates_per_window.setdefault(window, Counter())[row["event_date"].isoformat()] += row["count"]
        else:
            quarantined_per_window[window] += row["count"]
            reasons[row["reason"]] += row["count"]
    windows = {
        w: WindowCounts(landed_per_window[w], quarantined_per_window[w], dict(sorted(dates_per_window.get(w, {}).items())))
        for w in sorted(set(landed_per_window) | set(quarantined_per_window))
    }
    landed, quarantined = sum(landed_per_window.values()), sum(quarantined_per_window.values())
    return LandingResult(
        start=start,
        end=end,
        ranges=tuple(ranges),
        rows_in=landed + quarantined,
        rows_landed=landed,
        rows_quarantined=quarantined,
        quarantine_reasons=dict(sorted(reasons.items())),
        windows=windows,
        event_dates=dict(sorted(event_dates.items())),
        seconds=time.perf_counter() - started,
    )
