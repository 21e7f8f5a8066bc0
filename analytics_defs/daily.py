"""The daily area: silver, user features and the SQL models, partitioned by event day, with what keeps
them current.

- During the day: the silver refresh sensor rebuilds the days bronze landed events of (at most every
  SILVER_REFRESH_INTERVAL_S per day), and the automation sensor then refreshes the features and SQL
  models of those days (never while a run of them is queued or running, never past a failed gate).
- Nightly, at 01:00 UTC: yesterday's silver, features and SQL models are rebuilt once more, after a one
  hour lateness allowance, so the closed day is final (later stragglers still trigger a refresh).
- Backfills of any date range from the UI: every daily asset replaces its day, so they are idempotent.
"""

from datetime import timedelta

import dagster as dg

from analytics_defs.constants import (
    BATCH_LANE,
    DAILY_JOB,
    SILVER_REFRESH_JOB,
    SILVER_USER_EVENTS,
    USER_FEATURES,
)
from assets.features import user_features
from assets.silver import silver_user_events
from dbt_like_sql.loader import build_sql_assets
from sensors.silver_refresh import silver_refresh_sensor

NIGHTLY_CRON = "0 1 * * *"  # 01:00 UTC: yesterday closed, with an hour for late events

sql_models = build_sql_assets()
sql_model_keys = [a.key for a in sql_models]

silver_refresh_job = dg.define_asset_job(
    name=SILVER_REFRESH_JOB,
    selection=dg.AssetSelection.assets(SILVER_USER_EVENTS),
    description="Rebuild one event day of silver (requested by the silver refresh sensor).",
    tags={"lakehouse/pipeline": "silver", **BATCH_LANE},
)

daily_job = dg.define_asset_job(
    name=DAILY_JOB,
    selection=dg.AssetSelection.assets(SILVER_USER_EVENTS, USER_FEATURES, *sql_model_keys),
    description="Rebuild one event day of silver, user features and every SQL model, in order; a failed "
    "blocking check stops what depends on it.",
    tags={"lakehouse/pipeline": "daily", **BATCH_LANE},
)


@dg.schedule(job=daily_job, cron_schedule=NIGHTLY_CRON, execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Close yesterday: rebuild its silver, features and SQL models at 01:00 UTC.")
def nightly_close_of_day(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    yesterday = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=f"nightly-{yesterday}", partition_key=yesterday)


daily_automation = dg.AutomationConditionSensorDefinition(
    "daily_automation",
    target=dg.AssetSelection.assets(USER_FEATURES, *sql_model_keys),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    run_tags=BATCH_LANE,
    description="Refreshes features and SQL models of the days whose upstream was updated.",
)

defs = dg.Definitions(
    assets=[silver_user_events, user_features, *sql_models],
    jobs=[silver_refresh_job, daily_job],
    sensors=[silver_refresh_sensor, daily_automation],
    schedules=[nightly_close_of_day],
)
