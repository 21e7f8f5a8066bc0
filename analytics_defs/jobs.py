"""Jobs: the asset selections sensors and schedules launch."""

import dagster as dg

from analytics_defs.constants import BRONZE_QUARANTINE, BRONZE_USER_EVENTS

bronze_landing_job = dg.define_asset_job(
    name="bronze_landing_job",
    selection=dg.AssetSelection.assets(BRONZE_USER_EVENTS, BRONZE_QUARANTINE),
    description="Land one 1-minute window of Kafka user-events into bronze (and its quarantine).",
    tags={"lakehouse/pipeline": "landing"},
    # One step: running it in the run process saves a second Python start and import per window.
    executor_def=dg.in_process_executor,
)
