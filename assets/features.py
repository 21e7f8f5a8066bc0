"""Per-user features of each day, point in time: what the models are trained and scored on."""

import dagster as dg

from analytics_defs.automation import refresh_on_upstream_update
from analytics_defs.constants import (
    FEATURES_CLOSED_METADATA,
    SILVER_USER_EVENTS,
    SILVER_USER_EVENTS_TABLE,
    USER_FEATURES,
    USER_FEATURES_TABLE,
)
from analytics_defs.partitions import day_of, event_days
from assets.delta import day_predicate, read_table
from assets.featurize import build_features_day
from assets.quality import features_suite, validate
from ml.features import FEATURES, WINDOW_DAYS
from resources.spark import SparkResource
from resources.warehouse import WarehouseResource

EXPECTATIONS = "great_expectations"


@dg.asset(
    key=USER_FEATURES,
    description=f"One row per user active in the {WINDOW_DAYS} x 24 hours up to the features' as_of: the end of "
    "the day once it is over (its own 7 event days; no feature of day D sees an event of D+1), the day's latest "
    "event while it is open (a trailing window, so a feature means the same at 10:00 and at 23:59). Features "
    "and their meaning: ml/features.py (the registry the models read).",
    group_name="features",
    kinds={"spark", "delta"},
    partitions_def=event_days,
    deps=[dg.AssetDep(SILVER_USER_EVENTS,
                      partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-(WINDOW_DAYS - 1), end_offset=0))],
    metadata={"table": USER_FEATURES_TABLE, "partition_column": "feature_date",
              "features": dg.MetadataValue.md("\n".join(f"- `{f.name}` ({f.window}, {f.dtype}): {f.description}"
                                                        for f in FEATURES))},
    automation_condition=refresh_on_upstream_update(),
    check_specs=[
        dg.AssetCheckSpec(EXPECTATIONS, asset=USER_FEATURES, blocking=True,
                          description="Great Expectations on the day as committed: no nulls in any feature, every "
                          "feature in its range, one row per user active in the 7 days of silver."),
    ],
)
def user_features(context: dg.AssetExecutionContext, spark: SparkResource, warehouse: WarehouseResource):
    day = day_of(context.partition_key)
    session = spark.get_session()
    path = warehouse.table_path(USER_FEATURES_TABLE)
    result = build_features_day(session, warehouse.table_path(SILVER_USER_EVENTS_TABLE), path, day)
    gate = validate(read_table(session, path, day_predicate(day, "feature_date")), "user_features",
                    features_suite(result.active_users))
    yield dg.MaterializeResult(metadata={
        "users": result.users, "events_in_window": result.events,
        # the window's end: the end of the day once it is over (`closed`), else the day's latest event
        "as_of": result.as_of.isoformat(), FEATURES_CLOSED_METADATA: result.closed,
        "history_days": result.history_days, "seconds": round(result.seconds, 3), "path": path,
    })
    yield dg.AssetCheckResult(check_name=EXPECTATIONS, passed=gate.passed,
                              metadata={**gate.metadata, "active_users_in_silver": result.active_users})
