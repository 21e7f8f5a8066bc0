"""The bronze area: landing Kafka micro-batch windows into Delta, and the sensor that requests them."""

import dagster as dg

from analytics_defs.constants import BRONZE_LANDING_JOB, BRONZE_QUARANTINE, BRONZE_USER_EVENTS, LANDING_LANE
from assets.bronze import bronze_landing
from sensors.kafka_windows import user_events_window_sensor
from sensors.landing_gaps import landing_gaps_sensor

LANDING_MAX_RUNTIME_S = 600
LANDING_MAX_RETRIES = 3

bronze_landing_job = dg.define_asset_job(
    name=BRONZE_LANDING_JOB,
    selection=dg.AssetSelection.assets(BRONZE_USER_EVENTS, BRONZE_QUARANTINE),
    description="Land one 1-minute window of Kafka user-events into bronze (and its quarantine).",
    tags={
        "lakehouse/pipeline": "landing",
        **LANDING_LANE,
        # a landing that hangs (its Spark server died mid-run) is stopped and retried, never left STARTED
        "dagster/max_runtime": str(LANDING_MAX_RUNTIME_S),
        "dagster/max_retries": str(LANDING_MAX_RETRIES),
    },
    # One step: running it in the run process saves a second Python start and import per window.
    executor_def=dg.in_process_executor,
)

defs = dg.Definitions(
    assets=[bronze_landing],
    jobs=[bronze_landing_job],
    sensors=[user_events_window_sensor, landing_gaps_sensor],
)
