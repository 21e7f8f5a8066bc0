"""Silver: every user event once, typed for analysis, in the partition of its own event day (UTC)."""

import dagster as dg

from analytics_defs.constants import (
    BRONZE_USER_EVENTS,
    BRONZE_USER_EVENTS_TABLE,
    SILVER_USER_EVENTS,
    SILVER_USER_EVENTS_TABLE,
)
from analytics_defs.partitions import day_of, event_days
from assets.delta import day_predicate, read_table
from assets.quality import silver_suite, validate
from assets.refine import refine_day
from resources.spark import SparkResource
from resources.warehouse import WarehouseResource

RECONCILES_WITH_BRONZE = "reconciles_with_bronze"
EXPECTATIONS = "great_expectations"


@dg.asset(
    key=SILVER_USER_EVENTS,
    description="Every valid user event once (deduplicated by event_id across all bronze windows: the first "
    "copy by broker time wins), typed for analysis (event_time, amount as decimal), partitioned by the "
    "event's own UTC date, so late and replayed events reach the day they belong to.",
    group_name="silver",
    kinds={"spark", "delta"},
    partitions_def=event_days,
    # lineage: a day's events arrive mostly in that day's windows; late ones are found by the silver
    # refresh sensor from what each bronze run landed
    deps=[dg.AssetDep(BRONZE_USER_EVENTS, partition_mapping=dg.TimeWindowPartitionMapping())],
    metadata={"table": SILVER_USER_EVENTS_TABLE, "partition_column": "event_date"},
    check_specs=[
        dg.AssetCheckSpec(RECONCILES_WITH_BRONZE, asset=SILVER_USER_EVENTS, blocking=True,
                          description="Read back: silver rows of the day = distinct event ids of the day in bronze, "
                          "and bronze rows = silver rows + duplicates removed."),
        dg.AssetCheckSpec(EXPECTATIONS, asset=SILVER_USER_EVENTS, blocking=True,
                          description="Great Expectations on the whole day as committed: required fields present, "
                          "known event types, coordinates in range, event_id unique, the expected row count."),
    ],
)
def silver_user_events(context: dg.AssetExecutionContext, spark: SparkResource, warehouse: WarehouseResource):
    day = day_of(context.partition_key)
    session = spark.get_session()
    silver_path = warehouse.table_path(SILVER_USER_EVENTS_TABLE)
    result = refine_day(session, warehouse.table_path(BRONZE_USER_EVENTS_TABLE), silver_path, day)
    gate = validate(read_table(session, silver_path, day_predicate(day, "event_date")), "silver_user_events",
                    silver_suite(result.distinct_events))
    counts = {"bronze_rows": result.bronze_rows, "silver_rows": result.silver_rows,
              "duplicates_removed": result.duplicates_removed}
    yield dg.MaterializeResult(
        metadata={**counts, "seconds": round(result.seconds, 3),
                  "rows_per_second": round(result.bronze_rows / result.seconds, 1) if result.seconds else 0.0,
                  "path": silver_path},
    )
    yield dg.AssetCheckResult(check_name=RECONCILES_WITH_BRONZE, passed=result.reconciles,
                              metadata={**counts, "distinct_event_ids_in_bronze": result.distinct_events})
    yield dg.AssetCheckResult(check_name=EXPECTATIONS, passed=gate.passed, metadata=gate.metadata)
