"""Bronze: every user-event message of a 1-minute broker-time window, landed from its exact Kafka
offsets into Delta, with every message that failed validation beside it in the quarantine table."""

import time
from datetime import UTC, date

import dagster as dg

from analytics_defs.constants import (
    BRONZE_QUARANTINE,
    BRONZE_QUARANTINE_TABLE,
    BRONZE_USER_EVENTS,
    BRONZE_USER_EVENTS_TABLE,
    EVENT_DATES_METADATA,
    OUTSIDE_EVENT_DAYS_METADATA,
    TAG_KAFKA_OFFSETS,
)
from analytics_defs.partitions import (
    WINDOW_CLOSE_GRACE_MS,
    WINDOW_MS,
    first_event_day,
    minute_windows,
    outside_event_days,
)
from assets.delta import read_table, window_range_predicate
from assets.landing import LandingResult, ParseLimits, land_windows
from assets.quality import bronze_suite, validate
from assets.reconciliation import balance_windows
from contract.topics import USER_EVENTS
from contract.user_events import DEFAULT_MAX_FUTURE_SKEW_MS, DEFAULT_MAX_PAYLOAD_BYTES
from resources.kafka import KafkaResource, ranges_from_json, ranges_to_json
from resources.postgres import PostgresResource
from resources.spark import SparkResource
from resources.warehouse import WarehouseResource

RECONCILES_WITH_KAFKA = "reconciles_with_kafka"
EXPECTATIONS = "great_expectations"
WITHIN_EVENT_DAYS = "event_dates_within_partitions"
# How to bring events of dates before the first event day into silver (README "Late and replayed events")
BRING_THEM_IN = ("raise LAKEHOUSE_EVENT_LOOKBACK_DAYS so the event days reach back to them, restart "
                 "(`make down && make up`), then backfill those days of daily_refresh_job from the Dagster UI")
MAX_WINDOWS_PER_RUN = 30


class BronzeLandingConfig(dg.Config):
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    """Messages larger than this are quarantined as oversized_payload."""
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS
    """occurred_at later than the broker timestamp by more than this is quarantined as future_timestamp."""
    window_close_grace_ms: int = WINDOW_CLOSE_GRACE_MS
    """How long after its end a window's offsets are final (clock difference to the broker)."""


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            BRONZE_USER_EVENTS,
            description="Valid user events as received, one partition per 1-minute window of Kafka broker "
            "time, with their Kafka partition/offset/timestamp. Duplicates across windows remain (silver "
            "deduplicates); within a window only the first copy lands.",
            group_name="bronze",
            kinds={"spark", "delta"},
            metadata={"table": BRONZE_USER_EVENTS_TABLE, "partition_column": "window_start"},
        ),
        dg.AssetSpec(
            BRONZE_QUARANTINE,
            description="Every message of the window that failed parsing or validation: raw bytes, Kafka "
            "coordinates and the reason. Nothing is dropped: bronze + quarantine = messages in the window.",
            group_name="bronze",
            kinds={"spark", "delta"},
            metadata={"table": BRONZE_QUARANTINE_TABLE, "partition_column": "window_start"},
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            RECONCILES_WITH_KAFKA,
            asset=BRONZE_USER_EVENTS,
            blocking=True,
            description="Read back from both Delta tables after the write: bronze + quarantine hold exactly the "
            "offsets of the window's Kafka range, each once.",
        ),
        dg.AssetCheckSpec(
            EXPECTATIONS,
            asset=BRONZE_USER_EVENTS,
            blocking=True,
            description="Great Expectations on the landed windows as committed: required fields present, known "
            "event types, coordinates in range, as many rows as were landed.",
        ),
        dg.AssetCheckSpec(
            WITHIN_EVENT_DAYS,
            asset=BRONZE_USER_EVENTS,
            blocking=False,
            description="Warns when valid events landed with a date before the first event-day partition (late "
            "or replayed beyond the lookback): they are in bronze and in no silver day until the partitions "
            "start earlier and those days are backfilled. Counted per date here, in events_outside_partitions "
            "and on the dashboard.",
        ),
    ],
    partitions_def=minute_windows,
    # a backfill lands up to half an hour of windows per run, in one Spark read of their offset range
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_WINDOWS_PER_RUN),
    can_subset=False,
)
def bronze_landing(
    context: dg.AssetExecutionContext,
    config: BronzeLandingConfig,
    kafka: KafkaResource,
    spark: SparkResource,
    warehouse: WarehouseResource,
    postgres: PostgresResource,
):
    window = context.partition_time_window  # one window (sensor runs) or a range of them (backfill runs)
    start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
    tagged = context.run.tags.get(TAG_KAFKA_OFFSETS)
    # The sensor's tag records what it planned; a backfill or a manual run computes the same ranges.
    ranges = (
        ranges_from_json(tagged)
        if tagged and len(context.partition_keys) == 1
        else kafka.window_ranges(USER_EVENTS, _ms(start), _ms(end), config.window_close_grace_ms)
    )
    bronze_path = warehouse.table_path(BRONZE_USER_EVENTS_TABLE)
    quarantine_path = warehouse.table_path(BRONZE_QUARANTINE_TABLE)
    session = spark.get_session()
    result = land_windows(
        session,
        kafka.bootstrap_servers,
        USER_EVENTS,
        start,
        end,
        ranges,
        bronze_path,
        quarantine_path,
        ParseLimits(config.max_payload_bytes, config.max_future_skew_ms),
        security=kafka.java_config(),
    )
    balance = balance_windows(bronze_path, quarantine_path, start, end, ranges)
    landed = read_table(session, bronze_path, window_range_predicate(start, end))
    gate = validate(landed, "bronze_user_events", bronze_suite(result.rows_landed))
    _record_performance(postgres, context.run.run_id, result)
    outside = _record_outside(postgres, context.run.run_id, result)
    if outside:
        context.log.warning(f"valid events of dates before the first event day {first_event_day}, per date: "
                            f"{outside}; they are in bronze and in no silver day: {BRING_THEM_IN}")
    context.log.info(
        f"windows {context.partition_key_range.start}..{context.partition_key_range.end}: {result.rows_landed} "
        f"landed, {result.rows_quarantined} quarantined in {result.seconds:.2f}s ({result.rows_per_second:,.0f} rows/s)"
    )
    yield dg.MaterializeResult(
        asset_key=BRONZE_USER_EVENTS,
        metadata={
            "kafka_offsets": ranges_to_json(ranges),
            "windows": len(context.partition_keys),
            "rows_landed": result.rows_landed,
            "rows_quarantined": result.rows_quarantined,
            "seconds": round(result.seconds, 3),
            "rows_per_second": round(result.rows_per_second, 1),
            # the silver partitions these rows belong to (late and replayed events included)
            EVENT_DATES_METADATA: dg.MetadataValue.json(result.event_dates),
            # ... and those of dates silver has no day for (older than the first event day)
            OUTSIDE_EVENT_DAYS_METADATA: dg.MetadataValue.json(outside),
            "path": bronze_path,
        },
    )
    yield dg.MaterializeResult(
        asset_key=BRONZE_QUARANTINE,
        metadata={"rows_quarantined": result.rows_quarantined, "reasons": result.quarantine_reasons, "path": quarantine_path},
    )
    yield dg.AssetCheckResult(
        check_name=RECONCILES_WITH_KAFKA, asset_key=BRONZE_USER_EVENTS, passed=balance.passed, metadata=balance.metadata
    )
    yield dg.AssetCheckResult(
        check_name=EXPECTATIONS, asset_key=BRONZE_USER_EVENTS, passed=gate.passed, metadata=gate.metadata
    )
    yield dg.AssetCheckResult(
        check_name=WITHIN_EVENT_DAYS, asset_key=BRONZE_USER_EVENTS, passed=not outside,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"first_event_day": first_event_day.isoformat(), "rows_outside": sum(outside.values()),
                  OUTSIDE_EVENT_DAYS_METADATA: dg.MetadataValue.json(outside),
                  **({"bring_them_in": BRING_THEM_IN} if outside else {})},
    )


def _ms(value) -> int:
    return int(value.timestamp() * 1000)


def _record_performance(postgres: PostgresResource, run_id: str, result: LandingResult) -> None:
    """One row per landed window in streaming_performance, for the dashboard and for operators; the
    seconds are the run's (a window of a backfill run became queryable when the run committed)."""
    now = time.time()
    postgres.bulk_upsert(
        "streaming_performance",
        ["pipeline", "window_start", "rows_in", "rows_out", "rows_quarantined", "seconds", "rows_per_second",
         "freshness_seconds", "dagster_run_id"],
        [("bronze_user_events", window, c.rows_landed + c.rows_quarantined, c.rows_landed, c.rows_quarantined,
          result.seconds, result.rows_per_second, now - (window.timestamp() + WINDOW_MS / 1000), run_id)
         for window, c in result.windows.items()],
        ["pipeline", "window_start"],
    )


def _record_outside(postgres: PostgresResource, run_id: str, result: LandingResult) -> dict[str, int]:
    """Rows per window and date before the first event day in events_outside_partitions (a rerun of the
    window writes the same rows); returns the run's rows per such date."""
    rows = [(window, date.fromisoformat(day), n, run_id) for window, c in result.windows.items()
            for day, n in outside_event_days(c.event_dates).items()]
    if rows:
        postgres.bulk_upsert("events_outside_partitions", ["window_start", "event_date", "rows", "dagster_run_id"],
                             rows, ["window_start", "event_date"])
    return outside_event_days(result.event_dates)
