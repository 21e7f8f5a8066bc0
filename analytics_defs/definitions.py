"""The one `Definitions` of the lakehouse: every asset, check, sensor, job and resource, by area."""

import dagster as dg

from analytics_defs.jobs import bronze_landing_job
from analytics_defs.settings import build_resources
from assets.bronze import bronze_landing
from sensors.kafka_windows import user_events_window_sensor

defs = dg.Definitions(
    assets=[bronze_landing],
    jobs=[bronze_landing_job],
    sensors=[user_events_window_sensor],
    resources=build_resources(),
)
