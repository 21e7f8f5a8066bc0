"""Bronze: every user-event message of a 1-minute broker-time window, landed from its exact Kafka
offsets into Delta, with every message that failed validation beside it in the quarantine table."""

import time
from datetime import UTC

import dagster as dg

from analytics_defs.constants import (
    BRONZE_QUARANTINE,
    BRONZE_QUARANTINE_TABLE,
    BRONZE_USER_EVENTS,
    BRONZE_USER_EVENTS_TABLE,
    TAG_KAFKA_OFFSETS,
)
from analytics_defs.partitions import WINDOW_CLOSE_GRACE_MS, minute_windows
from assets.landing import LandingResult, ParseLimits, land_window
from assets.reconciliation import balance_window
from contract.topics import USER_EVENTS
from contract.user_events import DEFAULT_MAX_FUTURE_SKEW_MS, DEFAULT_MAX_PAYLOAD_BYTES
from resources.kafka import KafkaResource, ranges_from_json, ranges_to_json
from resources.postgres import PostgresResource
from resources.spark import SparkResource
from resources.warehouse import WarehouseResource

RECONCILES_WITH_KAFKA = "reconciles_with_kafka"


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
        )
    ],
    partitions_def=minute_windows,
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
    window = context.partition_time_window
    start_ms = int(window.start.timestamp() * 1000)
    end_ms = int(window.end.timestamp() * 1000)
    tagged = context.run.tags.get(TAG_KAFKA_OFFSETS)
    # The sensor's tag records what it planned; a backfill or a manual run computes the same ranges.
    ranges = ranges_from_json(tagged) if tagged else kafka.window_ranges(USER_EVENTS, start_ms, end_ms, config.window_close_grace_ms)
    bronze_path = warehouse.table_path(BRONZE_USER_EVENTS_TABLE)
    quarantine_path = warehouse.table_path(BRONZE_QUARANTINE_TABLE)
    result = land_window(
        spark.get_session(),
        kafka.bootstrap_servers,
        USER_EVENTS,
        window.start.astimezone(UTC),
        ranges,
        bronze_path,
        quarantine_path,
        ParseLimits(config.max_payload_bytes, config.max_future_skew_ms),
    )
    balance = balance_window(bronze_path, quarantine_path, window.start, ranges)
    _record_performance(postgres, context.run.run_id, result, end_ms)
    context.log.info(
        f"window {context.partition_key}: {result.rows_landed} landed, {result.rows_quarantined} quarantined "
        f"in {result.seconds:.2f}s ({result.rows_per_second:,.0f} rows/s)"
    )
    yield dg.MaterializeResult(
        asset_key=BRONZE_USER_EVENTS,
        metadata={
            "kafka_offsets": ranges_to_json(ranges),
            "rows_landed": result.rows_landed,
            "rows_quarantined": result.rows_quarantined,
            "seconds": round(result.seconds, 3),
            "rows_per_second": round(result.rows_per_second, 1),
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


def _record_performance(postgres: PostgresResource, run_id: str, result: LandingResult, window_end_ms: int) -> None:
    """One row per window in streaming_performance, for the dashboard and for operators."""
    freshness_s = time.time() - window_end_ms / 1000
    postgres.bulk_upsert(
        "streaming_performance",
        ["pipeline", "window_start", "rows_in", "rows_out", "rows_quarantined", "seconds", "rows_per_second",
         "freshness_seconds", "dagster_run_id"],
        [("bronze_user_events", result.window_start, result.rows_in, result.rows_landed, result.rows_quarantined,
          result.seconds, result.rows_per_second, freshness_s, run_id)],
        ["pipeline", "window_start"],
    )
